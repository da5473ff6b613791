"""The audit's view of a ledger some of whose days were detached: their rows read back from the tiles archive.

After `posray ledger detach`, a detached day's rows are gone from `ledger_entries`, but its batch
headers, log nodes (16 leaves and up), kept leaves and checkpoints stay. `ArchivedRows` gives the
audit (posray.services.audit) the rows of those days as the archive's entry bundles hold them,
each leaf hash recomputed from the archived record (or, for the leaves a detach kept, the stored
one, which the record must then match). Every check of the audit then applies to the archived
records exactly as to stored rows: leaf hashes, record fields, batch Merkle roots, the chain,
the stored log nodes and every signed checkpoint's root. A bundle missing from the archive, or
no archive at all, is a divergence of its own (kind "tiles_archive").
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from posray.adapters.pg_audit import AuditRow
from posray.domain.errors import AuditDivergence, Unavailable
from posray.domain.merkle import leaf_hash
from posray.services.archive import archive_checkpoint, archived_records
from posray.services.audit_records import parse_record, record_columns
from posray.services.ports import TileSource


class ArchiveReader(Protocol):
    """What ArchivedRows reads besides the rows (posray.adapters.pg_audit.PgAuditSnapshot)."""

    async def rows(self, shard: int, after_seq: int, rows_max: int) -> list[AuditRow]: ...
    async def detached_spans(self, shard: int) -> list[tuple[date, int, int]]: ...
    async def batch_spans(self, shard: int, first_seq: int, last_seq: int) -> list[tuple[int, int, int]]: ...
    async def kept_leaves(self, shard: int, first_seq: int, last_seq: int) -> dict[int, bytes]: ...


class ArchivedRows:
    """A LedgerReader whose rows of detached days come from the tiles archive; the rest passes through.

    Attributes:
        days: the detached days read from the archive so far.
    """

    def __init__(self, reader, archive: TileSource | None):
        self._reader, self._archive = reader, archive
        self._spans: dict[int, list[tuple[date, int, int]]] = {}
        self.days: list[date] = []

    def __getattr__(self, name: str):  # batches, nodes, checkpoints, ...: the snapshot's own
        return getattr(self._reader, name)

    async def spans(self, shard: int) -> list[tuple[date, int, int]]:
        """The shard's detached days, (day, first seq, last seq)."""
        if shard not in self._spans:
            self._spans[shard] = await self._reader.detached_spans(shard)
        return self._spans[shard]

    async def rows(self, shard: int, after_seq: int, rows_max: int) -> list[AuditRow]:
        """As LedgerReader.rows; a page never mixes archived and stored rows.

        Raises:
            AuditDivergence: a detached day's records are not in the archive (or none is configured).
        """
        next_seq = max(after_seq, 0) + 1
        spans = await self.spans(shard)
        for day, first, last in spans:
            if first <= next_seq <= last:
                return await self._archived(shard, day, next_seq, min(last, next_seq + rows_max - 1))
        page = await self._reader.rows(shard, after_seq, rows_max)
        later = [first for _, first, _ in spans if first > next_seq]
        return [r for r in page if r.seq < min(later)] if later else page

    async def _archived(self, shard: int, day: date, first: int, last: int) -> list[AuditRow]:
        if self._archive is None:
            raise AuditDivergence(f"shard {shard}: {day} was detached (seqs from {first}) and no tiles archive is "
                                  "configured (POSRAY_TILES_ARCHIVE or --tiles) to audit it against")
        try:
            size, _ = await archive_checkpoint(self._archive, shard)
            records = await archived_records(self._archive, shard, size, first, last)
        except Unavailable as e:
            raise AuditDivergence(f"detached day {day}: {e}") from None
        kept = await self._reader.kept_leaves(shard, first, last)
        batches = await self._reader.batch_spans(shard, first, last)
        out = []
        for batch_no, batch_first, batch_last in batches:
            for seq in range(max(first, batch_first), min(last, batch_last) + 1):
                out.append(_row(seq, batch_no, seq - batch_first, records[seq], kept.get(seq)))
        if day not in self.days:
            self.days.append(day)
        return out

    def archived_up_to(self, shard: int, size: int) -> int:
        """How many of the first `size` documents of `shard` lie in detached days (read from the archive)."""
        return sum(max(0, min(last, size) - first + 1) for _, first, last in self._spans.get(shard, []))

    def day_of(self, shard: int, seq: int | None) -> date | None:
        """The detached day holding `seq` of `shard`, if any (for the report)."""
        for day, first, last in self._spans.get(shard, []):
            if seq is not None and first <= seq <= last:
                return day
        return None


def _row(seq: int, batch_no: int, leaf_index: int, record: bytes, kept: bytes | None) -> AuditRow:
    """The row the ledger held, rebuilt from the archived record: its columns are the record's, its
    leaf hash the one a detach kept when there is one (else the record's own)."""
    columns = record_columns(parse_record(record))
    return AuditRow(seq, batch_no, leaf_index, columns["terminal_id"], columns["counter"], columns["issued_at"],
                    columns["accepted_at"], columns["total_minor"], record, kept or leaf_hash(record))
