"""Use case `lookup`: a customer finds a receipt by its code or by the printed fields.

A recorded receipt comes with its batch, leaf index, RFC 6962 inclusion proof and the
batch's chain hash; an accepted one (captured, not yet recorded) with its status only.
"""

from __future__ import annotations

from datetime import date

import orjson

from posray.adapters.pg_ledger import PgLedger, RecordedEntry
from posray.adapters.redis_capture import RedisCapture
from posray.domain.codes import CodeKey, make_code, parse_code, display_code
from posray.domain.errors import NotFound
from posray.domain.merkle import inclusion_proof
from posray.services import proofs
from posray.domain.transaction import document_hash, issued_at_ms, shard_of, utc_iso_ms

_PRINTED = ("terminal_id", "counter", "issued_at", "type", "currency", "items", "payments",
            "total_minor", "vat", "refers_to")


async def by_code(ledger: PgLedger, capture: RedisCapture, code_key: CodeKey, text: str) -> dict:
    """The receipt named by a code.

    Raises:
        CodeMalformed: the text cannot be a code (400).
        NotFound: no receipt has this code (404).
    """
    place = parse_code(code_key, text)
    if place is None:
        raise NotFound("no receipt has this code")
    return await _at(ledger, capture, code_key, *place)


async def proof_bundle(ledger: PgLedger, code_key: CodeKey, text: str, tree_size: int | None = None) -> dict:
    """Everything needed to verify a receipt offline: record, leaf, inclusion proof, checkpoint.

    Raises:
        CodeMalformed: the text cannot be a code (400).
        NotFound: unknown code, not recorded yet, or no checkpoint covers it yet.
    """
    place = parse_code(code_key, text)
    entry = None if place is None else await ledger.entry(*place)
    if entry is None:
        raise NotFound("no recorded receipt has this code (it may still be on its way to the ledger)")
    bundle = await proofs.inclusion(ledger, entry.shard, entry.seq, tree_size)
    return {"code": make_code(code_key, entry.shard, entry.seq), "record": entry.record.decode(),
            "leaf_hash": entry.leaf_hash.hex(), **bundle}


async def by_fields(
    ledger: PgLedger, capture: RedisCapture, code_key: CodeKey, shard_count: int,
    terminal_id: str, counter: int, day: date, total_minor: int,
) -> dict:
    """The receipt with these printed fields (terminal, counter, local date, total).

    Raises:
        NotFound: nothing matches all four fields.
    """
    seq = await capture.seq_of(shard_of(terminal_id, shard_count), terminal_id, counter)
    candidates = [(shard_of(terminal_id, shard_count), seq)] if seq else []
    candidates += [(s, q) for s, q, _, _ in await ledger.find_by_fields(terminal_id, counter)]
    for shard, seq in dict.fromkeys(candidates):
        try:
            receipt = await _at(ledger, capture, code_key, shard, seq)
        except NotFound:
            continue
        if receipt["total_minor"] == total_minor and receipt["issued_at"][:10] == day.isoformat():
            return receipt
    raise NotFound("no receipt matches this terminal, counter, date and total")


async def _at(ledger: PgLedger, capture: RedisCapture, code_key: CodeKey, shard: int, seq: int) -> dict:
    entry = await ledger.entry(shard, seq)
    if entry is not None:
        return await _recorded(ledger, entry)
    pending = await capture.pending(shard, seq)
    if pending is None:
        # It may have been recorded (and removed from the stream) between the two reads.
        entry = await ledger.entry(shard, seq)
        if entry is not None:
            return await _recorded(ledger, entry)
        raise NotFound("no receipt has this code")
    accepted_at_ms, canonical = pending
    code = make_code(code_key, shard, seq)
    return _printed(orjson.loads(canonical), code, shard, seq, accepted_at_ms, canonical) | {
        "status": "accepted",
        "ledger": None,
    }


async def _log_proof(ledger: PgLedger, entry: RecordedEntry) -> dict | None:
    try:
        return await proofs.inclusion(ledger, entry.shard, entry.seq)
    except NotFound:
        return None


async def _recorded(ledger: PgLedger, entry: RecordedEntry) -> dict:
    record = orjson.loads(entry.record)
    leaves = await ledger.batch_leaves(entry.shard, entry.batch_no)
    header = entry.header
    canonical = orjson.dumps(record["document"], option=orjson.OPT_SORT_KEYS)
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
        "log": await _log_proof(ledger, entry),
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
