"""Ray job: retail report from the snapshot: revenue over time, products, baskets and stores.

    ray job submit -- python -m jobs.retail --snapshot /shared/snapshot --out /shared/reports
    posray analytics retail --merchant w7-grocery-01

Writes <out>/retail/: one Parquet file per result (revenue_by_hour, revenue_by_day,
revenue_by_weekday, top_products, top_categories, basket_sizes, basket_values, basket_summary,
stores), PNG charts and report.html. Charts show the currency with the most documents.
"""

from __future__ import annotations

import argparse
import sys

import polars as pl

from posray.analytics import charts, retail
from jobs.arguments import job_arguments, report_arguments, job_inputs
from posray.analytics.report import Report

BASKET_BIN_MINOR = 500


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.retail", description=__doc__.splitlines()[0])
    job_arguments(parser)
    report_arguments(parser, top=True)
    return run(parser.parse_args(argv))


def run(args) -> int:
    inputs = job_inputs(args, "retail")
    snapshot, out = inputs.snapshot, inputs.out
    documents = inputs.table("documents")
    items = inputs.table("items")
    names = ("revenue_by_hour", "revenue_by_day", "revenue_by_weekday", "top_products", "top_categories",
             "basket_sizes", "basket_values", "basket_summary", "stores")
    results = dict(zip(names, pl.collect_all([
        retail.revenue_by_hour(documents), retail.revenue_by_day(documents), retail.revenue_by_weekday(documents),
        retail.top_products(items, args.top), retail.top_categories(items), retail.basket_sizes(documents),
        retail.basket_values(documents, BASKET_BIN_MINOR), retail.basket_summary(documents),
        retail.store_comparison(documents),
    ])))
    if results["revenue_by_day"].is_empty():
        print(f"retail: no documents in {snapshot} for this selection (run the snapshot job first?)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in results.items():
        frame.write_parquet(out / f"{name}.parquet")
    currency = results["revenue_by_day"]["currency"].value_counts(sort=True)["currency"][0]
    report = Report("Retail report", _subtitle(args, results["revenue_by_day"], currency))
    for heading, name, figure, caption in _charts(results, currency):
        png = charts.png_bytes(figure)
        (out / f"{name}.png").write_bytes(png)
        if heading:
            report.section(heading)
        report.chart(png, caption)
    report.section("Stores")
    report.table(results["stores"])
    report.section("Baskets per merchant")
    report.table(results["basket_summary"])
    report.section("Top products")
    report.table(results["top_products"])
    (out / "report.html").write_text(report.to_html())
    days = results["revenue_by_day"]
    print(f"retail: {days['receipts'].sum():,} receipts over {days.height} days, "
          f"{results['stores'].height} stores -> {out}")
    return 0


def _charts(results: dict, currency: str):
    """(section heading or None, file name, figure, caption) in report order."""
    yield ("When customers buy", "revenue_by_hour", charts.revenue_by_hour(results["revenue_by_hour"], currency),
           "Average net revenue per trading day in each hour (local time).")
    yield (None, "revenue_by_day", charts.revenue_by_day(results["revenue_by_day"], currency),
           "Net revenue per day; refunds below zero; weekends shaded.")
    yield (None, "revenue_by_weekday", charts.revenue_by_weekday(results["revenue_by_weekday"], currency),
           "Average net revenue per trading day of each weekday (closed days not counted).")
    yield ("What sells", "top_products", charts.top_products(results["top_products"], currency),
           "Products ranked by net revenue (sales minus refunds).")
    yield (None, "top_categories", charts.categories(results["top_categories"], currency),
           "Net revenue per product category and its share of the total.")
    yield ("Baskets", "basket_sizes", charts.basket_sizes(results["basket_sizes"]),
           "Number of receipts by number of lines.")
    yield (None, "basket_values", charts.basket_values(results["basket_values"], currency, BASKET_BIN_MINOR),
           "Number of receipts by total value.")
    yield ("Stores", "stores", charts.stores(results["stores"], currency),
           "Stores ranked by net revenue per trading day, with their average basket and refund ratio.")


def _subtitle(args, by_day: pl.DataFrame, currency: str) -> str:
    scope = ", ".join(args.merchant) if args.merchant else "all merchants"
    return f"{scope}; {by_day['date'].min()} to {by_day['date'].max()}; charts in {currency}"


if __name__ == "__main__":
    sys.exit(main())
