"""The PostgreSQL ledger: chain heads, batch writes (COPY in one transaction) and reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import asyncpg

from posray.adapters.pg import translated
from posray.domain.chain import BatchHeader, ChainHead
from posray.domain.errors import LedgerRace

ENTRY_COLUMNS = (
    "shard", "seq", "batch_no", "leaf_index", "terminal_id", "counter",
    "issued_at", "accepted_at", "total_minor", "record", "leaf_hash", "recorded_on",
)
# Daily partitions the writer keeps ready beyond the day it writes (schema.sql, version 7).
PARTITION_DAYS_AHEAD = 7
# The UTC day (partition) of the batch holding sequence {seq} of shard $1, through the index on
# (shard, last_seq): reads by (shard, seq) then probe that day's indexes only, however many days
# the ledger holds (an equality on the partition key is pruned when the plan runs).
_DAY_OF = "SELECT recorded_on FROM ledger_batches WHERE shard = $1 AND last_seq >= {seq} ORDER BY last_seq LIMIT 1"


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One ledger row ready for COPY (its record already canonical)."""

    seq: int
    terminal_id: str
    counter: int
    issued_at_ms: int
    accepted_at_ms: int
    total_minor: int
    record: bytes


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    """A recorded document with where it sits in its batch."""

    shard: int
    seq: int
    batch_no: int
    leaf_index: int
    merchant_id: str | None
    record: bytes
    leaf_hash: bytes
    header: BatchHeader
    header_hash: bytes


def _ts(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)


def _ms(moment: datetime) -> int:
    return int(round(moment.timestamp() * 1000))


