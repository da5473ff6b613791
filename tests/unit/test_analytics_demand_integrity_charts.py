"""Demand and integrity charts name their units and currency, and say so when a check found nothing."""

from __future__ import annotations

import functools
from datetime import date, timedelta

import polars as pl
import pytest

from posray.analytics import charts, demand, demand_charts, integrity, integrity_charts
from posray.synthetic.generator import GeneratorConfig
from tests.unit.analytics_generated import generated, merchant_kinds

CONFIG = GeneratorConfig(seed=3, merchants=12, start=date(2026, 3, 2), days=14, documents=4000, shard_count=4)


@functools.cache
def all_charts():
    history, docs, lines = generated(CONFIG)
    docs, lines = docs.lazy(), lines.lazy()
    days = demand.daily_demand(lines).collect()
    rows = demand.backtest(days.lazy())
    refunds = integrity.refund_outliers(docs, merchant_kinds(history.world)).collect()
    return {
        "overview": demand_charts.overview(demand.history_and_forecast(days.lazy(), "weekday_mean").collect(),
                                           "EUR", "weekday_mean", 0.25),
        "error_by_category": demand_charts.error_by_category(
            demand.forecast_errors(rows, by=["currency", "category"]).collect(), "EUR"),
        "next_week_by_store": demand_charts.next_week_by_store(
            demand.store_outlook(days.lazy(), rows, "weekday_mean").collect(), "EUR"),
        "refund_ratios": integrity_charts.refund_ratios(refunds, integrity.REFUND_SALES_MIN),
        "late_uploads": integrity_charts.late_uploads(integrity.late_uploads(docs).collect(), integrity.LATE_AFTER),
        "counter_gaps": integrity_charts.counter_gaps(integrity.counter_gaps(docs).collect()),
        "duplicates": integrity_charts.duplicates(integrity.duplicate_receipts(docs, lines).collect(),
                                                  integrity.DUPLICATE_WINDOW),
    }


class TestCharts:
    @pytest.mark.parametrize("name", list(all_charts()))
    def test_every_chart_has_a_title_a_labelled_axis_and_renders_to_png(self, name):
        figure = all_charts()[name]
        axes = figure.axes[0]
        assert axes.get_title(loc="left") and axes.get_xlabel()
        assert charts.png_bytes(figure)[:8] == b"\x89PNG\r\n\x1a\n"

    @pytest.mark.parametrize("name", ["overview", "next_week_by_store"])
    def test_amount_axes_name_the_currency(self, name):
        axes = all_charts()[name].axes[0]
        assert "(EUR)" in axes.get_ylabel() + axes.get_xlabel()

    def test_the_overview_draws_major_units_and_both_models_on_the_held_out_week(self):
        axes = all_charts()["overview"].axes[0]
        labels = [line.get_label() for line in axes.get_lines()]
        assert any("Seasonal naive" in label for label in labels) and any("Weekday mean" in label for label in labels)
        _, _, lines = generated(CONFIG)
        first_day = lines.filter((pl.col("type") == "sale") & (pl.col("issued_local_date") == CONFIG.start))
        first_bar = axes.containers[0][0].get_height()
        assert first_bar == pytest.approx(first_day["amount_minor"].sum() / 100)

    def test_the_refund_chart_names_the_flagged_terminal(self):
        history, _, _ = generated(CONFIG)
        texts = [t.get_text() for t in all_charts()["refund_ratios"].axes[0].texts]
        assert any(history.world.planted.refund_heavy in t for t in texts)

    def test_a_check_that_found_nothing_says_so(self):
        empty_gaps = integrity.counter_gaps(pl.LazyFrame(schema={
            "merchant_id": pl.String, "terminal_id": pl.String, "counter": pl.Int64,
            "issued_at": pl.Datetime("us", "UTC")})).collect()
        figure = integrity_charts.counter_gaps(empty_gaps)
        assert "No counter gaps found" in [t.get_text() for t in figure.axes[0].texts]
        late = pl.DataFrame(schema={"terminal_id": pl.String, "uploaded_on": pl.Date, "late_documents": pl.Int64,
                                    "first_issued_date": pl.Date, "last_issued_date": pl.Date, "delay_h_max": pl.Float64})
        figure = integrity_charts.late_uploads(late, timedelta(hours=1))
        assert "No late uploads found" in [t.get_text() for t in figure.axes[0].texts]
        assert charts.png_bytes(figure)[:4] == b"\x89PNG"
