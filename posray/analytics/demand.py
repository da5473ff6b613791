"""Next week's demand per store and product category, with its error measured on held-out data.

Polars LazyFrame -> LazyFrame, no I/O. Demand is the amount sold (sale lines incl. VAT, minor
units; a refund is not negative demand) per day, store and category: a series. Two simple
models forecast a day from the same weekday of earlier weeks, so they use only what was known
before the week they forecast:

- seasonal_naive: the same weekday one week earlier;
- weekday_mean: the mean of the same weekday over the `weeks` previous weeks (fewer when the
  data is shorter).

The backtest holds out the last full week (Monday to Sunday) of the data, forecasts it from
the weeks before, and measures the error per model: MAE (per series and day, minor units), WAPE
(sum of absolute errors / sum of actuals: defined with zero days, which a store-category has
often), MAPE (over days that sold something) and bias. The model with the lower WAPE then
forecasts the week after the held-out one, from all the data.

A week or more without any sale is a gap in the data, not a week of zero demand: a snapshot may
hold a few documents of today (`posray demo`) beside weeks of generated history. The data is
cut into runs of sales without such a gap (sales_runs), and the backtest and forecast use the
last run that holds a full week with days before it; sales after that run are left out.
"""

from __future__ import annotations

import polars as pl

from posray.analytics.retail import store_key

SERIES = ("currency", "merchant_id", "store", "category")
MODELS = ("seasonal_naive", "weekday_mean")
WEEKS = 4
GAP_DAYS = 7
_DAY = pl.duration(days=1)


def daily_demand(items: pl.LazyFrame) -> pl.LazyFrame:
    """Amount sold per series and local date, on a complete calendar (0 on days without sales).

    The calendar runs from the first to the last date in the data; a series is every
    (currency, merchant, store, category) that sold anything. Missing categories are "(none)".
    Columns: currency, merchant_id, store, category, date, sold_minor.
    """
    sold = (
        items.filter(pl.col("type") == "sale")
        .group_by("currency", "merchant_id", store_key(), pl.col("category").fill_null("(none)"),
                  pl.col("issued_local_date").alias("date"))
        .agg(pl.col("amount_minor").sum().alias("sold_minor"))
    )
    calendar = sold.select(pl.date_range(pl.col("date").min(), pl.col("date").max(), "1d").alias("date"))
    return (
        sold.select(SERIES).unique()
        .join(calendar, how="cross")
        .join(sold, on=[*SERIES, "date"], how="left")
        .with_columns(pl.col("sold_minor").fill_null(0))
        .sort(*SERIES, "date")
    )


def sales_runs(daily: pl.LazyFrame) -> pl.LazyFrame:
    """The runs of dates with sales that no gap of GAP_DAYS or more days without any sale splits,
    and the week each run can hold out.

    A run ends at its last sale, or after it on the days of weekdays the run never sold on (a
    shop closed on Sundays); the last run extends at least to where the data ends. Zero days
    after a run's end are a gap or beyond the data, not days without demand. `holdout_start` is
    the Monday of the run's last full week (Monday to Sunday, up to its end); it is null when no
    day of the run precedes that week, the least a forecast needs.
    Columns: first, last (first and last day with sales), end, days (with sales), holdout_start;
    in date order.
    """
    end = pl.col("end")
    holdout_start = end - pl.duration(days=end.dt.weekday() % 7) - 6 * _DAY
    after = pl.col("last") + pl.duration(days=pl.col("closed_after"))
    runs = (
        daily.group_by("date").agg(pl.col("sold_minor").sum())
        .filter(pl.col("sold_minor") > 0)
        .sort("date")
        .with_columns((pl.col("date").diff() >= pl.duration(days=GAP_DAYS)).fill_null(False).cum_sum().alias("run"))
        .group_by("run")
        .agg(pl.col("date").min().alias("first"), pl.col("date").max().alias("last"),
             pl.len().cast(pl.Int64).alias("days"), pl.col("date").dt.weekday().unique().alias("open"))
    )
    closed_after = (
        runs.select("run", "open", pl.date_ranges(pl.col("last") + _DAY, pl.col("last") + 6 * _DAY).alias("date"))
        .explode("date")
        .group_by("run")
        .agg((~pl.col("open").list.contains(pl.col("date").dt.weekday())).sort_by(pl.col("date"))
             .cast(pl.Int32).cum_prod().sum().alias("closed_after"))
    )
    return (
        runs.join(closed_after, on="run")
        .join(daily.select(pl.col("date").max().alias("data_end")), how="cross")
        .with_columns(pl.when(pl.col("run") == pl.col("run").max()).then(pl.max_horizontal(after, "data_end"))
                      .otherwise(after).alias("end"))
        .with_columns(pl.when(holdout_start > pl.col("first")).then(holdout_start).alias("holdout_start"))
        .sort("first")
        .select("first", "last", "end", "days", "holdout_start")
    )


