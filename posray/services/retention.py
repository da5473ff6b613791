"""Use case `detach_before`: move the ledger's old days out of PostgreSQL once they are archived."""

from __future__ import annotations

from datetime import date

from posray.domain.retention import Detach, plan_detach
from posray.services.ports import LedgerPartitions


async def detach_before(partitions: LedgerPartitions, before: date, today: date,
                        archives: dict[str, dict[int, int]], dry_run: bool = False) -> list[Detach]:
    """Detach every daily partition before `before`, or none when any of them must stay.

    All or nothing, so the ledger never keeps a hole between detached days.

    Args:
        archives: per archive ("Parquet snapshot"; the tiles will be a second one), the last
            sequence of each shard it holds.

    Returns:
        The plan: each partition with the one-line reason it must stay, if any.
    """
    plans = plan_detach(await partitions.attached(before), before, today, archives)
    if dry_run or any(p.reason for p in plans):
        return plans
    for plan in plans:
        await partitions.detach(plan.partition, archives)
    return plans
