"""The independent verifier printed in docs/verification.md accepts posray's proofs and nothing else."""

import re
from pathlib import Path

import orjson
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


def doc_tiles_verifier():
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "def verify_from_tiles(" in b)
    namespace: dict = {}
    exec(block, namespace)
    return namespace["verify_from_tiles"]


def exported(*sizes):
    """A shard log grown to `sizes`, exported by posray after each; its files and the verifier key."""
    import asyncio

    from posray.adapters.memory_tiles import MemoryTiles
    from posray.services import tiles
    from tests.unit.test_tiles_service import ORIGIN, SHARD, SIGNER, grown

    log, sink = grown(sizes[0]), MemoryTiles()
    asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
    for size in sizes[1:]:
        asyncio.run(log.grow(size))
        asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
    codes = {seq: orjson.loads(r)["code"] for seq, r in asyncio.run(
        log.ledger.records(SHARD, list(range(1, sizes[-1] + 1)))).items()}
    return sink.files, SHARD, codes, SIGNER.verifier_key()


@pytest.mark.parametrize("sizes", [(1,), (255,), (256,), (300,), (300, 600)])
def test_the_documented_tiles_verifier_accepts_genuine_receipts_from_posrays_tiles(sizes):
    files, shard, codes, key = exported(*sizes)
    verify = doc_tiles_verifier()
    for seq in sorted({1, 2, 255, 256, 257, 300, 513, 600} & set(codes)):
        assert verify(files.__getitem__, shard, seq, codes[seq], key) is True, seq


def test_the_documented_tiles_verifier_rejects_edits_other_codes_and_other_keys():
    files, shard, codes, key = exported(300)
    verify = doc_tiles_verifier()
    assert verify(files.__getitem__, shard, 7, codes[8], key) is False
    assert verify(files.__getitem__, shard, 7, codes[7], NoteSigner("tiles.example/log", b"x" * 32).verifier_key()) is False
    tile = bytearray(files[f"{shard}/tile/0/000"])
    tile[6 * 32] ^= 1  # leaf 6's hash: the first hash on leaf 7's path
    edited = dict(files, **{f"{shard}/tile/0/000": bytes(tile)})
    assert verify(edited.__getitem__, shard, 8, codes[8], key) is False
    bundle = files[f"{shard}/tile/entries/001.p/44"].replace(b'"accepted_at":"2023', b'"accepted_at":"2024')
    edited = dict(files, **{f"{shard}/tile/entries/001.p/44": bundle})
    assert verify(edited.__getitem__, shard, 260, codes[260], key) is False


def doc_cosigned_by():
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "def cosigned_by(" in b)
    namespace: dict = {}
    exec(block, namespace)
    return namespace["cosigned_by"]


def test_the_documented_witness_check_accepts_posray_cosignatures_and_nothing_else():
    from cryptography.exceptions import InvalidSignature

    from posray.domain.cosignature import Cosigner, with_signatures

    witness = Cosigner("witness.example.org/w1", bytes(range(1, 33)))
    code, bundle = bundle_for(5, 9)
    note = bundle["checkpoint"]
    cosigned = with_signatures(note, [witness.cosign(note.split("\n\n")[0] + "\n", 1_790_000_000)])
    assert doc_cosigned_by()(cosigned, witness.verifier_key()) == 1_790_000_000
    assert doc_cosigned_by()(note, witness.verifier_key()) is None
    assert doc_verifier()({**bundle, "checkpoint": cosigned}, SIGNER.verifier_key(), code) is True
    _, other = bundle_for(5, 10)
    moved = other["checkpoint"] + cosigned.split("\n")[-2] + "\n"  # the cosignature line, onto another tree
    with pytest.raises(InvalidSignature):
        doc_cosigned_by()(moved, witness.verifier_key())
