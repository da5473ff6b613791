"""The demand and integrity jobs on a snapshot folder of a generated history: their Parquet
results, charts and report, the merchant kinds file, and the `posray analytics` shortcuts."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from jobs import demand as demand_job
from jobs import integrity as integrity_job
from jobs.arguments import MERCHANTS_FILE, read_merchants
from tooling.analytics_cli import write_merchants
from posray.synthetic.generator import GeneratorConfig, build_world
from tooling.cli import build_parser
from tests.unit.analytics_generated import write_snapshot

CONFIG = GeneratorConfig(seed=3, merchants=12, start=date(2026, 3, 2), days=21, documents=5000, shard_count=4)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A data folder with the snapshot and merchants.csv, and both jobs run on it."""
    data = tmp_path_factory.mktemp("data")
    history = write_snapshot(data / "snapshot", CONFIG)
    write_merchants(data / MERCHANTS_FILE, history.world)
    common = ["--data-dir", str(data)]
    assert demand_job.main(common) == 0
    assert integrity_job.main(common) == 0
    return data / "reports", history


class TestDemandJob:
    def test_it_writes_the_backtest_errors_and_next_weeks_forecast(self, reports):
        out, _ = reports
        errors = pl.read_parquet(out / "demand" / "errors.parquet")
        assert sorted(set(zip(errors["level"], errors["model"]))) == [
            (level, model) for level in ("series", "store", "total") for model in ("seasonal_naive", "weekday_mean")]
        forecast = pl.read_parquet(out / "demand" / "forecast.parquet")
        assert forecast["date"].unique().sort().to_list() == [date(2026, 3, 23 + i) for i in range(7)]
        stores = pl.read_parquet(out / "demand" / "stores.parquet")
        assert stores["forecast_minor"].sum() == pytest.approx(forecast["forecast_minor"].sum())
        for name in ("daily", "backtest", "errors_by_category", "errors_by_series"):
            assert (out / "demand" / f"{name}.parquet").exists()

    def test_it_needs_a_full_week_with_days_before_it_and_says_which_sales_it_has(self, tmp_path, capsys):
        short = GeneratorConfig(seed=3, merchants=6, start=date(2026, 3, 2), days=10, documents=1000, shard_count=4)
        write_snapshot(tmp_path / "snapshot", short)
        assert demand_job.main(["--data-dir", str(tmp_path)]) == 1
        err = capsys.readouterr().err
        assert "no full week (Monday to Sunday) of sales with a day of sales before it" in err
        assert "2026-03-02 to 2026-03-11 (10 days with sales)" in err


class TestIntegrityJob:
    def test_it_finds_the_planted_anomalies_with_the_merchant_kinds_of_the_data_folder(self, reports):
        out, history = reports
        planted = history.world.planted
        terminals = pl.read_parquet(out / "integrity" / "terminals.parquet")
        offline = {e["terminal_id"] for e in history.anomalies["late_uploads"]}
        assert set(terminals["terminal_id"]) == {planted.counter_gaps, planted.refund_heavy, planted.duplicates} | offline
        refunds = pl.read_parquet(out / "integrity" / "refunds.parquet")
        assert refunds.filter("flagged")["terminal_id"].to_list() == [planted.refund_heavy]
        assert set(refunds["peer_group"]) == {m.kind.name for m in history.world.merchants}

    def test_without_kinds_each_merchant_is_its_own_peer_group(self, reports, tmp_path):
        out, _ = reports
        data = out.parent
        assert integrity_job.main(["--data-dir", str(tmp_path), "--snapshot", str(data / "snapshot"),
                                   "--out", str(tmp_path)]) == 0
        refunds = pl.read_parquet(tmp_path / "integrity" / "refunds.parquet")
        assert set(refunds["peer_group"]) == set(refunds["merchant_id"])


class TestReports:
    @pytest.mark.parametrize("job, charts", [("demand", 3), ("integrity", 4)])
    def test_each_report_has_its_charts_and_one_page_embedding_them(self, reports, job, charts):
        out, _ = reports
        pngs = list((out / job).glob("*.png"))
        assert len(pngs) == charts and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
        page = (out / job / "report.html").read_text()
        assert page.count("data:image/png;base64,") == charts


class TestMerchantKinds:
    def test_generating_again_replaces_a_worlds_merchants_and_keeps_the_others(self, tmp_path):
        path = tmp_path / MERCHANTS_FILE
        write_merchants(path, build_world(GeneratorConfig(seed=3, merchants=6)))
        write_merchants(path, build_world(GeneratorConfig(seed=4, merchants=6)))
        write_merchants(path, build_world(GeneratorConfig(seed=3, merchants=6)))
        kinds = read_merchants(path).collect()
        assert kinds.height == 12 and kinds["merchant_id"].n_unique() == 12
        assert set(kinds["kind"]) == {"grocery", "bakery", "cafe", "pharmacy", "fashion", "florist"}


class TestShortcuts:
    def test_posray_analytics_demand_and_integrity_take_the_jobs_flags(self):
        parser = build_parser()
        args = parser.parse_args(["analytics", "demand", "--weeks", "3", "--merchant", "m1"])
        assert (args.weeks, args.merchant, args.top) == (3, ["m1"], 20)
        args = parser.parse_args(["analytics", "integrity", "--late-after-h", "24", "--duplicate-window-s", "30"])
        assert (args.late_after_h, args.duplicate_window_s, args.refund_k, args.merchant_kinds) == (24.0, 30.0, 5.0, None)
