"""The ledger's side of fencing: fence epochs, reservations, recorded losses and conflicts.

Every fence is set in one transaction under a per-shard advisory lock, reading the ledger's
height in the same transaction, so no two processes set fences of one shard at once and a
fence never starts below what the ledger holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import asyncpg

from posray.adapters.pg import TRANSIENT, translated
from posray.domain.errors import LedgerLive
from posray.domain.fence import Fence, FencePlan, PriorFence

_LOCK_CLASS = 7263005  # advisory lock namespace of fences: (class, shard)


@dataclass(frozen=True, slots=True)
class Loss:
    """Sequences of a shard that were acknowledged and lost (or, not exact, may have been)."""

    shard: int
    epoch: int
    lost_from: int
    lost_to: int
    exact: bool
    reason: str
    detected_at: datetime


@dataclass(frozen=True, slots=True)
class Conflict:
    """A captured document whose place the ledger holds with another document."""

    shard: int
    seq: int
    document_hash: bytes
    document: bytes
    accepted_at: datetime
    released: bool


@dataclass(frozen=True, slots=True)
class FenceState:
    """A shard's latest fence as the ledger holds it, with the highest reservation of its epoch."""

    shard: int
    epoch: int
    store: str
    floor: int
    reserved: int
    ledger_seq: int
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    """A recorded document found by its terminal and counter."""

    seq: int
    record: bytes
    accepted_at_ms: int


Plan = Callable[[int, PriorFence | None], FencePlan]  # (ledger height, prior fence) -> plan