def why_no_backtest(runs: pl.DataFrame) -> str:
    """What the data lacks for a backtest, in a sentence, from its sales_runs."""
    if runs.is_empty():
        return "no sales in this selection"
    spans = "; ".join(f"{r['first']} to {r['last']} ({r['days']} days with sales)" for r in runs.tail(4).iter_rows(named=True))
    more = f" (the last 4 of {runs.height})" if runs.height > 4 else ""
    return (f"no full week (Monday to Sunday) of sales with a day of sales before it; a week or more without "
            f"any sale is a gap that starts over, and the sales run{more}: {spans}")


def left_out(runs: pl.DataFrame) -> str | None:
    """A sentence on the sales after the run the backtest uses (after a gap), or None."""
    usable = runs.with_row_index("i").drop_nulls("holdout_start")
    if usable.is_empty() or usable["i"][-1] == runs.height - 1:
        return None
    later = runs.slice(usable["i"][-1] + 1)
    days = later["days"].sum()
    return (f"sales on {days} day{'s' if days != 1 else ''} from {later['first'][0]} to {later['last'][-1]} come "
            f"after a gap, without a full week of their own, and are left out")


def _with_predictions(daily: pl.LazyFrame, weeks: int) -> pl.LazyFrame:
    """The daily series of the last run that can hold a week out (sales_runs), extended by a
    week, with each model's prediction and the period of each day.

    The held-out week is that run's last full week; the forecast week is the week after it.
    Predictions use lags of whole weeks within the run, so a day is predicted only from
    earlier weeks of sales; `sold_minor` is null after the run's end. A series is one that
    sold in the run up to the held-out week's end; with no run to use, the frame is empty.
    """
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    bounds = sales_runs(daily).drop_nulls("holdout_start").tail(1).select("first", "end", "holdout_start")
    calendar = bounds.select(
        pl.date_ranges("first", pl.col("holdout_start") + 13 * _DAY, "1d").alias("date"), "end", "holdout_start")
    in_run = (pl.col("date") >= pl.col("first")) & (pl.col("date") < pl.col("holdout_start") + 7 * _DAY)
    series = (
        daily.join(bounds, how="cross").filter(in_run & (pl.col("sold_minor") > 0))
        .select(SERIES).unique()
    )
    lag = [pl.col("sold_minor").shift(7 * k).over(SERIES, order_by="date") for k in range(1, weeks + 1)]
    return (
        series
        .join(calendar.explode("date"), how="cross")
        .join(daily, on=[*SERIES, "date"], how="left")
        # After the run's end the calendar's zeros are a gap or beyond the data, not sales.
        .with_columns(pl.when(pl.col("date") <= pl.col("end")).then(pl.col("sold_minor")).alias("sold_minor"))
        .with_columns(
            lag[0].cast(pl.Float64).alias("seasonal_naive"),
            pl.mean_horizontal(lag).alias("weekday_mean"),
            pl.when(pl.col("date") < pl.col("holdout_start")).then(pl.lit("history"))
            .when(pl.col("date") < pl.col("holdout_start") + 7 * _DAY).then(pl.lit("holdout"))
            .otherwise(pl.lit("forecast")).alias("period"),
        )
    )


def backtest(daily: pl.LazyFrame, weeks: int = WEEKS) -> pl.LazyFrame:
    """Each model's forecast of every series on every day of the held-out week.

    Days a model cannot forecast (no earlier week in the data) are left out.
    Columns: currency, merchant_id, store, category, date, model, actual_minor, forecast_minor.
    """
    return (
        _with_predictions(daily, weeks).filter(pl.col("period") == "holdout")
        .unpivot(index=[*SERIES, "date", "sold_minor"], on=list(MODELS), variable_name="model",
                 value_name="forecast_minor")
        .drop_nulls("forecast_minor")
        .select(*SERIES, "date", "model", pl.col("sold_minor").alias("actual_minor"), "forecast_minor")
        .sort("model", *SERIES, "date")
    )


def rollup(backtest_rows: pl.LazyFrame, keys: list[str]) -> pl.LazyFrame:
    """Backtest rows summed per `keys`, date and model (e.g. stores over all categories)."""
    return (
        backtest_rows.group_by(*keys, "date", "model")
        .agg(pl.col("actual_minor").sum(), pl.col("forecast_minor").sum())
        .sort("model", *keys, "date")
    )


