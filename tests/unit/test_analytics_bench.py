"""The benchmark's pieces without Ray: partitions of days, partial aggregates merged into the jobs'
results, the DuckDB SQL engine, the agreement check, the report and the `posray analytics bench` flags."""

from __future__ import annotations

import json
from datetime import date

import polars as pl
import pytest

from posray.adapters import parquet_snapshot
from posray.analytics import partial
from jobs.analytics_bench import EnginesDisagree, PolarsEngine, check_agree, snapshot_size, summarise, write_report
from posray.synthetic.bulk import write_bulk_snapshot
from posray.synthetic.world import GeneratorConfig
from tooling.cli import build_parser

CONFIG = GeneratorConfig(seed=5, merchants=12, start=date(2026, 3, 23), days=21, documents=8000, shard_count=4,
                         anomalies=False)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench") / "snapshot"
    write_bulk_snapshot(folder, CONFIG)
    return folder


@pytest.fixture(scope="module")
def reference(snapshot):
    engine = PolarsEngine(snapshot)
    return engine.fiscal() | engine.retail()


def merged(snapshot, count: int, period: str = "month", top: int = 15):
    fiscal_parts, retail_parts = [], []
    for days in parquet_snapshot.partitions(snapshot, count):
        documents = parquet_snapshot.scan_partition(snapshot, "documents", days)
        items = parquet_snapshot.scan_partition(snapshot, "items", days)
        for lazy, into in ((partial.fiscal_partials(documents, period), fiscal_parts),
                           (partial.retail_partials(documents, items), retail_parts)):
            into.append(dict(zip(lazy, pl.collect_all(list(lazy.values())))))
    return partial.merge_fiscal(fiscal_parts) | partial.merge_retail(retail_parts, top)


class TestPartitions:
    def test_partitions_are_runs_of_consecutive_days_covering_every_day_once(self, snapshot):
        groups = parquet_snapshot.partitions(snapshot, 4)
        days = [d for g in groups for d in g]
        assert len(groups) == 4 and days == sorted(set(days)) and len(days) == CONFIG.days

    def test_more_partitions_than_days_gives_one_day_each(self, snapshot):
        assert [len(g) for g in parquet_snapshot.partitions(snapshot, 100)] == [1] * CONFIG.days


class TestMerge:
    @pytest.mark.parametrize("count", [1, 3, 7])
    def test_merged_partials_equal_the_jobs_results_over_all_days(self, snapshot, reference, count):
        # crosses a month boundary: partitions split months and the merge adds them up again
        check_agree(reference, merged(snapshot, count), f"{count} partitions")

    def test_weekly_periods_and_a_longer_ranking_merge_too(self, snapshot):
        documents = pl.scan_parquet(str(snapshot / "documents" / "*" / "*" / "*.parquet"))
        items = pl.scan_parquet(str(snapshot / "items" / "*" / "*" / "*.parquet"))
        whole = partial.fiscal_results(documents, "week") | partial.retail_results(documents, items, 40)
        check_agree(dict(zip(whole, pl.collect_all(list(whole.values())))), merged(snapshot, 5, "week", 40), "week")

    def test_partitions_sharing_a_day_are_refused(self, snapshot):
        days = parquet_snapshot.partitions(snapshot, 1)[0][:2]
        lazy = partial.retail_partials(parquet_snapshot.scan_partition(snapshot, "documents", days),
                                       parquet_snapshot.scan_partition(snapshot, "items", days))
        part = dict(zip(lazy, pl.collect_all(list(lazy.values()))))
        with pytest.raises(ValueError, match="share a day"):
            partial.merge_retail([part, part])


class TestDuckDB:
    def test_the_sql_engine_agrees_with_the_polars_functions(self, snapshot, reference):
        pytest.importorskip("duckdb")
        from jobs.analytics_bench_sql import DuckDBEngine

        engine = DuckDBEngine(snapshot)
        try:
            check_agree(reference, engine.fiscal() | engine.retail(), "duckdb")
        finally:
            engine.close()


class TestAgreement:
    def test_a_changed_amount_a_missing_column_or_result_is_a_disagreement(self, reference):
        totals = reference["totals"]
        changed = {**reference, "totals": totals.with_columns(pl.col("net_vat_minor") + (pl.int_range(pl.len()) == 3))}
        with pytest.raises(EnginesDisagree, match="totals"):
            check_agree(reference, changed, "x")
        with pytest.raises(EnginesDisagree, match="stores"):
            check_agree(reference, {**reference, "stores": reference["stores"].drop("cash_share")}, "x")
        with pytest.raises(EnginesDisagree, match="no result"):
            check_agree(reference, {k: v for k, v in reference.items() if k != "basket_sizes"}, "x")

    def test_floats_may_differ_in_the_last_bits(self, reference):
        nudged = reference["stores"].with_columns(pl.col("refund_ratio") * (1 + 1e-13))
        check_agree(reference, {**reference, "stores": nudged}, "x")


class TestReport:
    def test_summary_takes_medians_and_compares_ray_with_the_best_other_engine(self, snapshot, tmp_path):
        runs = {"ray": {"fiscal": [1.0, 3.0, 2.0], "retail": [4.0, 4.0, 5.0],
                        "fiscal_cpu": [2.0, 2.0, 2.0], "retail_cpu": [6.0, 7.0, 8.0]},
                "polars": {"fiscal": [1.0, 1.0, 1.0], "retail": [3.0, 3.0, 3.0],
                           "fiscal_cpu": [1.5, 1.5, 1.5], "retail_cpu": [5.0, 5.0, 5.0]},
                "duckdb": {"fiscal": [2.0, 2.0, 2.0], "retail": [2.5, 2.5, 2.5]}}
        size = snapshot_size(snapshot)
        summary = summarise(runs, size)
        assert summary["engines"]["ray"]["total_s"] == 6.0 and summary["best_other"] == "polars"
        assert summary["ray_over_best"] == 1.5
        # CPU seconds only where measured: ray 2 + 7 against polars 1.5 + 5
        assert summary["ray_over_best_cpu"] == round(9 / 6.5, 3) and "total_cpu_s" not in summary["engines"]["duckdb"]
        rows = size["documents"]["rows"] + size["items"]["rows"]
        assert summary["engines"]["polars"]["rows_per_s"] == round(rows / 4.0)
        report = {"machine": {"cpus": 2}, "data": size, "runs": runs, "summary": summary}
        json_path, png_path = write_report(tmp_path, report)
        assert json.loads(json_path.read_text())["summary"]["ray_over_best"] == 1.5
        assert png_path.read_bytes().startswith(b"\x89PNG")


class TestShortcut:
    def test_posray_analytics_bench_takes_the_jobs_flags(self, tmp_path):
        args = build_parser().parse_args(["analytics", "bench", "--documents", "10000000", "--out", str(tmp_path),
                                          "--engines", "ray,polars", "--tasks", "4"])
        assert (args.documents, args.out, args.engines, args.tasks, args.repeat, args.days) == (
            10_000_000, tmp_path, "ray,polars", 4, 3, 91)

    def test_the_bench_says_how_to_install_duckdb_when_it_is_missing(self, tmp_path, monkeypatch, capsys):
        import jobs.bench

        monkeypatch.setattr(jobs.bench, "_has_duckdb", lambda: False)
        assert jobs.bench.main(["--out", str(tmp_path), "--documents", "100"]) == 2
        assert "pip install duckdb" in capsys.readouterr().err
