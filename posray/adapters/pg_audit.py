"""Reads the ledger for `posray audit`: every table of one shard, in bounded pages, from one snapshot."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import AsyncIterator

import asyncpg

from posray.adapters.pg import translated

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_TABLES = ("ledger_entries", "ledger_batches", "tlog_nodes", "checkpoints")


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One stored ledger row, every column the audit compares."""

    seq: int
    batch_no: int
    leaf_index: int
    terminal_id: str
    counter: int
    issued_at_ms: int
    accepted_at_ms: int
    total_minor: int
    record: bytes
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class AuditBatch:
    """One stored batch header row, with the hash stored next to it."""

    batch_no: int
    first_seq: int
    last_seq: int
    merkle_root: bytes
    prev_hash: bytes
    header_hash: bytes
    recorded_at_ms: int


@dataclass(frozen=True, slots=True)
class AuditCheckpoint:
    """One stored checkpoint row: its columns and the signed note."""

    tree_size: int
    root_hash: bytes
    note: str


def _ms(moment: datetime) -> int:
    """Epoch milliseconds of a stored timestamp, in integers (the writer stored whole ms)."""
    micros = (moment - _EPOCH) // _MICROSECOND
    return (micros + 500) // 1000


class PgAuditSource:
    """Opens read-only snapshots of the ledger and lists the shards it holds."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def shards(self) -> list[int]:
        """Every shard with a row in any ledger table (a loose index scan per table)."""
        found: set[int] = set()
        async with translated(), self._pool.acquire() as conn:
            for table in _TABLES:
                rows = await conn.fetch(
                    f"WITH RECURSIVE s AS (SELECT min(shard) AS shard FROM {table}"
                    f" UNION ALL SELECT (SELECT min(shard) FROM {table} WHERE shard > s.shard)"
                    " FROM s WHERE s.shard IS NOT NULL) SELECT shard FROM s WHERE shard IS NOT NULL"
                )
                found.update(r["shard"] for r in rows)
        return sorted(found)

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgAuditSnapshot]:
        """One REPEATABLE READ, read-only transaction: writers may append meanwhile, the audit
        sees one consistent cut (a batch header always commits with its rows)."""
        async with translated(), self._pool.acquire() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                yield PgAuditSnapshot(conn)


class PgAuditSnapshot:
    """Keyset-paged reads of one shard's tables inside a snapshot; every read is bounded."""

    def __init__(self, conn: asyncpg.Connection):
        self._conn = conn

    async def rows(self, shard: int, after_seq: int, rows_max: int) -> list[AuditRow]:
        """Ledger rows with seq > after_seq, in seq order, at most rows_max."""
        rows = await self._conn.fetch(
            "SELECT seq, batch_no, leaf_index, terminal_id, counter, issued_at, accepted_at,"
            " total_minor, record, leaf_hash FROM ledger_entries"
            " WHERE shard = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            shard, after_seq, rows_max,
        )
        return [
            AuditRow(r["seq"], r["batch_no"], r["leaf_index"], r["terminal_id"], r["counter"],
                     _ms(r["issued_at"]), _ms(r["accepted_at"]), r["total_minor"],
                     bytes(r["record"]), bytes(r["leaf_hash"]))
            for r in rows
        ]

    async def batches(self, shard: int, after_batch_no: int, rows_max: int) -> list[AuditBatch]:
        """Batch headers with batch_no > after_batch_no, in order, at most rows_max."""
        rows = await self._conn.fetch(
            "SELECT batch_no, first_seq, last_seq, merkle_root, prev_hash, header_hash, recorded_at"
            " FROM ledger_batches WHERE shard = $1 AND batch_no > $2 ORDER BY batch_no LIMIT $3",
            shard, after_batch_no, rows_max,
        )
        return [
            AuditBatch(r["batch_no"], r["first_seq"], r["last_seq"], bytes(r["merkle_root"]),
                       bytes(r["prev_hash"]), bytes(r["header_hash"]), _ms(r["recorded_at"]))
            for r in rows
        ]

    async def nodes(self, shard: int, level: int, after_idx: int, rows_max: int) -> list[tuple[int, bytes]]:
        """(index, hash) of stored log subtrees at `level` with index > after_idx, in order."""
        rows = await self._conn.fetch(
            "SELECT idx, hash FROM tlog_nodes WHERE shard = $1 AND level = $2 AND idx > $3"
            " ORDER BY idx LIMIT $4",
            shard, level, after_idx, rows_max,
        )
        return [(r["idx"], bytes(r["hash"])) for r in rows]

    async def stray_node(self, shard: int, leaves: int, stride: int) -> tuple[int, int] | None:
        """The first stored log node that is not a complete subtree of a `leaves`-leaf tree at a
        stored level (a multiple of `stride`), or None."""
        row = await self._conn.fetchrow(
            "SELECT level, idx FROM tlog_nodes WHERE shard = $1 AND (level < $3 OR level % $3 <> 0"
            " OR idx < 0 OR idx >= CASE WHEN level BETWEEN 0 AND 62 THEN $2::bigint >> level ELSE 0 END)"
            " ORDER BY level, idx LIMIT 1",
            shard, leaves, stride,
        )
        return None if row is None else (row["level"], row["idx"])

    async def detached_spans(self, shard: int) -> list[tuple[date, int, int]]:
        """(day, first seq, last seq) of the shard's days detached by retention, in order (one row per day)."""
        rows = await self._conn.fetch(
            "SELECT b.recorded_on AS day, min(b.first_seq) AS first, max(b.last_seq) AS last"
            " FROM ledger_batches b JOIN ledger_detached d ON d.day = b.recorded_on"
            " WHERE b.shard = $1 GROUP BY b.recorded_on ORDER BY first", shard)
        return [(r["day"], r["first"], r["last"]) for r in rows]

    async def batch_spans(self, shard: int, first_seq: int, last_seq: int) -> list[tuple[int, int, int]]:
        """(batch_no, first seq, last seq) of the batches holding sequences first_seq..last_seq."""
        rows = await self._conn.fetch(
            "SELECT batch_no, first_seq, last_seq FROM ledger_batches WHERE shard = $1"
            " AND last_seq >= $2 AND first_seq <= $3 ORDER BY batch_no", shard, first_seq, last_seq)
        return [(r["batch_no"], r["first_seq"], r["last_seq"]) for r in rows]

    async def kept_leaves(self, shard: int, first_seq: int, last_seq: int) -> dict[int, bytes]:
        """Leaf hashes a detach kept (ledger_kept_leaves) of sequences first_seq..last_seq."""
        rows = await self._conn.fetch(
            "SELECT seq, leaf_hash FROM ledger_kept_leaves WHERE shard = $1 AND seq BETWEEN $2 AND $3",
            shard, first_seq, last_seq)
        return {r["seq"]: bytes(r["leaf_hash"]) for r in rows}

    async def checkpoints(self, shard: int, after_size: int, rows_max: int) -> list[AuditCheckpoint]:
        """Checkpoints with tree_size > after_size, smallest first, at most rows_max."""
        rows = await self._conn.fetch(
            "SELECT tree_size, root_hash, note FROM checkpoints"
            " WHERE shard = $1 AND tree_size > $2 ORDER BY tree_size LIMIT $3",
            shard, after_size, rows_max,
        )
        return [AuditCheckpoint(r["tree_size"], bytes(r["root_hash"]), r["note"]) for r in rows]
