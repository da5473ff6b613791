"""Use case `lookup`: a customer finds a receipt by its code or by the printed fields.

A recorded receipt comes with its batch, leaf index, RFC 6962 inclusion proof and the
batch's chain hash; an accepted one (captured, not yet recorded) with its status only.
A code resolves only to the document it was issued for (its tag binds the document's hash):
when its place holds another document, or nothing, and the fences or the ledger writers
recorded that the capture store lost what was acknowledged there, the answer is 410 "lost".
Receipts of days that left the ledger (retention) are read back from the tiles archive and
checked against the batch roots and log nodes that stay in PostgreSQL (posray.services.archive);
by printed fields they are found through an index that survives (the Parquet snapshot).
"""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import orjson

from posray.domain.chain import record_code, record_document
from posray.domain.codes import CodeKey, CodePlace, binds, display_code, locate_code, make_code
from posray.domain.errors import NotFound, ReceiptLost
from posray.domain.merkle import inclusion_proof
from posray.services import proofs
from posray.services.archive import ArchivedEntry, archived_entry
from posray.services.ports import CaptureLog, FenceLedger, Ledger, ReceiptIndex, RecordedEntry, TileSource
from posray.domain.transaction import document_hash, issued_at_ms, shard_of, utc_iso_ms

_PRINTED = ("terminal_id", "counter", "issued_at", "type", "currency", "items", "payments",
            "total_minor", "vat", "refers_to")


async def by_code(ledger: Ledger, capture: CaptureLog, fences: FenceLedger, code_key: CodeKey,
                  text: str, archive: TileSource | None = None) -> dict:
    """The receipt named by a code.

    Args:
        archive: the tiles archive, where the records of detached days are read back from.

    Raises:
        Unavailable: its day was detached and the archive cannot give it (503).
        AuditDivergence: the archive contradicts the ledger (500).
        CodeMalformed: the text cannot be a code (400).
        ReceiptLost: the code was acknowledged, but the capture store lost its document (410).
        NotFound: no receipt has this code (404).
    """
    place = locate_code(code_key, text)
    receipt = await _at(ledger, capture, code_key, place, archive)
    if receipt is None:
        await _raise_if_lost(fences, code_key, place)
        raise NotFound("no receipt has this code")
    return receipt


async def proof_bundle(ledger: Ledger, fences: FenceLedger, code_key: CodeKey, text: str,
                       tree_size: int | None = None, cosigned_min: int = 0,
                       archive: TileSource | None = None) -> dict:
    """Everything needed to verify a receipt offline: record, leaf, inclusion proof, checkpoint.

    Raises:
        CodeMalformed: the text cannot be a code (400).
        ReceiptLost: the code was acknowledged, but the capture store lost its document (410).
        NotFound: unknown code, not recorded yet, or no checkpoint covers it yet.
    """
    place = locate_code(code_key, text)
    entry, leaves = await ledger.entry(place.shard, place.seq), None
    if entry is None and (archived := await archived_entry(ledger, archive, place.shard, place.seq)):
        entry, leaves = archived.entry, archived.leaves
    if entry is None or not _binds_record(code_key, place, entry.record):
        await _raise_if_lost(fences, code_key, place)
        raise NotFound("no recorded receipt has this code (it may still be on its way to the ledger)")
    bundle = await proofs.inclusion(ledger, entry.shard, entry.seq, tree_size, cosigned_min, leaves)
    return {"code": place.code, "record": entry.record.decode(),
            "leaf_hash": entry.leaf_hash.hex(), **bundle}


async def by_fields(
    ledger: Ledger, capture: CaptureLog, code_key: CodeKey, shard_count: int,
    terminal_id: str, counter: int, day: date, total_minor: int,
    archive: TileSource | None = None, index: ReceiptIndex | None = None,
) -> dict:
    """The receipt with these printed fields (terminal, counter, local date, total).

    Args:
        archive: the tiles archive (records of detached days).
        index: where detached days' receipts are found by terminal and counter (the Parquet
            snapshot); asked only when the ledger and the capture store match nothing.

    Raises:
        NotFound: nothing matches all four fields.
    """
    shard = shard_of(terminal_id, shard_count)
    seq = await capture.seq_of(shard, terminal_id, counter)
    candidates = [(shard, seq)] if seq else []
    # A document is recorded after it is issued, and its printed local date is at most a day
    # ahead of UTC: only batches of that day on can hold it (the ledger's daily partitions).
    since = day - timedelta(days=1)
    candidates += [(s, q) for s, q, _, _ in await ledger.find_by_fields(terminal_id, counter, since)]
    receipt = await _matching(ledger, capture, code_key, archive, candidates,
                              (terminal_id, counter, day.isoformat(), total_minor))
    if receipt is None and index is not None:
        # Not in the ledger's days: perhaps in a detached one (one snapshot scan, only now).
        found = await asyncio.to_thread(index.find, terminal_id, counter)
        receipt = await _matching(ledger, capture, code_key, archive, found,
                                  (terminal_id, counter, day.isoformat(), total_minor))
    if receipt is None:
        raise NotFound("no receipt matches this terminal, counter, date and total")
    return receipt


async def _matching(ledger: Ledger, capture: CaptureLog, code_key: CodeKey, archive: TileSource | None,
                    candidates: list[tuple[int, int]], printed: tuple[str, int, str, int]) -> dict | None:
    """The first receipt at one of `candidates` whose printed fields are (terminal, counter, day, total)."""
    for shard, seq in dict.fromkeys(candidates):
        receipt = await _document_at(ledger, capture, code_key, shard, seq, archive)
        if receipt is not None and (receipt["terminal_id"], receipt["counter"], receipt["issued_at"][:10],
                                    receipt["total_minor"]) == printed:
            return receipt
    return None


