"""Terminals → Serve (HAProxy ingress) → IngestShard actors → Redis → LedgerWriters → PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import orjson
import pytest

from posray.domain.chain import GENESIS_HASH, BatchHeader
from posray.domain.merkle import leaf_hash, root_hash, verify_inclusion
from tooling.simulator import make_document, resign

from tests.cluster.conftest import wait_until

pytestmark = pytest.mark.cluster


def register(http, token, merchant="m-e2e") -> tuple[str, bytes]:
    terminal_id = f"T-{secrets.token_hex(5)}"
    r = http.post("/v1/admin/terminals", json={"terminal_id": terminal_id, "merchant_id": merchant},
                  headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    return terminal_id, bytes.fromhex(r.json()["key_hex"])


def ledger_rows(dsn: str, sql: str, *args):
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()
    return asyncio.run(go())


def captured_count(dsn: str, terminal_id: str) -> int:
    return ledger_rows(dsn, "SELECT count(*) AS n FROM ledger_entries WHERE terminal_id = $1", terminal_id)[0]["n"]


class TestOperators:
    def test_registering_a_terminal_requires_the_operator_token(self, http):
        r = http.post("/v1/admin/terminals", json={"terminal_id": "T-x", "merchant_id": "m"})
        assert r.status_code == 401
        r = http.post("/v1/admin/terminals", json={"terminal_id": "T-x", "merchant_id": "m"},
                      headers={"authorization": "Bearer wrong"})
        assert r.status_code == 401

    def test_a_registered_terminal_gets_a_key_once_and_its_id_cannot_be_reused(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        assert len(key) == 32
        r = http.post("/v1/admin/terminals", json={"terminal_id": terminal_id, "merchant_id": "m-e2e"},
                      headers={"authorization": f"Bearer {operator_token}"})
        assert r.status_code == 409


class TestSubmitting:
    def test_a_sale_is_acknowledged_with_a_receipt(self, http, operator_token, posray_cluster):
        terminal_id, key = register(http, operator_token)
        r = http.post("/v1/transactions", json=make_document(terminal_id, 1, key))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "accepted" and body["duplicate"] is False
        assert len(body["code"]) == 20 and body["seq"] >= 1 and 0 <= body["shard"] < 4
        assert len(body["fiscal_sign"]) == 32
        assert body["verify_url"].endswith(f"/r/{body['code']}")

    def test_resending_the_same_document_returns_the_same_code(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        doc = make_document(terminal_id, 7, key)
        first = http.post("/v1/transactions", json=doc).json()
        again = http.post("/v1/transactions", json=doc).json()
        assert again["code"] == first["code"] and again["seq"] == first["seq"]
        assert again["fiscal_sign"] == first["fiscal_sign"] and again["duplicate"] is True

    def test_another_document_under_a_used_counter_is_a_conflict(self, http, operator_token, posray_cluster):
        settings, _ = posray_cluster
        terminal_id, key = register(http, operator_token)
        assert http.post("/v1/transactions", json=make_document(terminal_id, 3, key)).status_code == 200
        other = make_document(terminal_id, 3, key, seed="different")
        r = http.post("/v1/transactions", json=other)
        assert r.status_code == 409
        assert r.json()["field"] == "counter"
        wait_until(lambda: captured_count(settings.pg_dsn, terminal_id) == 1)
        assert captured_count(settings.pg_dsn, terminal_id) == 1

    def test_a_batch_answers_one_result_per_document_in_order(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        docs = [make_document(terminal_id, n, key) for n in range(1, 31)]
        bad = dict(docs[4], total_minor=docs[4]["total_minor"] + 1)
        docs[4] = resign(bad, key)
        docs[9] = dict(docs[9], mac="0" * 64)
        results = http.post("/v1/transactions/batch", json={"documents": docs}).json()["results"]
        assert len(results) == 30
        assert [r["status"] for r in results].count("accepted") == 28
        assert results[4]["status_code"] == 422 and results[4]["field"] == "total_minor"
        assert results[9]["status_code"] == 401 and results[9]["field"] == "mac"
        codes = [r["code"] for r in results if r["status"] == "accepted"]
        assert len(set(codes)) == 28

    def test_an_offline_backlog_is_accepted_out_of_order(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        yesterday = (datetime.now(timezone(timedelta(hours=1))) - timedelta(days=1)).replace(microsecond=0)
        docs = [make_document(terminal_id, n, key, issued_at=yesterday.isoformat()) for n in (5, 2, 9, 1)]
        results = http.post("/v1/transactions/batch", json={"documents": docs}).json()["results"]
        assert [r["status"] for r in results] == ["accepted"] * 4


def _valid(http, token):
    terminal_id, key = register(http, token)
    return terminal_id, key, make_document(terminal_id, 1, key)


BAD_INPUTS = [
    ("wrong type", lambda d, k: resign(dict(d, counter="1"), k), 422, "counter"),
    ("missing field", lambda d, k: resign({x: v for x, v in d.items() if x != "currency"}, k), 422, "currency"),
    ("negative money", lambda d, k: resign(dict(d, total_minor=-1), k), 422, "total_minor"),
    ("non-integer money", lambda d, k: dict(d, total_minor=1.5), 422, "total_minor"),
    ("items sum differs", lambda d, k: resign(dict(d, total_minor=d["total_minor"] + 1), k), 422, "total_minor"),
    ("payments differ", lambda d, k: resign(dict(d, payments=[{"method": "cash", "amount_minor": d["total_minor"] + 5}]), k), 422, "payments"),
    ("unknown VAT rate", lambda d, k: resign(dict(d, items=[dict(d["items"][0], vat_rate_bp=1234)] + d["items"][1:]), k), 422, "items[0].vat_rate_bp"),
    ("far future", lambda d, k: resign(dict(d, issued_at="2099-01-01T00:00:00+00:00"), k), 422, "issued_at"),
    ("bad MAC", lambda d, k: dict(d, mac="ab" * 32), 401, "mac"),
    ("unknown field", lambda d, k: resign(dict(d, tip=5), k), 422, "tip"),
]


class TestBadInput:
    @pytest.mark.parametrize("name,mutate,status,field", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
    def test_is_refused_with_a_4xx_naming_the_field_and_nothing_is_stored(
        self, http, operator_token, posray_cluster, name, mutate, status, field
    ):
        settings, _ = posray_cluster
        terminal_id, key, doc = _valid(http, operator_token)
        r = http.post("/v1/transactions", json=mutate(doc, key))
        assert r.status_code == status, r.text
        assert r.json()["field"] == field
        assert http.get("/v1/receipts", params={"terminal_id": terminal_id, "counter": 1,
                        "date": doc["issued_at"][:10], "total_minor": doc["total_minor"]}).status_code == 404

    def test_malformed_json_is_a_400(self, http):
        r = http.post("/v1/transactions", content=b'{"terminal_id": ')
        assert r.status_code == 400 and r.json()["field"] == "body"

    def test_a_non_object_is_a_400(self, http):
        r = http.post("/v1/transactions", content=b"[1, 2]")
        assert r.status_code == 400

    def test_an_oversize_body_is_a_413(self, http):
        r = http.post("/v1/transactions", content=b" " * (4 * 1024 * 1024 + 10))
        assert r.status_code == 413

    def test_an_oversize_batch_is_a_413(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        doc = make_document(terminal_id, 1, key)
        r = http.post("/v1/transactions/batch", json={"documents": [doc] * 1001})
        assert r.status_code == 413 and r.json()["field"] == "documents"

    def test_an_unknown_terminal_is_a_401(self, http):
        doc = make_document("T-nobody", 1, b"k" * 32)
        r = http.post("/v1/transactions", json=doc)
        assert r.status_code == 401 and r.json()["field"] == "terminal_id"

    def test_a_revoked_terminal_is_refused_within_seconds(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        assert http.post("/v1/transactions", json=make_document(terminal_id, 1, key)).status_code == 200
        r = http.post(f"/v1/admin/terminals/{terminal_id}/revoke",
                      headers={"authorization": f"Bearer {operator_token}"})
        assert r.status_code == 200
        refused = wait_until(
            lambda: http.post("/v1/transactions", json=make_document(terminal_id, 2, key)).status_code == 401,
            timeout_s=5,
        )
        assert refused


class TestLookup:
    def test_a_receipt_is_found_by_code_and_becomes_recorded_with_a_valid_proof(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        doc = make_document(terminal_id, 1, key)
        code = http.post("/v1/transactions", json=doc).json()["code"]
        receipt = wait_until(lambda: (r := http.get(f"/v1/receipts/{code}").json())["status"] == "recorded" and r)
        assert receipt and receipt["total_minor"] == doc["total_minor"] and receipt["items"] == doc["items"]
        assert receipt["merchant_id"] == "m-e2e"
        proof = receipt["ledger"]
        assert verify_inclusion(
            leaf_hash(proof["record"].encode()), proof["leaf_index"], proof["batch_size"],
            [bytes.fromhex(h) for h in proof["inclusion_proof"]], bytes.fromhex(proof["header"]["merkle_root"]),
        )

    def test_the_same_receipt_is_found_by_its_printed_fields(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        doc = make_document(terminal_id, 4, key)
        code = http.post("/v1/transactions", json=doc).json()["code"]
        params = {"terminal_id": terminal_id, "counter": 4, "date": doc["issued_at"][:10],
                  "total_minor": doc["total_minor"]}
        assert http.get("/v1/receipts", params=params).json()["code"] == code
        assert http.get("/v1/receipts", params=params | {"total_minor": doc["total_minor"] + 1}).status_code == 404

    def test_an_unknown_code_is_a_404_and_a_malformed_one_a_400(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        code = http.post("/v1/transactions", json=make_document(terminal_id, 1, key)).json()["code"]
        from posray.domain.codes import ALPHABET, _check_char  # a well-formed code with a wrong tag
        body = code[:-2] + ALPHABET[(ALPHABET.index(code[-2]) + 1) % 32]
        assert http.get(f"/v1/receipts/{body + _check_char(body)}").status_code == 404
        assert http.get("/v1/receipts/NOT-A-CODE").status_code == 400
        assert http.get(f"/v1/receipts/{code[:-1]}{'0' if code[-1] != '0' else '1'}").status_code == 400

    def test_the_qr_link_shows_a_receipt_page(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        code = http.post("/v1/transactions", json=make_document(terminal_id, 1, key)).json()["code"]
        r = http.get(f"/r/{code}")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert terminal_id in r.text


class TestLedger:
    def test_every_batch_chains_and_its_root_matches_its_rows(self, http, operator_token, posray_cluster):
        settings, _ = posray_cluster
        terminal_id, key = register(http, operator_token)
        docs = [make_document(terminal_id, n, key) for n in range(1, 101)]
        http.post("/v1/transactions/batch", json={"documents": docs}).raise_for_status()
        wait_until(lambda: captured_count(settings.pg_dsn, terminal_id) == 100)
        batches = ledger_rows(settings.pg_dsn, "SELECT * FROM ledger_batches ORDER BY shard, batch_no")
        assert batches
        previous: dict[int, bytes] = {}
        for b in batches:
            header = BatchHeader(b["shard"], b["batch_no"], b["first_seq"], b["last_seq"],
                                 bytes(b["merkle_root"]), bytes(b["prev_hash"]),
                                 int(round(b["recorded_at"].timestamp() * 1000)))
            assert header.prev_hash == previous.get(b["shard"], GENESIS_HASH)
            assert header.hash() == bytes(b["header_hash"])
            rows = ledger_rows(settings.pg_dsn, "SELECT seq, record, leaf_hash FROM ledger_entries"
                               " WHERE shard = $1 AND batch_no = $2 ORDER BY seq", b["shard"], b["batch_no"])
            assert [r["seq"] for r in rows] == list(range(b["first_seq"], b["last_seq"] + 1))
            leaves = [leaf_hash(bytes(r["record"])) for r in rows]
            assert leaves == [bytes(r["leaf_hash"]) for r in rows]
            assert root_hash(leaves) == header.merkle_root
            previous[b["shard"]] = header.hash()
        for r in ledger_rows(settings.pg_dsn, "SELECT record FROM ledger_entries WHERE terminal_id = $1", terminal_id):
            assert orjson.loads(bytes(r["record"]))["document"]["terminal_id"] == terminal_id
