"""The retention rule: which daily partitions may be detached, and the one-line reason when not."""

from __future__ import annotations

from datetime import date

from posray.domain.retention import DayPartition, plan_detach

TODAY = date(2026, 12, 7)


def part(day: str, **last_seqs) -> DayPartition:
    d = date.fromisoformat(day)
    return DayPartition(f"ledger_entries_{d:%Y%m%d}", d, 10, {int(k[1:]): v for k, v in last_seqs.items()})


class TestPlanDetach:
    def test_days_held_by_every_archive_may_go(self):
        plans = plan_detach([part("2026-11-01", s1=10, s2=4), part("2026-11-02", s1=20)], date(2026, 11, 3),
                            TODAY, {"Parquet snapshot": {1: 20, 2: 4}})
        assert [(p.partition.day.day, p.reason) for p in plans] == [(1, None), (2, None)]

    def test_days_from_before_on_are_left_alone(self):
        assert plan_detach([part("2026-11-05", s1=10)], date(2026, 11, 5), TODAY, {"Parquet snapshot": {}}) == []

    def test_a_day_the_snapshot_does_not_hold_entirely_stays(self):
        (plan,) = plan_detach([part("2026-11-01", s1=10)], date(2026, 11, 2), TODAY, {"Parquet snapshot": {1: 9}})
        assert plan.reason == ("ledger_entries_20261101: the Parquet snapshot holds shard 1 up to seq 9"
                               " but 2026-11-01 reaches seq 10")

    def test_a_second_archive_such_as_the_tiles_must_hold_the_day_too(self):
        (plan,) = plan_detach([part("2026-11-01", s1=10)], date(2026, 11, 2), TODAY,
                              {"Parquet snapshot": {1: 10}, "tiles": {1: 3}})
        assert "the tiles holds shard 1 up to seq 3" in plan.reason

    def test_yesterday_and_today_stay_whatever_the_archives_hold(self):
        plans = plan_detach([part("2026-12-06"), part("2026-12-07")], date(2026, 12, 8), TODAY, {})
        assert all("too recent" in p.reason for p in plans)
