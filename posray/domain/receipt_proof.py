"""Offline verification of a receipt: record → leaf → inclusion proof → signed checkpoint.

Public API for customers' and auditors' own verifiers (posray.verify_receipt_bundle): it needs
only the proof bundle served by GET /v1/receipts/{code}/proof and the operator's note
verifier key, never posray's database.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from posray.domain.codes import normalize_code
from posray.domain.cosignature import CosignatureVerifier, count_cosignatures
from posray.domain.errors import CodeMalformed
from posray.domain.merkle import leaf_hash, verify_inclusion
from posray.domain.note import NoteError, NoteVerifier, open_checkpoint


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step and its outcome."""

    name: str
    ok: bool
    detail: str


def verify_receipt_bundle(bundle: dict, verifier: NoteVerifier, code: str | None = None,
                          origin_prefix: str | None = None, witnesses: list[CosignatureVerifier] = (),
                          witnesses_min: int = 0) -> list[Check]:
    """Check a proof bundle end to end; return every step (all ok means verified).

    Steps: the record names the receipt code (and the code given), the leaf hash is the hash
    of the record, the checkpoint is signed by the operator's key for the shard's log, its
    tree size and root match the proof's, the inclusion proof leads from the leaf to the root,
    and (with `witnesses_min`) that many of `witnesses` cosigned the checkpoint (c2sp.org/tlog-cosignature).
    """
    checks: list[Check] = []
    try:
        record_bytes = bundle["record"].encode()
        record = orjson.loads(record_bytes)
    except (KeyError, AttributeError, orjson.JSONDecodeError):
        return [Check("record", False, "the bundle has no readable record")]
    if code is not None:
        try:
            wanted = normalize_code(code)
            checks.append(Check("code", record.get("code") == wanted,
                                f"record names {record.get('code')}, asked for {wanted}"))
        except CodeMalformed as e:
            checks.append(Check("code", False, str(e)))
    shard, seq = record.get("shard"), record.get("seq")
    checks.append(Check("position", bundle.get("shard") == shard and bundle.get("leaf_index") == (seq or 0) - 1,
                        f"record is shard {shard} seq {seq}; proof is for shard {bundle.get('shard')} "
                        f"leaf {bundle.get('leaf_index')}"))
    leaf = leaf_hash(record_bytes)
    checks.append(Check("leaf", bundle.get("leaf_hash") in (None, leaf.hex()),
                        f"SHA-256(0x00 || record) = {leaf.hex()}"))
    checks.extend(_checkpoint_checks(bundle, verifier, shard, origin_prefix))
    try:
        proof = [bytes.fromhex(h) for h in bundle["inclusion_proof"]]
        root = bytes.fromhex(bundle["root_hash"])
        ok = verify_inclusion(leaf, bundle["leaf_index"], bundle["tree_size"], proof, root)
    except (KeyError, ValueError, TypeError):
        ok = False
    checks.append(Check("inclusion", ok, f"RFC 9162 inclusion of leaf {bundle.get('leaf_index')} "
                                         f"in tree of size {bundle.get('tree_size')}"))
    if witnesses_min > 0:
        checks.append(_witness_check(bundle.get("checkpoint"), list(witnesses), witnesses_min))
    return checks


def _witness_check(note, witnesses: list[CosignatureVerifier], wanted: int) -> Check:
    """At least `wanted` distinct witness keys cosigned the very checkpoint the proof is checked against."""
    if not note:
        return Check("witnesses", False, "the bundle carries no checkpoint to be cosigned")
    try:
        good, failed = count_cosignatures(note, witnesses)
    except NoteError as e:
        return Check("witnesses", False, str(e))
    names = ", ".join(f"{c.witness} at {c.timestamp}" for c in good) or "none"
    detail = f"{len(good)} of {wanted} required witness cosignatures verify ({names})"
    if len(good) < wanted and failed:
        detail += "; " + "; ".join(failed)
    return Check("witnesses", len(good) >= wanted, detail)


def _checkpoint_checks(bundle: dict, verifier: NoteVerifier, shard, origin_prefix) -> list[Check]:
    note = bundle.get("checkpoint")
    if not note:
        return [Check("checkpoint", False, "the bundle carries no signed checkpoint")]
    origin = f"{origin_prefix}/{shard}" if origin_prefix else None
    try:
        checkpoint = open_checkpoint(verifier, note, origin)
    except NoteError as e:
        return [Check("checkpoint", False, str(e))]
    if origin is None and not checkpoint.origin.endswith(f"/{shard}"):
        return [Check("checkpoint", False, f"origin {checkpoint.origin} is not the log of shard {shard}")]
    same = (checkpoint.tree_size == bundle.get("tree_size")
            and checkpoint.root_hash.hex() == bundle.get("root_hash"))
    return [
        Check("checkpoint", True, f"signed by {verifier.name} for {checkpoint.origin}"),
        Check("tree head", same, f"checkpoint size {checkpoint.tree_size} root {checkpoint.root_hash.hex()}"),
    ]
