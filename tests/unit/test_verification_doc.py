"""The independent verifier printed in docs/verification.md accepts posray's proofs and nothing else."""

import re
from pathlib import Path

import pytest

from posray.domain.chain import record_bytes
from posray.domain.codes import CodeKey, make_code
from posray.domain.canonical import canonical_bytes
from posray.domain.merkle import inclusion_proof, leaf_hash, root_hash
from posray.domain.note import Checkpoint, NoteSigner, sign_checkpoint
from posray.domain.transaction import document_hash

DOC = Path(__file__).resolve().parents[2] / "docs" / "verification.md"
CODE_KEY = CodeKey(b"c" * 32)
SIGNER = NoteSigner("example.org/log", b"s" * 32)


def doc_verifier():
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "def verify(" in b)
    namespace: dict = {}
    exec(block, namespace)
    return namespace["verify"]


def bundle_for(seq: int, size: int, shard: int = 3):
    documents = [canonical_bytes({"total_minor": s * 100}) for s in range(1, size + 1)]
    records = [record_bytes(shard, s, make_code(CODE_KEY, shard, s, document_hash(d)), 1_764_000_000_000 + s, d)
               for s, d in enumerate(documents, start=1)]
    leaves = [leaf_hash(r) for r in records]
    root = root_hash(leaves)
    note = sign_checkpoint(SIGNER, Checkpoint(f"example.org/log/{shard}", size, root))
    code = make_code(CODE_KEY, shard, seq, document_hash(documents[seq - 1]))
    return code, {
        "code": code, "record": records[seq - 1].decode(), "shard": shard, "leaf_index": seq - 1,
        "tree_size": size, "root_hash": root.hex(), "checkpoint": note,
        "inclusion_proof": [h.hex() for h in inclusion_proof(seq - 1, leaves)],
    }


@pytest.mark.parametrize("seq,size", [(1, 1), (1, 2), (5, 7), (7, 7), (16, 33), (33, 33)])
def test_the_documented_verifier_accepts_genuine_receipts(seq, size):
    code, bundle = bundle_for(seq, size)
    assert doc_verifier()(bundle, SIGNER.verifier_key(), code) is True


def test_the_documented_verifier_rejects_an_edited_record():
    code, bundle = bundle_for(5, 9)
    bundle["record"] = bundle["record"].replace('"total_minor":500', '"total_minor":400')
    assert doc_verifier()(bundle, SIGNER.verifier_key(), code) is False


def test_the_documented_verifier_rejects_a_checkpoint_signed_by_another_key():
    code, bundle = bundle_for(5, 9)
    other = NoteSigner("example.org/log", b"x" * 32)
    assert doc_verifier()(bundle, other.verifier_key(), code) is False


def test_the_example_checkpoint_in_the_doc_verifies_with_the_example_key():
    from posray.domain.note import NoteVerifier, open_checkpoint

    text = DOC.read_text()
    note = re.search(r"```\n(127\.0\.0\.1:8000/log/4\n.*?)```", text, re.S).group(1)
    key = re.search(r"e\.g\. `(127\.0\.0\.1:8000/log\+[0-9a-f]{8}\+\S+)`", text).group(1)
    checkpoint = open_checkpoint(NoteVerifier.from_verifier_key(key), note, "127.0.0.1:8000/log/4")
    assert checkpoint.tree_size == 70 and checkpoint.extensions[0].startswith("posray-chain 3 ")
