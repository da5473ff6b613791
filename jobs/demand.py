"""Ray job: next week's sales per store and category, with the forecast's error on a held-out week.

    ray job submit -- python -m jobs.demand --snapshot /shared/snapshot --out /shared/reports
    posray analytics demand --merchant w7-grocery-01

Backtests two models on the last full week of the snapshot, picks the one with the lower WAPE
per store and category, and forecasts the week after it (posray.analytics.demand). Writes
<out>/demand/: daily.parquet (sold per store, category and day), backtest.parquet,
errors.parquet (per model at the series, store and total levels), errors_by_category.parquet,
errors_by_series.parquet, forecast.parquet (next week per store, category and day),
stores.parquet, PNG charts and report.html. Charts show the currency with the most sales.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

from posray.analytics import demand, demand_charts
from posray.analytics.charts import major, png_bytes
from jobs.arguments import demand_arguments, job_arguments, job_inputs
from posray.analytics.report import Report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.demand", description=__doc__.splitlines()[0])
    job_arguments(parser)
    demand_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    inputs = job_inputs(args, "demand")
    snapshot, out = inputs.snapshot, inputs.out
    items = inputs.table("items")
    daily = demand.daily_demand(items).collect()
    runs = demand.sales_runs(daily.lazy()).collect()
    backtest = demand.backtest(daily.lazy(), args.weeks).collect()
    if backtest.is_empty():
        print(f"demand: cannot hold a week out in {snapshot}: {demand.why_no_backtest(runs)} (run the snapshot "
              "job first, or widen --since/--until?)", file=sys.stderr)
        return 1
    if (note := demand.left_out(runs)) is not None:
        print(f"demand: {note}", file=sys.stderr)
    errors, by_category, by_series = pl.collect_all([
        demand.error_summary(backtest.lazy()),
        demand.forecast_errors(backtest.lazy(), by=["currency", "category"]),
        demand.forecast_errors(backtest.lazy(), by=list(demand.SERIES)),
    ])
    series_level = errors.filter(pl.col("level") == "series")
    currency = series_level.sort("actual_minor", descending=True)["currency"][0]
    model = demand.best_model(series_level.filter(pl.col("currency") == currency))
    forecast, stores, history = pl.collect_all([
        demand.next_week(daily.lazy(), model, args.weeks),
        demand.store_outlook(daily.lazy(), backtest.lazy(), model, args.weeks),
        demand.history_and_forecast(daily.lazy(), model, args.weeks),
    ])
    results = {"daily": daily, "backtest": backtest, "errors": errors, "errors_by_category": by_category,
               "errors_by_series": by_series, "forecast": forecast, "stores": stores}
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in results.items():
        frame.write_parquet(out / f"{name}.parquet")
    write_report(out, args, currency, model, results, history)
    chosen = series_level.filter((pl.col("currency") == currency) & (pl.col("model") == model)).row(0, named=True)
    print(f"demand: {model} chosen, WAPE {chosen['wape']:.1%} per store and category on the held-out week "
          f"({backtest['date'].min()} to {backtest['date'].max()}); next week {forecast['date'].min()} to "
          f"{forecast['date'].max()}: {major(forecast['forecast_minor'].sum(), currency):,.0f} {currency} -> {out}")
    return 0


def write_report(out: Path, args, currency: str, model: str, results: dict, history: pl.DataFrame) -> None:
    errors, backtest, stores = results["errors"], results["backtest"], results["stores"]
    wape = errors.filter((pl.col("level") == "series") & (pl.col("currency") == currency)
                         & (pl.col("model") == model))["wape"][0]
    figures = {
        "overview": (demand_charts.overview(history, currency, model, wape),
                     "Daily sales of all stores; on the held-out week both models' forecasts, made from the weeks "
                     "before it; then the chosen model's forecast of the next week."),
        "error_by_category": (demand_charts.error_by_category(results["errors_by_category"], currency),
                              "How far off each model was per category: WAPE of its daily store-category forecasts."),
        "next_week_by_store": (demand_charts.next_week_by_store(stores, currency, args.top),
                               "Next week's forecast per store against what it sold in the held-out week."),
    }
    scope = ", ".join(args.merchant) if args.merchant else "all merchants"
    report = Report("Demand forecast", f"{scope}; held-out week {backtest['date'].min()} to {backtest['date'].max()}; "
                    f"model {model}; charts in {currency}")
    report.section("Backtest and forecast", "Errors of daily forecasts over the held-out week, per store and "
                   "category (series), per store and for all stores: MAE per forecast day; WAPE = sum of absolute "
                   "errors / amount sold; MAPE leaves out days without sales; bias > 0 means too much forecast.")
    for name, (figure, caption) in figures.items():
        png = png_bytes(figure)
        (out / f"{name}.png").write_bytes(png)
        if name == "next_week_by_store":
            report.section("Next week per store")
        report.chart(png, caption)
        if name == "overview":
            report.table(errors)
    report.table(stores)
    (out / "report.html").write_text(report.to_html())


if __name__ == "__main__":
    sys.exit(main())
