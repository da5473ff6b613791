"""Reads the ledger for snapshots: shard heights, pages of rows after a watermark, counters."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from posray.adapters.pg import translated


@dataclass(frozen=True, slots=True)
class LedgerPage:
    """Consecutive ledger rows of one shard, column by column (what a snapshot needs)."""

    shard: int
    seq: list[int]
    batch_no: list[int]
    leaf_index: list[int]
    merchant_id: list[str | None]
    store: list[str | None]
    record: list[bytes]
    leaf_hash: list[bytes]

    def __len__(self) -> int:
        return len(self.seq)


class PgSnapshotSource:
    """Ledger reads for exports, each bounded by a page size."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def last_seqs(self) -> dict[int, int]:
        """Per shard, the last sequence of a committed batch.

        Batch header and rows commit in one transaction, so every row up to this sequence is
        readable: it is a consistent cut to export up to.
        """
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT shard, max(last_seq) AS last_seq FROM ledger_batches GROUP BY shard")
        return {r["shard"]: r["last_seq"] for r in rows}

    async def page(self, shard: int, after_seq: int, upto_seq: int, rows_max: int) -> LedgerPage:
        """Rows of `shard` with after_seq < seq <= upto_seq, at most `rows_max`, in seq order.

        The terminal's merchant and label (the store, for generated worlds) are joined in.
        """
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT e.seq, e.batch_no, e.leaf_index, t.merchant_id, t.label, e.record, e.leaf_hash"
                " FROM ledger_entries e LEFT JOIN terminals t ON t.terminal_id = e.terminal_id"
                " WHERE e.shard = $1 AND e.seq > $2 AND e.seq <= $3"
                # the day of the page's first batch on: older daily partitions are not probed
                " AND e.recorded_on >= (SELECT recorded_on FROM ledger_batches"
                "  WHERE shard = $1 AND last_seq > $2 ORDER BY last_seq LIMIT 1)"
                " ORDER BY e.seq LIMIT $4",
                shard, after_seq, upto_seq, rows_max,
            )
        return LedgerPage(
            shard=shard,
            seq=[r[0] for r in rows],
            batch_no=[r[1] for r in rows],
            leaf_index=[r[2] for r in rows],
            merchant_id=[r[3] for r in rows],
            store=[r[4] for r in rows],
            record=[bytes(r[5]) for r in rows],
            leaf_hash=[bytes(r[6]) for r in rows],
        )

    async def last_counters(self, terminal_ids: list[str]) -> dict[str, int]:
        """The highest recorded counter of each of `terminal_ids` that has documents."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT terminal_id, max(counter) AS counter FROM ledger_entries"
                " WHERE terminal_id = ANY($1::text[]) GROUP BY terminal_id",
                terminal_ids,
            )
        return {r["terminal_id"]: r["counter"] for r in rows}
