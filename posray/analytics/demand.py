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
"""

from __future__ import annotations

import polars as pl

from posray.analytics.retail import store_key

SERIES = ("currency", "merchant_id", "store", "category")
MODELS = ("seasonal_naive", "weekday_mean")
WEEKS = 4
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


def _with_predictions(daily: pl.LazyFrame, weeks: int) -> pl.LazyFrame:
    """The daily series extended by a week, with each model's prediction and the held-out week.

    `holdout_start` is the Monday of the last full week of the data; the forecast week is the
    week after it. Predictions use lags of whole weeks, so a day is predicted only from
    earlier weeks.
    """
    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    last = pl.col("date").max()
    holdout_start = last - pl.duration(days=last.dt.weekday() % 7) - 6 * _DAY
    bounds = daily.select(pl.col("date").min().alias("first"), holdout_start.alias("holdout_start"))
    calendar = bounds.select(
        pl.date_ranges("first", pl.col("holdout_start") + 13 * _DAY, "1d").alias("date"), "holdout_start")
    lag = [pl.col("sold_minor").shift(7 * k).over(SERIES, order_by="date") for k in range(1, weeks + 1)]
    return (
        daily.select(SERIES).unique()
        .join(calendar.explode("date"), how="cross")
        .join(daily, on=[*SERIES, "date"], how="left")
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
        raise ValueError("no model could be measured: the data needs a full week before the held-out one")
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
