"""The ledger's daily partitions: list them with the sequences they hold, detach one, record it."""

from __future__ import annotations

import json
from datetime import date

import asyncpg

from posray.adapters.pg import translated
from posray.adapters.pg_ledger import _ms
from posray.domain import tlog
from posray.domain.chain import BatchHeader
from posray.domain.retention import DayPartition

# Leaves per block of the log's lowest stored level (levels 4, 8, ... are stored).
KEPT_BLOCK = 1 << tlog.STRIDE


class PgPartitions:
    """Partition maintenance of ledger_entries (the schema owner's work, not posray_app's)."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def attached(self, before: date) -> list[DayPartition]:
        """The attached daily partitions of days before `before`, with per-shard last sequences."""
        async with translated(), self._pool.acquire() as conn:
            names = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'ledger_entries'::regclass AND NOT i.inhdetachpending"
                " ORDER BY c.relname")
            found = []
            for (name,) in names:
                day = date.fromisoformat(f"{name[-8:-4]}-{name[-4:-2]}-{name[-2:]}")
                if day >= before:
                    continue
                # Per shard of the day: from the batch headers (small), not a scan of the rows.
                rows = await conn.fetch(
                    "SELECT shard, max(last_seq) AS last_seq, sum(last_seq - first_seq + 1) AS n"
                    " FROM ledger_batches WHERE recorded_on = $1 GROUP BY shard", day)
                found.append(DayPartition(name, day, sum(r["n"] for r in rows),
                                          {r["shard"]: r["last_seq"] for r in rows}))
        return found

    async def detach(self, part: DayPartition, archives: dict[str, dict[int, int]]) -> None:
        """DETACH PARTITION CONCURRENTLY (appends and lookups go on), then record it.

        A detach interrupted earlier (left pending) is finalized instead.
        """
        async with translated(), self._pool.acquire() as conn:
            pending = await conn.fetchval(
                "SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid = to_regclass($1)"
                " AND i.inhparent = 'ledger_entries'::regclass", part.name)
            # The leaves of each shard's last, shared 16-leaf block stay (first, so a crash before
            # the detach leaves only a harmless copy).
            await conn.execute(
                f'INSERT INTO ledger_kept_leaves (shard, seq, leaf_hash) SELECT shard, seq, leaf_hash'
                f' FROM "{part.name}" WHERE (shard, seq) IN (SELECT s.shard::int, q FROM'
                f' jsonb_each_text($1::jsonb) AS s(shard, last), generate_series('
                f' ((s.last::bigint - 1) / {KEPT_BLOCK}) * {KEPT_BLOCK} + 1, s.last::bigint) AS q)'
                f' ON CONFLICT DO NOTHING', json.dumps({str(s): q for s, q in part.last_seqs.items()}))
            how = "FINALIZE" if pending else "CONCURRENTLY"
            # Not in a transaction block: CONCURRENTLY runs as two transactions of its own.
            await conn.execute(f'ALTER TABLE ledger_entries DETACH PARTITION "{part.name}" {how}')
            await conn.execute(
                "INSERT INTO ledger_detached (partition, day, rows, last_seqs, archives)"
                " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) ON CONFLICT DO NOTHING",
                part.name, part.day, part.rows, json.dumps({str(s): q for s, q in part.last_seqs.items()}),
                json.dumps({k: {str(s): q for s, q in v.items()} for k, v in archives.items()}))

    async def batches(self, day: date) -> list[BatchHeader]:
        """The batch headers recorded on `day`, by shard and batch number (ledger_batches stays whole)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT shard, batch_no, first_seq, last_seq, merkle_root, prev_hash, recorded_at"
                " FROM ledger_batches WHERE recorded_on = $1 ORDER BY shard, batch_no", day)
        return [BatchHeader(r["shard"], r["batch_no"], r["first_seq"], r["last_seq"], bytes(r["merkle_root"]),
                            bytes(r["prev_hash"]), _ms(r["recorded_at"])) for r in rows]

    async def detached(self) -> list[tuple[str, date]]:
        """(partition, day) of every partition detached so far."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT partition, day FROM ledger_detached ORDER BY day")
        return [(r["partition"], r["day"]) for r in rows]
