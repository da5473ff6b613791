"""Use cases of retention: check the tiles archive holds the old days, then detach them from PostgreSQL."""

from __future__ import annotations

from datetime import date

from posray.domain.errors import AuditDivergence, Unavailable
from posray.domain.retention import Detach, plan_detach
from posray.services.archive import archive_size, archived_records, check_batch
from posray.services.ports import Ledger, LedgerPartitions, TileSource

TILES_ARCHIVE = "tiles archive"
CHECK_STEP_LEAVES = 1 << 14  # archived records held in memory at a time while checking a day


async def detach_before(partitions: LedgerPartitions, before: date, today: date,
                        archives: dict[str, dict[int, int]], dry_run: bool = False) -> list[Detach]:
    """Detach every daily partition before `before`, or none when any of them must stay.

    All or nothing, so the ledger never keeps a hole between detached days.

    Args:
        archives: per archive ("Parquet snapshot", "tiles archive"), the last sequence of each
            shard it holds.

    Returns:
        The plan: each partition with the one-line reason it must stay, if any.
    """
    plans = plan_detach(await partitions.attached(before), before, today, archives)
    if dry_run or any(p.reason for p in plans):
        return plans
    for plan in plans:
        await partitions.detach(plan.partition, archives)
    return plans


async def tiles_held(ledger: Ledger, partitions: LedgerPartitions, archive: TileSource,
                     before: date) -> tuple[dict[int, int], list[str]]:
    """Per shard, the last sequence the tiles archive verifiably holds of the days before `before`.

    A shard's archive counts up to its checkpoint's size (a checkpoint this ledger signed) and only
    while the records of every batch of those days give the batch's stored Merkle root; the first
    batch that does not (or whose bundles are missing) caps it just below.

    Returns:
        (held, problems): the per-shard sequences, and one line per shard capped for a reason
        other than its size.
    """
    held: dict[int, int] = {}
    problems: list[str] = []
    batches = [b for part in await partitions.attached(before) for b in await partitions.batches(part.day)]
    for shard in sorted({b.shard for b in batches}):
        try:
            held[shard] = await archive_size(ledger, archive, shard)
        except (AuditDivergence, Unavailable) as e:
            held[shard] = 0
            problems.append(str(e))
            continue
        cached: dict[int, bytes] = {}
        for header in sorted((b for b in batches if b.shard == shard), key=lambda b: b.batch_no):
            if header.last_seq > held[shard]:
                break  # beyond the archive's size: plan_detach says so
            try:
                if header.last_seq not in cached:
                    last = min(held[shard], max(header.last_seq, header.first_seq + CHECK_STEP_LEAVES))
                    cached = await archived_records(archive, shard, held[shard], header.first_seq, last)
                check_batch(header, cached)
            except (AuditDivergence, Unavailable) as e:
                held[shard] = header.first_seq - 1
                problems.append(f"{e} (the tiles archive is verified up to seq {header.first_seq - 1})")
                break
    return held, problems
