"""The lottery's reads of the PostgreSQL ledger: documents in a period and drawing checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import asyncpg

from posray.adapters.pg import translated

_IN_PERIOD = "accepted_at >= $1 AND accepted_at < $2"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint row: signed note, tree size, root and when it was created."""

    shard: int
    tree_size: int
    root_hash: bytes
    note: str
    created_at_ms: int


def _ts(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)


def _ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


class PgLottery:
    """Read-only queries of the lottery over the ledger tables."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def period_counts(self, start_ms: int, end_ms: int) -> dict[int, int]:
        """Per shard: documents recorded with start <= accepted_at < end (shards with none omitted)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT shard, count(*) AS n FROM ledger_entries WHERE {_IN_PERIOD} GROUP BY shard",
                _ts(start_ms), _ts(end_ms),
            )
        return {r["shard"]: r["n"] for r in rows}

    async def first_checkpoints(self, shards: list[int], not_before_ms: int) -> dict[int, StoredCheckpoint]:
        """Per shard: its earliest checkpoint created at or after `not_before_ms` (ties: smallest tree)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT DISTINCT ON (shard) shard, tree_size, root_hash, note, created_at"
                " FROM checkpoints WHERE shard = ANY($1::int[]) AND created_at >= $2"
                " ORDER BY shard, created_at, tree_size",
                shards, _ts(not_before_ms),
            )
        return {
            r["shard"]: StoredCheckpoint(r["shard"], r["tree_size"], bytes(r["root_hash"]), r["note"],
                                         _ms(r["created_at"]))
            for r in rows
        }

    async def eligible_counts(self, start_ms: int, end_ms: int, tree_sizes: dict[int, int]) -> dict[int, int]:
        """Per shard: documents in the period with seq <= the shard's tree size (absent shards: 0)."""
        shards = sorted(tree_sizes)
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT e.shard, count(*) AS n FROM ledger_entries e"
                " JOIN unnest($3::int[], $4::bigint[]) AS c(shard, tree_size)"
                " ON e.shard = c.shard AND e.seq <= c.tree_size"
                f" WHERE {_IN_PERIOD} GROUP BY e.shard",
                _ts(start_ms), _ts(end_ms), shards, [tree_sizes[s] for s in shards],
            )
        found = {r["shard"]: r["n"] for r in rows}
        return {s: found.get(s, 0) for s in shards}

    async def eligible_seqs(
        self, shard: int, start_ms: int, end_ms: int, tree_size: int, ranks: list[int]
    ) -> dict[int, tuple[int, int, bytes]]:
        """(seq, accepted_at ms, record) of the document at each 0-based rank among the shard's eligible."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT rank, seq, accepted_at, record FROM (SELECT seq, accepted_at, record,"
                " row_number() OVER (ORDER BY seq) - 1 AS rank FROM ledger_entries"
                f" WHERE shard = $3 AND seq <= $4 AND {_IN_PERIOD}) e"
                " WHERE rank = ANY($5::bigint[])",
                _ts(start_ms), _ts(end_ms), shard, tree_size, ranks,
            )
        return {r["rank"]: (r["seq"], _ms(r["accepted_at"]), bytes(r["record"])) for r in rows}