class PgFences:
    """Reads and appends the fencing tables through an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def establish(self, shard: int, store: str, store_seq: int, plan: Plan) -> Fence:
        """Set the shard's next fence, as `plan` decides from the ledger's height and the prior fence.

        Raises:
            StoreMismatch: from `plan`, when another store holds the shard.
            Unavailable: PostgreSQL is unreachable.
        """
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLASS, shard)
            ledger_seq = await conn.fetchval(
                "SELECT last_seq FROM ledger_batches WHERE shard = $1 ORDER BY batch_no DESC LIMIT 1",
                shard) or 0
            prior = await _prior(conn, shard)
            decided = plan(ledger_seq, prior)
            await conn.execute(
                "INSERT INTO capture_fences (shard, epoch, store, floor_seq, ledger_seq, store_seq,"
                " lost_from, lost_to, lost_exact, reason, keys_lost)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                shard, decided.epoch, store, decided.floor, ledger_seq, store_seq,
                decided.lost_from, decided.lost_to, decided.lost_exact, decided.reason, decided.keys_lost)
            await conn.execute(
                "INSERT INTO capture_reservations (shard, epoch, reserved_seq) VALUES ($1, $2, $3)",
                shard, decided.epoch, decided.reserved)
            keys_lost_at_ms = await conn.fetchval(
                "SELECT (extract(epoch FROM max(created_at)) * 1000)::bigint FROM capture_fences"
                " WHERE shard = $1 AND keys_lost", shard)
        return Fence(shard, decided.epoch, decided.floor, decided.reserved, keys_lost_at_ms)

    async def recorded(self, shard: int, counters: list[tuple[str, int]]) -> dict[tuple[str, int], Recorded]:
        """What the ledger holds of these (terminal, counter) in `shard`: the idempotency a store lost.

        Raises:
            Unavailable: PostgreSQL is unreachable.
        """
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT e.terminal_id, e.counter, e.seq, e.record,"
                " (extract(epoch FROM e.accepted_at) * 1000)::bigint AS accepted_ms"
                " FROM ledger_entries e JOIN unnest($2::text[], $3::bigint[]) AS p(terminal_id, counter)"
                " ON e.terminal_id = p.terminal_id AND e.counter = p.counter WHERE e.shard = $1"
                " ORDER BY e.seq", shard, [t for t, _ in counters], [c for _, c in counters])
        found: dict[tuple[str, int], Recorded] = {}
        for r in rows:  # the first recording of a counter is the one its terminal was answered
            found.setdefault((r["terminal_id"], r["counter"]), Recorded(r["seq"], bytes(r["record"]), r["accepted_ms"]))
        return found

    async def reserve(self, shard: int, epoch: int, reserved_seq: int) -> bool:
        """Extend the reservation of `epoch`; False when a newer epoch fenced this one out."""
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", _LOCK_CLASS, shard)
            latest = await conn.fetchval(
                "SELECT max(epoch) FROM capture_fences WHERE shard = $1", shard)
            if latest != epoch:
                return False
            await conn.execute(
                "INSERT INTO capture_reservations (shard, epoch, reserved_seq) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING", shard, epoch, reserved_seq)
        return True

    async def latest_epoch(self, shard: int) -> int | None:
        async with translated(), self._pool.acquire() as conn:
            return await conn.fetchval("SELECT max(epoch) FROM capture_fences WHERE shard = $1", shard)

    async def losses(self, shard: int | None = None, seq: int | None = None) -> list[Loss]:
        """Recorded losses, of one shard and covering one sequence when given."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT shard, epoch, lost_from, lost_to, lost_exact, reason, created_at"
                " FROM capture_fences WHERE lost_from IS NOT NULL"
                " AND ($1::int IS NULL OR shard = $1)"
                " AND ($2::bigint IS NULL OR $2 BETWEEN lost_from AND lost_to)"
                " ORDER BY shard, epoch", shard, seq)
        return [Loss(r["shard"], r["epoch"], r["lost_from"], r["lost_to"], r["lost_exact"],
                     r["reason"], r["created_at"]) for r in rows]

    async def recorded_twice(self) -> list[tuple[int, str, int, tuple[int, ...]]]:
        """(shard, terminal, counter, seqs) of counters the ledger holds more than once, among the
        documents recorded after a fence found its store without idempotency keys (the only way a
        resend is captured twice). Reads only those recent entries and the terminal index.
        """
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "WITH lost AS (SELECT shard, min(floor_seq) AS floor_seq FROM capture_fences"
                "  WHERE keys_lost GROUP BY shard)"
                " SELECT e.shard, e.terminal_id, e.counter,"
                "  array_agg(DISTINCT d.seq ORDER BY d.seq) AS seqs"
                " FROM lost JOIN ledger_entries e ON e.shard = lost.shard AND e.seq > lost.floor_seq"
                " JOIN ledger_entries d ON d.terminal_id = e.terminal_id AND d.counter = e.counter"
                " GROUP BY e.shard, e.terminal_id, e.counter HAVING count(DISTINCT d.seq) > 1"
                " ORDER BY e.shard, e.terminal_id, e.counter")
        return [(r["shard"], r["terminal_id"], r["counter"], tuple(r["seqs"])) for r in rows]

    async def add_conflicts(self, shard: int, found: list[tuple[int, bytes, bytes, int]]) -> None:
        """Write (seq, document hash, document, accepted_at_ms) of conflicting captured documents."""
        async with translated(), self._pool.acquire() as conn:
            await conn.executemany(
                "INSERT INTO capture_conflicts (shard, seq, document_hash, document, accepted_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                [(shard, seq, h, d, datetime.fromtimestamp(ms / 1000, tz=timezone.utc))
                 for seq, h, d, ms in found])

    async def conflicts(self, shard: int | None = None, seq: int | None = None) -> list[Conflict]:
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT c.shard, c.seq, c.document_hash, c.document, c.accepted_at,"
                " r.shard IS NOT NULL AS released FROM capture_conflicts c"
                " LEFT JOIN capture_conflicts_released r USING (shard, seq, document_hash)"
                " WHERE ($1::int IS NULL OR c.shard = $1) AND ($2::bigint IS NULL OR c.seq = $2)"
                " ORDER BY c.shard, c.seq", shard, seq)
        return [Conflict(r["shard"], r["seq"], bytes(r["document_hash"]), bytes(r["document"]),
                         r["accepted_at"], r["released"]) for r in rows]

    async def release_conflicts(self, shard: int, by: str) -> list[tuple[int, bytes]]:
        """Release every unreleased conflict of `shard` (they stay recorded as lost).

        Returns:
            The (seq, document hash) of each conflict released by this call, by sequence.
        """
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "INSERT INTO capture_conflicts_released (shard, seq, document_hash, released_by)"
                " SELECT shard, seq, document_hash, $2 FROM capture_conflicts WHERE shard = $1"
                " ON CONFLICT DO NOTHING RETURNING seq, document_hash", shard, by)
        return sorted((r["seq"], bytes(r["document_hash"])) for r in rows)

    async def latest(self, shards: list[int] | None = None) -> dict[int, FenceState]:
        """Each fenced shard's latest fence (of `shards` when given)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT ON (f.shard) f.shard, f.epoch, f.store, f.floor_seq, f.ledger_seq, f.reason,"
                " f.created_at, (SELECT max(reserved_seq) FROM capture_reservations r"
                "  WHERE r.shard = f.shard AND r.epoch = f.epoch) AS reserved"
                " FROM capture_fences f WHERE ($1::int[] IS NULL OR f.shard = ANY($1::int[]))"
                " ORDER BY f.shard, f.epoch DESC", shards)
        return {r["shard"]: FenceState(r["shard"], r["epoch"], r["store"], r["floor_seq"], r["reserved"],
                                       r["ledger_seq"], r["reason"], r["created_at"]) for r in rows}

    @contextlib.asynccontextmanager
    async def offline(self, shards: list[int]) -> AsyncIterator[None]:
        """Hold the fence locks of `shards` while an offline load writes them, on a ledger never fenced.

        A fence is set under the same per-shard lock (`establish`), so a capture store that
        starts meanwhile waits and is then fenced above what the load wrote.

        Raises:
            LedgerLive: a capture store was fenced against this ledger (on any shard).
            Unavailable: PostgreSQL is unreachable.
        """
        async with translated(), self._pool.acquire() as conn:
            try:
                for shard in sorted(shards):  # one order for every holder: no deadlock
                    await conn.execute("SELECT pg_advisory_lock($1, $2)", _LOCK_CLASS, shard)
                stores = await conn.fetch(
                    "SELECT store, count(DISTINCT shard) AS shards FROM capture_fences GROUP BY store ORDER BY store")
                if stores:
                    named = ", ".join(f"{r['store']} ({r['shards']} shards)" for r in stores)
                    raise LedgerLive(
                        f"the ledger is live: capture store(s) {named} are fenced against it, and history "
                        "written here would take sequences capture hands out; generate into a database of "
                        "its own")
                yield
            finally:
                with contextlib.suppress(*TRANSIENT):  # a lost connection released its locks already
                    await conn.execute("SELECT pg_advisory_unlock_all()")

async def _prior(conn, shard: int) -> PriorFence | None:
    row = await conn.fetchrow(
        "SELECT f.epoch, f.store, (SELECT max(reserved_seq) FROM capture_reservations r"
        "  WHERE r.shard = f.shard AND r.epoch = f.epoch) AS reserved"
        " FROM capture_fences f WHERE f.shard = $1 ORDER BY f.epoch DESC LIMIT 1", shard)
    return None if row is None else PriorFence(row["epoch"], row["store"], row["reserved"])
