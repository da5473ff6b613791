"""Demand forecast: daily series, the two models, the held-out week and its error measures, on
hand-built series with hand-computed results, then on a generated history."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from posray.analytics import demand
from posray.synthetic.generator import GeneratorConfig
from tests.unit.analytics_frames import items
from tests.unit.analytics_generated import generated

START = date(2026, 3, 2)  # a Monday
SERIES = {"currency": "EUR", "merchant_id": "m1", "store": "s1", "category": "bread"}


def daily(values: list[int], **series) -> pl.LazyFrame:
    """One series: values[i] sold on START + i days."""
    keys = {**SERIES, **series}
    return pl.LazyFrame({
        **{k: [v] * len(values) for k, v in keys.items()},
        "date": [START + timedelta(days=i) for i in range(len(values))],
        "sold_minor": values,
    }, schema_overrides={"sold_minor": pl.Int64})


# Week 1 sells 100 a day, week 2 200 (closed on Sunday), week 3 150 (closed on Sunday).
THREE_WEEKS = [100] * 7 + [200] * 6 + [0] + [150] * 6 + [0]


class TestDailyDemand:
    def test_sale_lines_are_summed_per_store_category_and_day_with_zeros_on_quiet_days(self):
        lines = items(
            {"seq": 1, "local": datetime(2026, 3, 2, 9), "sku": "A", "name": "Apple", "category": "fruit", "amount_minor": 300, "store": "s1"},
            {"seq": 1, "local": datetime(2026, 3, 2, 9), "sku": "B", "name": "Pear", "category": "fruit", "amount_minor": 200, "store": "s1", "line_no": 1},
            {"seq": 2, "local": datetime(2026, 3, 4, 9), "sku": "A", "name": "Apple", "category": "fruit", "amount_minor": 300, "store": "s1"},
            {"seq": 3, "local": datetime(2026, 3, 4, 10), "sku": "A", "name": "Apple", "category": "fruit", "amount_minor": 300, "store": "s1", "type": "refund"},
            {"seq": 4, "local": datetime(2026, 3, 3, 9), "sku": "X", "name": "Soap", "category": None, "amount_minor": 90},
        )
        got = demand.daily_demand(lines).collect()
        assert got.select("store", "category", "date", "sold_minor").rows() == [
            ("s1", "fruit", date(2026, 3, 2), 500), ("s1", "fruit", date(2026, 3, 3), 0), ("s1", "fruit", date(2026, 3, 4), 300),
            ("t1", "(none)", date(2026, 3, 2), 0), ("t1", "(none)", date(2026, 3, 3), 90), ("t1", "(none)", date(2026, 3, 4), 0),
        ]


class TestBacktest:
    def test_the_last_full_week_is_held_out_and_forecast_from_the_weeks_before(self):
        rows = demand.backtest(daily(THREE_WEEKS)).collect()
        assert rows["date"].unique().sort().to_list() == [START + timedelta(days=14 + i) for i in range(7)]
        naive = rows.filter(pl.col("model") == "seasonal_naive")
        mean = rows.filter(pl.col("model") == "weekday_mean")
        assert naive["forecast_minor"].to_list() == [200.0] * 6 + [0.0]
        assert mean["forecast_minor"].to_list() == [150.0] * 6 + [50.0]
        assert mean["actual_minor"].to_list() == [150] * 6 + [0]

    def test_the_held_out_week_never_feeds_its_own_forecast(self):
        changed = THREE_WEEKS[:14] + [999] * 7
        first = demand.backtest(daily(THREE_WEEKS)).collect()["forecast_minor"]
        assert demand.backtest(daily(changed)).collect()["forecast_minor"].equals(first)

    def test_a_week_in_progress_is_not_held_out_and_days_without_history_are_left_out(self):
        rows = demand.backtest(daily(THREE_WEEKS + [120, 130])).collect()
        assert rows["date"].min() == START + timedelta(days=14)
        assert demand.backtest(daily([100] * 7)).collect().is_empty()


class TestErrors:
    def test_mae_wape_mape_and_bias_per_model(self):
        errors = demand.forecast_errors(demand.backtest(daily(THREE_WEEKS))).collect()
        naive, mean = errors.row(0, named=True), errors.row(1, named=True)
        # seasonal naive is 50 too high on the six open days; weekday mean is 50 too high on Sunday
        assert (naive["model"], naive["days"], naive["actual_minor"]) == ("seasonal_naive", 7, 900)
        assert naive["mae_minor"] == pytest.approx(300 / 7)
        assert (naive["wape"], naive["mape"], naive["bias"]) == (pytest.approx(1 / 3), pytest.approx(1 / 3), pytest.approx(1 / 3))
        assert mean["mae_minor"] == pytest.approx(50 / 7)
        assert (mean["wape"], mean["mape"], mean["bias"]) == (pytest.approx(50 / 900), 0.0, pytest.approx(50 / 900))
        assert demand.best_model(errors) == "weekday_mean"

    def test_levels_add_series_up_before_measuring(self):
        two = pl.concat([daily(THREE_WEEKS), daily(THREE_WEEKS[:14] + [250] * 6 + [0], category="cakes")])
        summary = demand.error_summary(demand.backtest(two)).collect()
        naive = {r["level"]: r for r in summary.filter(pl.col("model") == "seasonal_naive").iter_rows(named=True)}
        # bread is 50 too high and cakes 50 too low each open day: the errors cancel in the store's total
        assert naive["series"]["wape"] == pytest.approx(600 / 2400)
        assert naive["store"]["wape"] == 0.0 and naive["total"]["wape"] == 0.0
        assert (naive["series"]["days"], naive["store"]["days"], naive["total"]["days"]) == (14, 7, 7)

    def test_ties_go_to_the_simpler_model_and_nothing_measured_is_an_error(self):
        tied = pl.DataFrame({"model": ["weekday_mean", "seasonal_naive"], "wape": [0.2, 0.2]})
        assert demand.best_model(tied) == "seasonal_naive"
        with pytest.raises(ValueError):
            demand.best_model(pl.DataFrame({"model": ["weekday_mean"], "wape": [None]}, schema={"model": pl.String, "wape": pl.Float64}))


class TestNextWeek:
    def test_the_week_after_the_held_out_one_is_forecast_from_all_weeks(self):
        mean = demand.next_week(daily(THREE_WEEKS), "weekday_mean").collect()
        assert mean["date"].to_list() == [START + timedelta(days=21 + i) for i in range(7)]
        assert mean["weekday"].to_list() == list(range(1, 8))
        assert mean["forecast_minor"].to_list() == [150.0] * 6 + [pytest.approx(100 / 3)]
        naive = demand.next_week(daily(THREE_WEEKS), "seasonal_naive").collect()
        assert naive["forecast_minor"].to_list() == [150.0] * 6 + [0.0]
        with pytest.raises(ValueError):
            demand.next_week(daily(THREE_WEEKS), "prophet")

    def test_weeks_bounds_the_mean(self):
        one_week = demand.next_week(daily(THREE_WEEKS), "weekday_mean", weeks=1).collect()
        assert one_week["forecast_minor"].to_list() == [150.0] * 6 + [0.0]
        with pytest.raises(ValueError):
            demand.backtest(daily(THREE_WEEKS), weeks=0)

    def test_the_store_outlook_sums_categories_and_carries_the_store_error(self):
        two = pl.concat([daily(THREE_WEEKS), daily(THREE_WEEKS[:14] + [250] * 6 + [0], category="cakes")])
        outlook = demand.store_outlook(two, demand.backtest(two), "seasonal_naive").collect().row(0, named=True)
        assert (outlook["store"], outlook["held_out_minor"], outlook["wape"]) == ("s1", 2400, 0.0)
        assert outlook["forecast_minor"] == 2400.0


class TestGapsInTheData:
    """A snapshot where a few documents of today (posray demo) sit beside weeks of history."""

    # Three weeks of a shop closed on Sundays.
    CLOSED_SUNDAYS = [100] * 6 + [0] + [200] * 6 + [0] + [150] * 6 + [0]

    def history_then_demo(self, history: list[int], days_later: int) -> pl.LazyFrame:
        """`history` of one series, then one demo sale of another store `days_later` days after it;
        the calendar between them is zeros, as daily_demand fills it."""
        total = len(history) + days_later
        return pl.concat([daily(history + [0] * days_later),
                          daily([0] * (total - 1) + [300], store="demo", category="coffee")])

    def test_a_demo_day_months_later_leaves_the_history_held_out_and_measured(self):
        frame = self.history_then_demo(self.CLOSED_SUNDAYS, days_later=250)
        rows = demand.backtest(frame).collect()
        assert rows["date"].unique().sort().to_list() == [START + timedelta(days=14 + i) for i in range(7)]
        assert rows["store"].unique().to_list() == ["s1"]
        errors = demand.forecast_errors(rows.lazy()).collect()
        assert demand.best_model(errors) == "weekday_mean"
        assert demand.next_week(frame, "weekday_mean").collect()["date"].min() == START + timedelta(days=21)

    def test_the_days_after_the_history_before_the_gap_are_no_sales(self):
        # history ends on a Wednesday: that week is not full, the one before it is held out
        frame = self.history_then_demo(self.CLOSED_SUNDAYS + [120, 130, 140], days_later=40)
        rows = demand.backtest(frame).collect()
        assert rows["date"].min() == START + timedelta(days=14)
        history = demand.history_and_forecast(frame, "weekday_mean").collect()
        assert history.filter(pl.col("date") > START + timedelta(days=23))["actual_minor"].null_count() == 4

    def test_the_runs_of_sales_say_what_is_missing_and_what_is_left_out(self):
        runs = demand.sales_runs(self.history_then_demo(self.CLOSED_SUNDAYS, days_later=250)).collect()
        assert runs.select("first", "end", "days").rows() == [
            (START, START + timedelta(days=20), 18), (START + timedelta(days=270), START + timedelta(days=276), 1)]
        assert runs["holdout_start"].to_list() == [START + timedelta(days=14), None]
        assert "sales on 1 day from 2026-11-27 to 2026-11-27 come after a gap" in demand.left_out(runs)
        only_demo = demand.sales_runs(daily([100] * 5 + [0] * 30 + [300])).collect()
        assert demand.backtest(daily([100] * 5 + [0] * 30 + [300])).collect().is_empty()
        assert "no full week" in demand.why_no_backtest(only_demo)
        assert demand.why_no_backtest(only_demo.clear()) == "no sales in this selection"


class TestOnGeneratedHistory:
    CONFIG = GeneratorConfig(seed=3, merchants=6, start=START, days=28, documents=6000, shard_count=4)

    @pytest.fixture(scope="class")
    def frames(self):
        _, _, lines = generated(self.CONFIG)
        days = demand.daily_demand(lines.lazy()).collect()
        return days, demand.backtest(days.lazy()).collect()

    def test_every_series_is_forecast_on_each_held_out_day_by_both_models(self, frames):
        days, rows = frames
        series = days.select(demand.SERIES).unique().height
        assert rows.height == 2 * 7 * series
        assert rows["date"].min() == START + timedelta(days=21)
        assert rows.filter(pl.col("model") == "seasonal_naive")["actual_minor"].sum() == \
               days.filter(pl.col("date") >= START + timedelta(days=21))["sold_minor"].sum()

    def test_errors_shrink_as_series_add_up_and_the_forecast_covers_next_week(self, frames):
        days, rows = frames
        summary = demand.error_summary(rows.lazy()).collect()
        wape = {(r["level"], r["model"]): r["wape"] for r in summary.iter_rows(named=True)}
        for model in demand.MODELS:
            assert wape[("total", model)] < wape[("store", model)] < wape[("series", model)] < 1
        model = demand.best_model(summary.filter(pl.col("level") == "series"))
        forecast = demand.next_week(days.lazy(), model).collect()
        assert forecast.height == 7 * days.select(demand.SERIES).unique().height
        assert forecast["date"].min() == START + timedelta(days=28)

    def test_a_few_demo_documents_of_today_do_not_hide_the_four_weeks(self, frames):
        days, rows = frames
        _, _, lines = generated(self.CONFIG)
        today = datetime(2026, 12, 5, 10)
        demo = items({"seq": 1, "local": today, "sku": "C", "name": "Coffee", "category": "drinks", "amount_minor": 350})
        with_demo = demand.daily_demand(pl.concat([lines.lazy(), demo])).collect()
        assert with_demo["date"].max() == today.date()
        assert demand.backtest(with_demo.lazy()).collect().equals(rows)
        summary = demand.error_summary(rows.lazy()).collect()
        assert demand.best_model(summary.filter(pl.col("level") == "series")) in demand.MODELS
