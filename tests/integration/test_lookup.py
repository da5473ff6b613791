"""Receipt lookup by code and by printed fields, before and after recording (real servers)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import date, timedelta

import orjson
import pytest

from posray import leaf_hash, verify_inclusion
from posray.domain.codes import CodeKey, display_code, make_code
from posray.domain.errors import CodeMalformed, NotFound
from posray.domain.keys import terminal_key
from posray.domain.transaction import utc_iso_ms
from posray.services.capture import append_batch
from posray.services.lookup import by_code, by_fields
from posray.services.terminals import register
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal

PRINTED = ("terminal_id", "counter", "issued_at", "type", "currency", "items", "payments",
           "total_minor", "vat")


def _accept(b, keys, terminal_id: str, shard: int, counters):
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    docs = [make_document(terminal_id, c, key) for c in counters]
    subs = [submission_of(d, SHARD_COUNT) for d in docs]
    return docs, subs, append_batch(b.capture, b.fences, keys, shard, subs)


def _assert_printed(receipt: dict, doc: dict, accepted, sub) -> None:
    for field in PRINTED:
        assert receipt[field] == doc[field], field
    assert receipt["refers_to"] is None
    assert (receipt["code"], receipt["seq"], receipt["shard"]) == (accepted.code, accepted.seq, accepted.shard)
    assert receipt["code_display"] == display_code(accepted.code)
    assert receipt["accepted_at"] == utc_iso_ms(accepted.accepted_at_ms)
    assert receipt["document_hash"] == sub.document_hash.hex()


class TestByCode:
    def test_an_accepted_document_is_found_with_status_accepted(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                docs, subs, pending = _accept(b, keys, terminal_id, shard, [1, 2])
                accepted = await pending
                typed = display_code(accepted[1].code).lower()  # as a customer types it
                return docs, subs, accepted, await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, typed)

        docs, subs, accepted, receipt = asyncio.run(main())
        assert receipt["status"] == "accepted"
        assert receipt["ledger"] is None
        _assert_printed(receipt, docs[1], accepted[1], subs[1])

    def test_a_recorded_document_carries_an_inclusion_proof_that_verifies(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        merchant_id = f"M-{terminal_id}"

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await register(b.terminals, keys.terminal_master, terminal_id, merchant_id)
                docs, subs, pending = _accept(b, keys, terminal_id, shard, range(1, 8))
                accepted = await pending
                await b.record_all(shard, keys.code)
                receipts = [await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, a.code) for a in accepted]
                return docs, subs, accepted, receipts, await b.batch_rows(shard)

        docs, subs, accepted, receipts, batches = asyncio.run(main())
        assert len(batches) == 1
        for doc, sub, acc, receipt in zip(docs, subs, accepted, receipts):
            assert receipt["status"] == "recorded"
            assert receipt["merchant_id"] == merchant_id
            _assert_printed(receipt, doc, acc, sub)
            proof = receipt["ledger"]
            record = proof["record"].encode()
            assert orjson.loads(record)["document"] == doc
            leaf = leaf_hash(record)
            assert proof["leaf_hash"] == leaf.hex()
            root = bytes.fromhex(proof["header"]["merkle_root"])
            assert root == bytes(batches[0]["merkle_root"])
            assert proof["batch_size"] == 7
            path = [bytes.fromhex(h) for h in proof["inclusion_proof"]]
            assert verify_inclusion(leaf, proof["leaf_index"], proof["batch_size"], path, root)
            assert not verify_inclusion(leaf_hash(record + b" "), proof["leaf_index"], 7, path, root)
            header_bytes = orjson.dumps(proof["header"], option=orjson.OPT_SORT_KEYS)
            assert hashlib.sha256(header_bytes).hexdigest() == proof["header_hash"]
            assert proof["header_hash"] == bytes(batches[0]["header_hash"]).hex()

    def test_a_well_formed_code_with_a_wrong_tag_is_not_found(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        forged = make_code(CodeKey(bytes(32)), shard, 1, bytes(32))  # right format, another key's tag

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                _, _, pending = _accept(b, keys, terminal_id, shard, [1])
                await pending
                with pytest.raises(NotFound):
                    await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, forged)
                with pytest.raises(NotFound):  # a genuine code of a sequence never captured
                    await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, make_code(keys.code, shard, 2, bytes(32)))

        asyncio.run(main())

    @pytest.mark.parametrize("text", ["ABC", "", "0123456789ABCDEFGHJU", "0123-4567-89AB-CDEF-GHJ!"])
    def test_a_malformed_code_is_refused_as_malformed(self, redis_url, schema_dsn, key_prefix, keys, text):
        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                with pytest.raises(CodeMalformed):
                    await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, text)

        asyncio.run(main())

    def test_a_mistyped_character_is_malformed_not_not_found(self, redis_url, schema_dsn, key_prefix, keys):
        code = make_code(keys.code, 1, 1, bytes(32))
        typo = code[:3] + ("1" if code[3] != "1" else "2") + code[4:]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                with pytest.raises(CodeMalformed):
                    await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, typo)

        asyncio.run(main())


class TestByFields:
    @pytest.mark.parametrize("recorded", [False, True], ids=["accepted", "recorded"])
    def test_the_printed_fields_find_the_receipt_and_any_other_value_does_not(
        self, redis_url, schema_dsn, key_prefix, keys, recorded
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                docs, _, pending = _accept(b, keys, terminal_id, shard, [1, 2, 3])
                accepted = await pending
                if recorded:
                    await b.record_all(shard, keys.code)
                doc = docs[1]
                day = date.fromisoformat(doc["issued_at"][:10])

                async def find(counter=2, on=day, total=doc["total_minor"]):
                    return await by_fields(
                        b.ledger, b.capture, keys.code, SHARD_COUNT, terminal_id, counter, on, total
                    )

                found = await find()
                misses = []
                for wrong in ({"total": doc["total_minor"] + 1}, {"on": day + timedelta(days=1)},
                              {"counter": 4}):
                    try:
                        await find(**wrong)
                        misses.append(False)
                    except NotFound:
                        misses.append(True)
                return accepted[1], found, misses

        accepted, found, misses = asyncio.run(main())
        assert found["code"] == accepted.code
        assert found["status"] == ("recorded" if recorded else "accepted")
        assert misses == [True, True, True]