def forecast_errors(backtest_rows: pl.LazyFrame, by: list[str] | tuple[str, ...] = ()) -> pl.LazyFrame:
    """Error measures per model (and per `by`) over the rows of a backtest.

    Columns: [by...], model, days (series-days), actual_minor, forecast_minor (sums),
    mae_minor (mean absolute error per series-day), wape (sum |error| / sum actual; null when
    nothing sold), mape (mean |error| / actual over series-days that sold something), bias
    (sum error / sum actual: > 0 forecasts too much).
    """
    error = pl.col("forecast_minor") - pl.col("actual_minor")
    actual = pl.col("actual_minor")
    sold = actual.sum()
    return (
        backtest_rows.group_by(*by, "model")
        .agg(
            pl.len().cast(pl.Int64).alias("days"),
            sold.alias("actual_minor"),
            pl.col("forecast_minor").sum(),
            error.abs().mean().alias("mae_minor"),
            pl.when(sold > 0).then(error.abs().sum() / sold).alias("wape"),
            (error.abs() / actual).filter(actual > 0).mean().alias("mape"),
            pl.when(sold > 0).then(error.sum() / sold).alias("bias"),
        )
        .sort(*by, "model")
    )


LEVELS = {"series": list(SERIES), "store": ["currency", "merchant_id", "store"], "total": ["currency"]}


def error_summary(backtest_rows: pl.LazyFrame) -> pl.LazyFrame:
    """Per currency and model, the errors of daily forecasts at three levels: `series` (each
    store and category, what next_week forecasts), `store` (all categories of a store) and
    `total` (all stores). Errors shrink as levels add up: over- and under-forecasts cancel.

    Columns: level, currency, model and those of forecast_errors.
    """
    return pl.concat([
        forecast_errors(rollup(backtest_rows, keys) if level != "series" else backtest_rows, by=["currency"])
        .select(pl.lit(level).alias("level"), pl.all())
        for level, keys in LEVELS.items()
    ])


def best_model(errors: pl.DataFrame) -> str:
    """The model with the lowest WAPE in `errors` (one row per model, e.g. the `series` level
    of error_summary for one currency), ties to the simpler."""
    ranked = errors.filter(pl.col("wape").is_not_null()).with_columns(
        pl.col("model").replace_strict({m: i for i, m in enumerate(MODELS)}, return_dtype=pl.Int32).alias("_order"))
    if ranked.is_empty():
        raise ValueError("no model could be measured: nothing sold in the held-out week, or no day of it has a "
                         "day of sales a week before")
    return ranked.sort("wape", "_order")["model"][0]


def next_week(daily: pl.LazyFrame, model: str, weeks: int = WEEKS) -> pl.LazyFrame:
    """`model`'s forecast of every series for the week after the held-out one, from all data.

    Columns: currency, merchant_id, store, category, date, weekday (1 = Monday), forecast_minor.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    return (
        _with_predictions(daily, weeks).filter(pl.col("period") == "forecast")
        .select(*SERIES, "date", pl.col("date").dt.weekday().cast(pl.Int8).alias("weekday"),
                pl.col(model).fill_null(0.0).alias("forecast_minor"))
        .sort(*SERIES, "date")
    )


def history_and_forecast(daily: pl.LazyFrame, model: str, weeks: int = WEEKS) -> pl.LazyFrame:
    """Per currency and date, all series together: what sold, each model's prediction where
    it has one, the period (history, holdout, forecast), for the overview chart.

    Columns: currency, date, period, actual_minor, seasonal_naive, weekday_mean, forecast_minor
    (the chosen `model`, in the forecast week only).
    """
    frame = _with_predictions(daily, weeks)
    return (
        frame.group_by("currency", "date", "period")
        .agg(
            pl.when(pl.col("sold_minor").is_not_null().any()).then(pl.col("sold_minor").sum()).alias("actual_minor"),
            *[pl.when(pl.col(m).is_not_null().any()).then(pl.col(m).sum()).alias(m) for m in MODELS],
        )
        .with_columns(pl.when(pl.col("period") == "forecast").then(pl.col(model)).alias("forecast_minor"))
        .sort("currency", "date")
    )


def store_outlook(daily: pl.LazyFrame, backtest_rows: pl.LazyFrame, model: str, weeks: int = WEEKS) -> pl.LazyFrame:
    """Per store: what it sold in the held-out week, `model`'s forecast of the next week (all
    categories together) and how far off the model was on the held-out week at store level.

    Columns: currency, merchant_id, store, held_out_minor, forecast_minor, wape; highest
    forecast first.
    """
    keys = ["currency", "merchant_id", "store"]
    forecast = next_week(daily, model, weeks).group_by(keys).agg(pl.col("forecast_minor").sum())
    errors = forecast_errors(rollup(backtest_rows.filter(pl.col("model") == model), keys), by=keys)
    return (
        forecast.join(errors.select(*keys, pl.col("actual_minor").alias("held_out_minor"), "wape"), on=keys, how="left")
        .select(*keys, "held_out_minor", "forecast_minor", "wape")
        .sort("forecast_minor", "store", descending=[True, False])
    )