async def _at(ledger: Ledger, capture: CaptureLog, code_key: CodeKey, place: CodePlace,
              archive: TileSource | None) -> dict | None:
    """The receipt at the code's place if the code was issued for the document found there."""
    entry = await ledger.entry(place.shard, place.seq)
    if entry is not None:
        return await _recorded(ledger, entry) if _binds_record(code_key, place, entry.record) else None
    pending = await capture.pending(place.shard, place.seq)
    if pending is None:
        # It may have been recorded (and removed from the stream) between the two reads.
        entry = await ledger.entry(place.shard, place.seq)
        if entry is None:
            archived = await archived_entry(ledger, archive, place.shard, place.seq)
            if archived is not None and _binds_record(code_key, place, archived.entry.record):
                return await _recorded(ledger, archived.entry, archived)
            return None
        return await _recorded(ledger, entry) if _binds_record(code_key, place, entry.record) else None
    accepted_at_ms, canonical = pending
    if not binds(code_key, place, document_hash(canonical)):
        return None
    return _accepted(place.code, place.shard, place.seq, accepted_at_ms, canonical)


async def _document_at(ledger: Ledger, capture: CaptureLog, code_key: CodeKey,
                       shard: int, seq: int, archive: TileSource | None = None) -> dict | None:
    """Whatever document sits at (shard, seq), recorded or captured, with the code it was issued."""
    entry = await ledger.entry(shard, seq)
    if entry is not None:
        return await _recorded(ledger, entry)
    pending = await capture.pending(shard, seq)
    if pending is None:
        entry = await ledger.entry(shard, seq)
        if entry is None:
            archived = await archived_entry(ledger, archive, shard, seq)
            return None if archived is None else await _recorded(ledger, archived.entry, archived)
        return await _recorded(ledger, entry)
    accepted_at_ms, canonical = pending
    code = make_code(code_key, shard, seq, document_hash(canonical))
    return _accepted(code, shard, seq, accepted_at_ms, canonical)


def _accepted(code: str, shard: int, seq: int, accepted_at_ms: int, canonical: bytes) -> dict:
    return _printed(orjson.loads(canonical), code, shard, seq, accepted_at_ms, canonical) | {
        "status": "accepted",
        "ledger": None,
    }


def _binds_record(code_key: CodeKey, place: CodePlace, record: bytes) -> bool:
    """True when the code was issued for the recorded document (by the record's version)."""
    return place.code == record_code(code_key, place.shard, place.seq, record)


async def _raise_if_lost(fences: FenceLedger, code_key: CodeKey, place: CodePlace) -> None:
    """Raise ReceiptLost when the code's place is where a capture store lost acknowledged documents."""
    for conflict in await fences.conflicts(place.shard, place.seq):
        if binds(code_key, place, conflict.document_hash):
            raise ReceiptLost(
                f"this receipt was acknowledged at {conflict.accepted_at.isoformat()} but the capture "
                "store gave its place in the ledger to another document; it was never recorded. The "
                "operator has been alerted; keep the paper receipt")
    for loss in await fences.losses(place.shard, place.seq):
        certainty = "was" if loss.exact else "may have been"
        raise ReceiptLost(
            f"a receipt with this code {certainty} acknowledged and then lost by the capture store "
            f"before it reached the ledger (detected {loss.detected_at.isoformat()}); the operator "
            "has been alerted; keep the paper receipt")


async def _log_proof(ledger: Ledger, entry: RecordedEntry, leaves: dict | None = None) -> dict | None:
    try:
        return await proofs.inclusion(ledger, entry.shard, entry.seq, leaves=leaves)
    except NotFound:
        return None


async def _recorded(ledger: Ledger, entry: RecordedEntry, archived: ArchivedEntry | None = None) -> dict:
    """A recorded receipt; `archived`: read back from the tiles archive, with its batch's and block's leaves."""
    record = orjson.loads(entry.record)
    if archived is None:
        leaves = await ledger.batch_leaves(entry.shard, entry.batch_no)
    else:
        leaves = archived.batch_leaves
    header = entry.header
    canonical = record_document(entry.record)
    accepted_at_ms = issued_at_ms(record["accepted_at"])
    body = _printed(record["document"], record["code"], entry.shard, entry.seq, accepted_at_ms, canonical)
    return body | {
        "status": "recorded",
        "merchant_id": entry.merchant_id,
        "ledger": {
            "batch_no": entry.batch_no,
            "leaf_index": entry.leaf_index,
            "leaf_hash": entry.leaf_hash.hex(),
            "record": entry.record.decode(),
            "batch_size": header.size,
            "inclusion_proof": [h.hex() for h in inclusion_proof(entry.leaf_index, leaves)],
            "header": orjson.loads(header.to_bytes()),
            "header_hash": entry.header_hash.hex(),
        },
        "log": await _log_proof(ledger, entry, archived.leaves if archived else None),
    }


def _printed(doc: dict, code: str, shard: int, seq: int, accepted_at_ms: int, canonical: bytes) -> dict:
    return {
        "code": code,
        "code_display": display_code(code),
        "merchant_id": None,
        **{k: doc.get(k) for k in _PRINTED},
        "shard": shard,
        "seq": seq,
        "accepted_at": utc_iso_ms(accepted_at_ms),
        "document_hash": document_hash(canonical).hex(),
    }
