"""Transparency logs over HTTP: signed checkpoints, inclusion and consistency proofs."""

from __future__ import annotations

import base64

import pytest

from posray.domain.merkle import verify_consistency
from posray.domain.note import NoteVerifier, open_checkpoint
from posray.domain.receipt_proof import verify_receipt_bundle
from tooling.simulator import make_document

from tests.cluster.conftest import wait_until
from tests.cluster.test_end_to_end import register

pytestmark = pytest.mark.cluster


def proof_when_ready(http, code, **params):
    def ready():
        r = http.get(f"/v1/receipts/{code}/proof", params=params)
        return r.json() if r.status_code == 200 else None
    return wait_until(ready, timeout_s=30)


class TestCheckpoints:
    def test_the_operator_key_is_published_at_a_well_known_address(self, http, posray_cluster):
        settings, _ = posray_cluster
        key = http.get("/.well-known/posray/log-key").json()
        verifier = NoteVerifier.from_verifier_key(key["verifier_key"])
        assert verifier.public_key == base64.b64decode(key["public_key_ed25519"])
        assert key["origins"] == [settings.log_origin(s) for s in range(settings.shard_count)]

    def test_a_receipt_proof_verifies_offline_against_the_signed_checkpoint(self, http, operator_token, posray_cluster):
        settings, _ = posray_cluster
        terminal_id, key = register(http, operator_token)
        code = http.post("/v1/transactions", json=make_document(terminal_id, 1, key)).json()["code"]
        bundle = proof_when_ready(http, code)
        assert bundle, "a checkpoint covers the receipt within seconds"
        verifier = NoteVerifier.from_verifier_key(http.get("/.well-known/posray/log-key").json()["verifier_key"])
        checks = verify_receipt_bundle(bundle, verifier, code, settings.log_key_name)
        assert all(c.ok for c in checks), checks
        receipt = http.get(f"/v1/receipts/{code}").json()
        assert receipt["log"]["tree_size"] >= bundle["leaf_index"] + 1

    def test_a_proof_for_another_code_fails_the_code_check(self, http, operator_token):
        terminal_id, key = register(http, operator_token)
        a = http.post("/v1/transactions", json=make_document(terminal_id, 1, key)).json()["code"]
        b = http.post("/v1/transactions", json=make_document(terminal_id, 2, key)).json()["code"]
        bundle = proof_when_ready(http, b)
        verifier = NoteVerifier.from_verifier_key(http.get("/.well-known/posray/log-key").json()["verifier_key"])
        failed = [c.name for c in verify_receipt_bundle(bundle, verifier, a) if not c.ok]
        assert failed == ["code"]

    def test_successive_checkpoints_are_consistent(self, http, operator_token, posray_cluster):
        settings, _ = posray_cluster
        terminal_id, key = register(http, operator_token)
        first = proof_when_ready(http, http.post("/v1/transactions", json=make_document(terminal_id, 1, key)).json()["code"])
        docs = [make_document(terminal_id, n, key) for n in range(2, 40)]
        http.post("/v1/transactions/batch", json={"documents": docs}).raise_for_status()
        shard = first["shard"]
        verifier = NoteVerifier.from_verifier_key(http.get("/.well-known/posray/log-key").json()["verifier_key"])
        old = open_checkpoint(verifier, first["checkpoint"], settings.log_origin(shard))
        def grown():
            note = http.get(f"/v1/log/{shard}/checkpoint").text
            cp = open_checkpoint(verifier, note, settings.log_origin(shard))
            return cp if cp.tree_size >= old.tree_size + 38 else None
        new = wait_until(grown, timeout_s=30)
        assert new
        proof = http.get(f"/v1/log/{shard}/consistency", params={"first": old.tree_size, "second": new.tree_size}).json()
        hashes = [bytes.fromhex(h) for h in proof["consistency_proof"]]
        assert verify_consistency(old.tree_size, new.tree_size, hashes, old.root_hash, new.root_hash)
        assert not verify_consistency(old.tree_size, new.tree_size, hashes, new.root_hash, old.root_hash)
        older = http.get(f"/v1/log/{shard}/checkpoint", params={"tree_size": old.tree_size})
        assert older.status_code == 200 and older.text == first["checkpoint"]

    def test_bad_log_requests_are_4xx(self, http):
        assert http.get("/v1/log/999/checkpoint").status_code == 404
        assert http.get("/v1/log/0/consistency", params={"first": 5, "second": 2}).status_code == 400
        assert http.get("/v1/log/0/consistency", params={"first": "x", "second": 2}).status_code == 400
        assert http.get("/v1/log/0/consistency", params={"first": 1, "second": 10**12}).status_code == 404
        assert http.get("/v1/receipts/NOT-A-CODE/proof").status_code == 400
