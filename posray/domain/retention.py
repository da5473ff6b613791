"""The retention rule: which daily ledger partitions may leave PostgreSQL, and why not.

Fiscal records are kept 10 years (docs/operations.md, "Partitions and retention"); PostgreSQL
holds only the recent days. A day's partition may be detached (then dumped and archived) when it
is old enough never to be written again and every archive that keeps it verifiable holds all of
its rows: the Parquet snapshot today, the C2SP tiles later (one more entry of `archives`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

RETENTION_YEARS = 10
# A batch is recorded on the writer's UTC day; a partition younger than this may still get one.
WRITABLE_DAYS = 2


@dataclass(frozen=True, slots=True)
class DayPartition:
    """One attached daily partition of ledger_entries and the last sequence of each shard in it."""

    name: str
    day: date
    rows: int
    last_seqs: dict[int, int]


@dataclass(frozen=True, slots=True)
class Detach:
    """A partition that may be detached (reason None) or must stay (reason: one line)."""

    partition: DayPartition
    reason: str | None = None


def plan_detach(partitions: list[DayPartition], before: date, today: date,
                archives: dict[str, dict[int, int]]) -> list[Detach]:
    """The partitions of days before `before`, each with the reason it must stay, if any.

    Args:
        archives: per archive name ("Parquet snapshot", later "tiles"), the last sequence of each
            shard it holds.
    """
    plans = []
    for part in sorted((p for p in partitions if p.day < before), key=lambda p: p.day):
        plans.append(Detach(part, _reason(part, today, archives)))
    return plans


def _reason(part: DayPartition, today: date, archives: dict[str, dict[int, int]]) -> str | None:
    if part.day > today - timedelta(days=WRITABLE_DAYS):
        return f"{part.name}: {part.day} is too recent, batches may still be recorded into it"
    for name, held in archives.items():
        for shard, last_seq in sorted(part.last_seqs.items()):
            if held.get(shard, 0) < last_seq:
                return (f"{part.name}: the {name} holds shard {shard} up to seq {held.get(shard, 0)}"
                        f" but {part.day} reaches seq {last_seq}")
    return None
