"""Ray job: integrity checks over the snapshot: counter gaps, late uploads, refund outliers, duplicates.

    ray job submit -- python -m jobs.integrity --snapshot /shared/snapshot --out /shared/reports
    posray analytics integrity --late-after-h 24

Writes <out>/integrity/: counter_gaps.parquet (missing counter ranges), late_uploads.parquet
(per terminal and upload day), refunds.parquet (every terminal's refund ratio against its
peers, `flagged`), duplicates.parquet (duplicate-looking pairs), terminals.parquet (one row
per terminal with any finding), PNG charts and report.html. Peer groups of the refund check
are the merchants' kinds from --merchant-kinds (default <data dir>/merchants.csv, written by
`posray analytics generate`), else each merchant on its own.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl

from posray.analytics import integrity, integrity_charts
from posray.analytics.charts import png_bytes
from jobs.arguments import MERCHANTS_FILE, integrity_arguments, job_arguments, read_merchants, job_inputs
from posray.analytics.report import Report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.integrity", description=__doc__.splitlines()[0])
    job_arguments(parser)
    integrity_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    inputs = job_inputs(args, "integrity")
    settings, snapshot, out = inputs.settings, inputs.snapshot, inputs.out
    documents = inputs.table("documents")
    items = inputs.table("items")
    kinds_path = args.merchant_kinds or settings.data_dir / MERCHANTS_FILE
    kinds = read_merchants(kinds_path) if args.merchant_kinds or kinds_path.exists() else None
    late_after, window = timedelta(hours=args.late_after_h), timedelta(seconds=args.duplicate_window_s)
    lazy = {
        "counter_gaps": integrity.counter_gaps(documents),
        "late_uploads": integrity.late_uploads(documents, late_after),
        "refunds": integrity.refund_outliers(documents, kinds, k=args.refund_k),
        "duplicates": integrity.duplicate_receipts(documents, items, window),
    }
    lazy["terminals"] = integrity.by_terminal(*lazy.values())
    results = dict(zip(lazy, pl.collect_all(list(lazy.values()))))
    if results["refunds"].is_empty():
        print(f"integrity: no documents in {snapshot} for this selection (run the snapshot job first?)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in results.items():
        frame.write_parquet(out / f"{name}.parquet")
    peers = f"peer groups from {kinds_path}" if kinds is not None else "each merchant its own peer group"
    write_report(out, args, results, late_after, window, peers)
    gaps, late, refunds, pairs = (results[n] for n in ("counter_gaps", "late_uploads", "refunds", "duplicates"))
    print(f"integrity: {gaps['missing'].sum():,} missing counters on {gaps['terminal_id'].n_unique()} terminals, "
          f"{late['late_documents'].sum():,} late documents on {late['terminal_id'].n_unique()}, "
          f"{refunds['flagged'].sum()} refund outliers, {pairs['unlikely_by_chance'].sum()} duplicate-looking pairs "
          f"unlikely by chance ({pairs.height} in all) -> {out}")
    return 0


def write_report(out: Path, args, results: dict, late_after: timedelta, window: timedelta, peers: str) -> None:
    refunds = results["refunds"]
    sections = [
        ("Terminals with findings", None, None, results["terminals"],
         "Leads for a person to follow, one row per terminal: none of them is a verdict."),
        ("Counter gaps", "counter_gaps", integrity_charts.counter_gaps(results["counter_gaps"]),
         results["counter_gaps"], "Counters a terminal skipped between two recorded documents: documents it "
         "numbered and never sent (possible unreported sales)."),
        ("Late uploads", "late_uploads", integrity_charts.late_uploads(results["late_uploads"], late_after),
         results["late_uploads"], f"Documents accepted more than {late_after.total_seconds() / 3600:g} h after "
         "they were issued, per terminal and upload day: a till offline, or documents held back."),
        ("Refund ratios", "refund_ratios", integrity_charts.refund_ratios(refunds, integrity.REFUND_SALES_MIN),
         refunds.filter("flagged"), f"Refunds per sale of each terminal against the median of its peer group ({peers}); "
         f"flagged above {args.refund_k:g} robust deviations (docs/analytics.md gives the rule)."),
        ("Duplicate-looking receipts", "duplicates", integrity_charts.duplicates(results["duplicates"], window),
         results["duplicates"].drop("first_code", "second_code"),
         f"The same items, total and payment twice within {window.total_seconds():g} s under different counters; "
         "expected by chance estimates how often the terminal's traffic repeats that basket anyway."),
    ]
    scope = ", ".join(args.merchant) if args.merchant else "all merchants"
    report = Report("Integrity checks", f"{scope}; {refunds.height} terminals checked")
    for heading, name, figure, table, text in sections:
        report.section(heading, text)
        if figure is not None:
            png = png_bytes(figure)
            (out / f"{name}.png").write_bytes(png)
            report.chart(png, heading)
        report.table(table, rows_max=100)
    (out / "report.html").write_text(report.to_html())


if __name__ == "__main__":
    sys.exit(main())