class PgLedger:
    """Reads and appends the ledger tables through an asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool
        self._ready: tuple[date, date] | None = None  # the days this writer knows have partitions

    async def ensure_partitions(self, day: date) -> int:
        """Create the daily partitions from `day` to PARTITION_DAYS_AHEAD days after it; how many were new."""
        async with translated(), self._pool.acquire() as conn:
            made = await conn.fetchval("SELECT posray_ledger_partitions($1, $2)",
                                       day, day + timedelta(days=PARTITION_DAYS_AHEAD))
        self._ready = (day, day + timedelta(days=PARTITION_DAYS_AHEAD))
        return made

    async def head(self, shard: int) -> ChainHead:
        """The chain head of `shard` as recorded (genesis when empty)."""
        async with translated(), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT batch_no, last_seq, header_hash FROM ledger_batches"
                " WHERE shard = $1 ORDER BY batch_no DESC LIMIT 1",
                shard,
            )
        if row is None:
            return ChainHead.genesis(shard)
        return ChainHead(shard, row["batch_no"], row["last_seq"], bytes(row["header_hash"]))

    async def append_batch(
        self, header: BatchHeader, rows: list[EntryRow], leaves: list[bytes],
        nodes: dict[tuple[int, int], bytes] | None = None,
    ) -> None:
        """Write the batch header, its rows (COPY) and the log subtrees it completes, in ONE transaction.

        Raises:
            LedgerRace: the batch number or a sequence is already recorded, i.e. another
                writer advanced this shard (the caller reloads its head).
        """
        header_hash = header.hash()
        day = _ts(header.recorded_at_ms).date()
        if self._ready is None or not self._ready[0] <= day <= self._ready[1] - timedelta(days=1):
            # Once a day per writer, a week ahead: tomorrow's partition exists before its first
            # batch (and a history written with past days gets their partitions too).
            await self.ensure_partitions(day)
        records = [
            (header.shard, r.seq, header.batch_no, i, r.terminal_id, r.counter,
             _ts(r.issued_at_ms), _ts(r.accepted_at_ms), r.total_minor, r.record, leaves[i], day)
            for i, r in enumerate(rows)
        ]
        async with translated(), self._pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(
                        "INSERT INTO ledger_batches (shard, batch_no, first_seq, last_seq,"
                        " merkle_root, prev_hash, header_hash, recorded_at)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        header.shard, header.batch_no, header.first_seq, header.last_seq,
                        header.merkle_root, header.prev_hash, header_hash,
                        _ts(header.recorded_at_ms),
                    )
                    await conn.copy_records_to_table(
                        "ledger_entries", records=records, columns=ENTRY_COLUMNS
                    )
                    if nodes:
                        await conn.copy_records_to_table(
                            "tlog_nodes", columns=("shard", "level", "idx", "hash"),
                            records=[(header.shard, lv, ix, h) for (lv, ix), h in nodes.items()],
                        )
            except asyncpg.UniqueViolationError as e:
                raise LedgerRace(
                    f"shard {header.shard}: batch {header.batch_no} or one of its sequences"
                    " is already recorded"
                ) from e

    async def stored_hashes(self, shard: int, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Transparency-log hashes by (level, index): leaves from ledger_entries, the rest from tlog_nodes."""
        leaf_seqs = [index + 1 for level, index in keys if level == 0]
        levels = [(level, index) for level, index in keys if level != 0]
        out: dict[tuple[int, int], bytes] = {}
        async with translated(), self._pool.acquire() as conn:
            if leaf_seqs:
                for r in await _by_day(conn, "leaf_hash", shard, leaf_seqs):
                    out[(0, r["seq"] - 1)] = bytes(r["leaf_hash"])
                missing = [s for s in leaf_seqs if (0, s - 1) not in out]
                if missing:  # leaves of a detached day that later proofs still need
                    rows = await conn.fetch("SELECT seq, leaf_hash FROM ledger_kept_leaves"
                                            " WHERE shard = $1 AND seq = ANY($2::bigint[])", shard, missing)
                    out.update(((0, r["seq"] - 1), bytes(r["leaf_hash"])) for r in rows)
            if levels:
                rows = await conn.fetch(
                    "SELECT n.level, n.idx, n.hash FROM tlog_nodes n"
                    " JOIN unnest($2::smallint[], $3::bigint[]) AS k(level, idx)"
                    " ON n.level = k.level AND n.idx = k.idx WHERE n.shard = $1",
                    shard, [lv for lv, _ in levels], [ix for _, ix in levels],
                )
                out.update(((r["level"], r["idx"]), bytes(r["hash"])) for r in rows)
        return out

    async def hash_range(self, shard: int, level: int, start: int, count: int) -> list[bytes]:
        """Log hashes at `level`, indexes [start, start + count), up to the first missing (one index range scan)."""
        async with translated(), self._pool.acquire() as conn:
            if level == 0:
                rows = await conn.fetch(
                    "SELECT seq - 1 AS idx, leaf_hash AS hash FROM ledger_entries"
                    " WHERE shard = $1 AND seq > $2 AND seq <= $2 + $3 ORDER BY seq",
                    shard, start, count)
            else:
                rows = await conn.fetch(
                    "SELECT idx, hash FROM tlog_nodes WHERE shard = $1 AND level = $2"
                    " AND idx >= $3 AND idx < $3 + $4 ORDER BY idx",
                    shard, level, start, count)
        return [bytes(r["hash"]) for r in _contiguous(rows, "idx", start)]

    async def record_range(self, shard: int, first_seq: int, count: int) -> list[bytes]:
        """Records of sequences [first_seq, first_seq + count), up to the first missing (one index range scan)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seq, record FROM ledger_entries WHERE shard = $1 AND seq >= $2 AND seq < $2 + $3"
                " ORDER BY seq",
                shard, first_seq, count)
        return [bytes(r["record"]) for r in _contiguous(rows, "seq", first_seq)]

    async def add_checkpoint(self, shard: int, tree_size: int, root: bytes, note: str, created_ms: int) -> None:
        """Store a signed checkpoint (append-only; the same size twice is ignored)."""
        async with translated(), self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO checkpoints (shard, tree_size, root_hash, note, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                shard, tree_size, root, note, _ts(created_ms),
            )

    async def checkpoint(self, shard: int, tree_size: int | None = None,
                         cosigned_min: int = 0) -> tuple[int, bytes, str] | None:
        """(tree_size, root, note) of the latest checkpoint of `shard` (with at least `cosigned_min`
        witness cosignatures), or of the one at `tree_size`."""
        async with translated(), self._pool.acquire() as conn:
            if tree_size is None and cosigned_min > 0:
                # Newest first: the latest checkpoints are the ones witnesses cosign, so this stops early.
                row = await conn.fetchrow(
                    "SELECT c.tree_size, c.root_hash, c.note FROM checkpoints c WHERE c.shard = $1"
                    " AND (SELECT count(*) FROM witness_cosignatures w"
                    "      WHERE w.shard = c.shard AND w.tree_size = c.tree_size) >= $2"
                    " ORDER BY c.tree_size DESC LIMIT 1", shard, cosigned_min)
            elif tree_size is None:
                row = await conn.fetchrow(
                    "SELECT tree_size, root_hash, note FROM checkpoints WHERE shard = $1"
                    " ORDER BY tree_size DESC LIMIT 1", shard)
            else:
                row = await conn.fetchrow(
                    "SELECT tree_size, root_hash, note FROM checkpoints WHERE shard = $1 AND tree_size = $2",
                    shard, tree_size)
        return None if row is None else (row["tree_size"], bytes(row["root_hash"]), row["note"])

    async def add_cosignature(self, shard: int, tree_size: int, witness: str, line: str, created_ms: int) -> None:
        """Store a witness's cosignature of a checkpoint (append-only; the same witness and size twice is ignored)."""
        async with translated(), self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO witness_cosignatures (shard, tree_size, witness, line, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                shard, tree_size, witness, line, _ts(created_ms))

    async def cosignatures(self, shard: int, tree_size: int) -> list[str]:
        """The cosignature lines of the checkpoint at `tree_size`, by witness."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT line FROM witness_cosignatures WHERE shard = $1 AND tree_size = $2 ORDER BY witness",
                shard, tree_size)
        return [r["line"] for r in rows]

    async def cosigned_size(self, shard: int, witness: str) -> int:
        """The largest size `witness` cosigned for `shard` (0: none)."""
        async with translated(), self._pool.acquire() as conn:
            found = await conn.fetchval(
                "SELECT max(tree_size) FROM witness_cosignatures WHERE shard = $1 AND witness = $2", shard, witness)
        return found or 0

    async def entry(self, shard: int, seq: int) -> RecordedEntry | None:
        """The recorded document (shard, seq) with its batch header, or None."""
        async with translated(), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT e.shard, e.seq, e.batch_no, e.leaf_index, e.record, e.leaf_hash,"
                " t.merchant_id, b.first_seq, b.last_seq, b.merkle_root, b.prev_hash,"
                " b.header_hash, b.recorded_at"
                " FROM ledger_entries e"
                " JOIN ledger_batches b ON b.shard = e.shard AND b.batch_no = e.batch_no"
                " LEFT JOIN terminals t ON t.terminal_id = e.terminal_id"
                " WHERE e.shard = $1 AND e.seq = $2"
                f" AND e.recorded_on = ({_DAY_OF.format(seq='$2')})",
                shard, seq,
            )
        return None if row is None else _recorded(row)

    async def records(self, shard: int, seqs: list[int]) -> dict[int, bytes]:
        """The recorded records of these sequences of `shard` (missing ones are left out)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await _by_day(conn, "record", shard, seqs)
        return {r["seq"]: bytes(r["record"]) for r in rows}

    async def batch_leaves(self, shard: int, batch_no: int) -> list[bytes]:
        """Leaf hashes of one batch in leaf order."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                # By the batch's sequences in its day's partition: an index range, whatever the
                # size of the day or the ledger (there is no index on batch_no).
                "SELECT e.leaf_hash FROM ledger_batches b JOIN ledger_entries e ON e.shard = b.shard"
                " AND e.recorded_on = b.recorded_on AND e.seq BETWEEN b.first_seq AND b.last_seq"
                " AND e.batch_no = b.batch_no WHERE b.shard = $1 AND b.batch_no = $2 ORDER BY e.seq",
                shard, batch_no,
            )
        return [bytes(r["leaf_hash"]) for r in rows]

    async def find_by_fields(self, terminal_id: str, counter: int,
                             since: date | None = None) -> list[tuple[int, int, int, datetime]]:
        """(shard, seq, total_minor, issued_at) of recorded documents of a terminal counter.

        With `since`, only batches recorded on that UTC day or later are searched (the days'
        partitions): a lookup of a recent receipt reads a few days' indexes, not the ledger's.
        """
        sql = ("SELECT shard, seq, total_minor, issued_at FROM ledger_entries"
               " WHERE terminal_id = $1 AND counter = $2")
        async with translated(), self._pool.acquire() as conn:
            if since is None:
                rows = await conn.fetch(sql, terminal_id, counter)
            else:
                rows = await conn.fetch(sql + " AND recorded_on >= $3", terminal_id, counter, since)
        return [(r["shard"], r["seq"], r["total_minor"], r["issued_at"]) for r in rows]

    async def archived_batch(self, shard: int, seq: int) -> tuple[BatchHeader, bytes] | None:
        """(header, header hash) of the batch holding (shard, seq) if its day was detached, else None."""
        async with translated(), self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT b.shard, b.batch_no, b.first_seq, b.last_seq, b.merkle_root, b.prev_hash,"
                " b.header_hash, b.recorded_at FROM ledger_batches b"
                " JOIN ledger_detached d ON d.day = b.recorded_on"
                " WHERE b.shard = $1 AND b.last_seq >= $2 AND b.first_seq <= $2", shard, seq)
        if row is None:
            return None
        return _header(row), bytes(row["header_hash"])

    async def heights(self) -> dict[int, tuple[int, int]]:
        """Per shard: (batches recorded, last recorded sequence)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT shard, max(batch_no) + 1 AS batches, max(last_seq) AS last_seq"
                " FROM ledger_batches GROUP BY shard"
            )
        return {r["shard"]: (r["batches"], r["last_seq"]) for r in rows}

    async def latest_checkpoints(self, shards: list[int]) -> dict[int, tuple[int, int | None]]:
        """Per shard: (size of its latest signed checkpoint, when it was signed, epoch ms).

        A shard never signed maps to (0, when its first batch was recorded), or (0, None) when
        nothing was recorded either: unsigned leaves have been waiting since then.
        """
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT s.shard, c.tree_size, c.created_at,"
                " (SELECT recorded_at FROM ledger_batches b WHERE b.shard = s.shard"
                "  ORDER BY batch_no LIMIT 1) AS first_recorded_at"
                " FROM unnest($1::int[]) AS s(shard) LEFT JOIN LATERAL"
                " (SELECT tree_size, created_at FROM checkpoints WHERE shard = s.shard"
                "  ORDER BY tree_size DESC LIMIT 1) c ON true",
                shards,
            )
        out = {}
        for r in rows:
            moment = r["created_at"] if r["tree_size"] is not None else r["first_recorded_at"]
            out[r["shard"]] = (r["tree_size"] or 0, None if moment is None else _ms(moment))
        return out

    async def ping(self) -> None:
        """Raises Unavailable unless PostgreSQL answers SELECT 1."""
        async with translated(), self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")


