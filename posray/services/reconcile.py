"""Use case `reconcile`: compare what the capture store acknowledged with what the ledger recorded.

Every idempotency key of the capture store names the document it acknowledged at (shard, seq).
Where that place is at or below the ledger's recorded height, the ledger must hold that very
document there; anything else means the store handed one place to two documents (aliased,
e.g. it was rewound) or a key was overwritten. The report adds what the fences recorded as
lost and every conflict the ledger writers found (released or not): each is a receipt that was
acknowledged and will never resolve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Callable, Protocol

from posray.adapters.redis_idempotency import CapturedKey
from posray.domain.chain import record_document
from posray.domain.transaction import document_hash
from posray.services.ports import Conflict, FenceLedger, Ledger, Loss

MISMATCHES_KEPT_MAX = 10_000  # listed in the report; all are counted


class KeyPages(Protocol):
    """The capture store's idempotency keys (posray.adapters.redis_idempotency)."""

    def pages(self, count: int) -> AsyncIterator[list[CapturedKey]]: ...


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A captured key whose place the ledger holds with another document (or not at all)."""

    shard: int
    seq: int
    terminal_id: str
    counter: int
    captured_hash: bytes | None    # None: the key's value is not posray's
    recorded_hash: bytes | None    # None: the ledger holds nothing at a recorded place
    conflict: str | None           # "unreleased" / "released" when a ledger writer found it too

    def to_json(self) -> dict:
        return {"shard": self.shard, "seq": self.seq, "terminal_id": self.terminal_id, "counter": self.counter,
                "captured_hash": self.captured_hash.hex() if self.captured_hash else None,
                "recorded_hash": self.recorded_hash.hex() if self.recorded_hash else None,
                "conflict": self.conflict}


@dataclass(slots=True)
class Reconciliation:
    """What a reconciliation found; `ok` when nothing was lost, conflicting or mismatched."""

    keys_scanned: int = 0
    keys_checked: int = 0      # at or below the recorded height: compared with the ledger
    keys_pending: int = 0      # above it: captured, not recorded yet
    mismatches_total: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # (shard, terminal, counter, seqs): one sale recorded more than once after a store lost its keys
    recorded_twice: list[tuple[int, str, int, tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.mismatches_total or self.losses or self.conflicts or self.recorded_twice)

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "keys_scanned": self.keys_scanned, "keys_checked": self.keys_checked,
            "keys_pending": self.keys_pending, "mismatches_total": self.mismatches_total,
            "mismatches": [m.to_json() for m in self.mismatches],
            "losses": [{"shard": x.shard, "epoch": x.epoch, "from": x.lost_from, "to": x.lost_to,
                        "exact": x.exact, "reason": x.reason, "detected_at": x.detected_at.isoformat()}
                       for x in self.losses],
            "conflicts": [{"shard": c.shard, "seq": c.seq, "document_hash": c.document_hash.hex(),
                           "accepted_at": c.accepted_at.isoformat(), "released": c.released}
                          for c in self.conflicts],
        }


async def reconcile(keys: KeyPages, ledger: Ledger, fences: FenceLedger, shards: set[int] | None = None,
                    page_keys: int = 1000, progress: Callable[[int], None] | None = None) -> Reconciliation:
    """Check every idempotency key of `shards` (all when None) against the ledger; add losses and conflicts.

    Heights are read once, first: the ledger only grows, so a place at or below them stays recorded.

    Raises:
        Unavailable: Redis or PostgreSQL is unreachable.
    """
    heights = {shard: last for shard, (_, last) in (await ledger.heights()).items()}
    conflicts = [c for c in await fences.conflicts() if shards is None or c.shard in shards]
    known = {(c.shard, c.seq, c.document_hash): ("released" if c.released else "unreleased") for c in conflicts}
    found = Reconciliation(losses=[x for x in await fences.losses() if shards is None or x.shard in shards],
                           conflicts=conflicts,
                           recorded_twice=[d for d in await fences.recorded_twice() if shards is None or d[0] in shards])
    async for page in keys.pages(page_keys):
        by_shard: dict[int, list[CapturedKey]] = {}
        for key in page:
            if shards is not None and key.shard not in shards:
                continue
            found.keys_scanned += 1
            if key.document_hash is not None and key.seq > heights.get(key.shard, 0):
                found.keys_pending += 1
                continue
            by_shard.setdefault(key.shard, []).append(key)
        for shard, captured in by_shard.items():
            await _check(ledger, shard, captured, known, found)
        if progress is not None:
            progress(found.keys_scanned)
    return found


async def _check(ledger: Ledger, shard: int, captured: list[CapturedKey],
                 known: dict[tuple[int, int, bytes], str], found: Reconciliation) -> None:
    """Compare keys at recorded places of one shard with the recorded documents."""
    records = await ledger.records(shard, [k.seq for k in captured if k.document_hash is not None])
    for key in captured:
        found.keys_checked += 1
        record = records.get(key.seq) if key.document_hash is not None else None
        recorded = document_hash(record_document(record)) if record is not None else None
        if recorded is not None and recorded == key.document_hash:
            continue
        found.mismatches_total += 1
        if len(found.mismatches) < MISMATCHES_KEPT_MAX:
            found.mismatches.append(Mismatch(shard, key.seq, key.terminal_id, key.counter, key.document_hash,
                                             recorded, known.get((shard, key.seq, key.document_hash))))
