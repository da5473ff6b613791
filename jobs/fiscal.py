"""Ray job: fiscal report from the snapshot: totals by VAT rate, refunds, corrections, cash vs card.

    ray job submit -- python -m jobs.fiscal --snapshot /shared/snapshot --out /shared/reports --period month
    posray analytics fiscal --period week

Writes <out>/fiscal/: totals.parquet (per merchant and period), vat_by_rate.parquet (per
merchant, period and rate), PNG charts and report.html (charts and tables in one file).
Charts show the currency with the most documents; the Parquet files hold every currency.
"""

from __future__ import annotations

import argparse
import sys

import polars as pl

from posray.analytics import charts, fiscal
from jobs.arguments import job_arguments, report_arguments, job_inputs
from posray.analytics.report import Report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.fiscal", description=__doc__.splitlines()[0])
    job_arguments(parser)
    report_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    inputs = job_inputs(args, "fiscal")
    snapshot, out = inputs.snapshot, inputs.out
    documents = inputs.table("documents")
    totals, vat_rates = pl.collect_all([fiscal.totals(documents, args.period), fiscal.vat_by_rate(documents, args.period)])
    if totals.is_empty():
        print(f"fiscal: no documents in {snapshot} for this selection (run the snapshot job first?)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    totals.write_parquet(out / "totals.parquet")
    vat_rates.write_parquet(out / "vat_by_rate.parquet")
    currency = main_currency(totals)
    period_vat = fiscal.period_vat(vat_rates.lazy()).collect()
    scope = ", ".join(args.merchant) if args.merchant else "all merchants"
    figures = {
        "turnover_by_vat_rate": (charts.turnover_by_vat_rate(period_vat, currency, args.period, scope),
                                 "Net turnover (gross, incl. VAT) per period, split by VAT rate."),
        "vat_by_period": (charts.vat_by_period(period_vat, currency, args.period, scope),
                          "VAT contained in that turnover: what the merchants owe, net of refunds."),
        "merchant_turnover": (charts.merchant_turnover(totals, currency),
                              "Sales and refunds per merchant over the whole selection."),
        "payment_mix": (charts.payment_mix(totals, currency),
                        "How the net amount was paid: cash, card (incl. mobile wallets), vouchers and other."),
    }
    report = Report("Fiscal report", _subtitle(args, totals, currency))
    report.section("Turnover and VAT")
    for name, (figure, caption) in figures.items():
        png = charts.png_bytes(figure)
        (out / f"{name}.png").write_bytes(png)
        if name == "merchant_turnover":
            report.section("Merchants")
        report.chart(png, caption)
    report.section("VAT by rate, all merchants", "Amounts in the currency of each row.")
    report.table(period_vat)
    report.section("Totals per merchant and period")
    report.table(totals.drop("net_cash_minor", "net_card_minor", "net_other_minor"), rows_max=200)
    (out / "report.html").write_text(report.to_html())
    print(f"fiscal: {totals['sales_count'].sum():,} sales, {totals['refunds_count'].sum():,} refunds, "
          f"{totals.height} merchant-{args.period} rows -> {out}")
    return 0


def main_currency(frame: pl.DataFrame) -> str:
    """The currency most rows are in (charts show one currency)."""
    return frame["currency"].value_counts(sort=True)["currency"][0]


def _subtitle(args, totals: pl.DataFrame, currency: str) -> str:
    first, last = totals["period_start"].min(), totals["period_start"].max()
    scope = ", ".join(args.merchant) if args.merchant else f"{totals['merchant_id'].n_unique()} merchants"
    return f"{scope}; {args.period}s starting {first} to {last}; charts in {currency}"


if __name__ == "__main__":
    sys.exit(main())