def _contiguous(rows, column: str, first: int) -> list:
    """The leading rows whose `column` runs first, first + 1, ... without a hole."""
    out = []
    for expected, row in enumerate(rows, start=first):
        if row[column] != expected:
            break
        out.append(row)
    return out


async def _by_day(conn, column: str, shard: int, seqs: list[int]) -> list:
    """(seq, column) of these sequences of `shard`, one query per day (partition) they were recorded on."""
    days: dict[date, list[int]] = {}
    for r in await conn.fetch(
            f"SELECT s.seq, ({_DAY_OF.format(seq='s.seq')}) AS day FROM unnest($2::bigint[]) AS s(seq)",
            shard, seqs):
        if r["day"] is not None:
            days.setdefault(r["day"], []).append(r["seq"])
    rows = []
    for day, some in days.items():
        rows += await conn.fetch(
            f"SELECT seq, {column} FROM ledger_entries WHERE shard = $1 AND recorded_on = $2"
            " AND seq = ANY($3::bigint[])", shard, day, some)
    return rows


def _header(row) -> BatchHeader:
    return BatchHeader(
        shard=row["shard"],
        batch_no=row["batch_no"],
        first_seq=row["first_seq"],
        last_seq=row["last_seq"],
        merkle_root=bytes(row["merkle_root"]),
        prev_hash=bytes(row["prev_hash"]),
        recorded_at_ms=_ms(row["recorded_at"]),
    )


def _recorded(row) -> RecordedEntry:
    header = _header(row)
    return RecordedEntry(
        shard=row["shard"],
        seq=row["seq"],
        batch_no=row["batch_no"],
        leaf_index=row["leaf_index"],
        merchant_id=row["merchant_id"],
        record=bytes(row["record"]),
        leaf_hash=bytes(row["leaf_hash"]),
        header=header,
        header_hash=bytes(row["header_hash"]),
    )
