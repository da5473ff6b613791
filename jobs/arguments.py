"""The arguments the analytics and audit jobs take, shared with their `posray` shortcuts.

A job run on its own (`python -m jobs.snapshot ...`) and its shortcut (`posray analytics
snapshot ...`, tooling/analytics_cli.py) build their parsers from the functions here, so both
take the same flags. Defaults come from posray's settings: POSRAY_* and what `posray up`
recorded in the data folder (posray.locate); the snapshot lives in <data dir>/snapshot and
reports go to <data dir>/reports.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from pathlib import Path

MERCHANTS_FILE = "merchants.csv"


def job_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags a job run on its own needs and `posray` already has."""
    parser.add_argument("--data-dir", help="posray's data folder (POSRAY_DATA_DIR), for defaults")


def snapshot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="PostgreSQL DSN of the ledger (default: POSRAY_PG_DSN or `posray up`'s)")
    parser.add_argument("--out", type=Path, help="snapshot folder (default <data dir>/snapshot); on a "
                        "multi-node Ray cluster, a folder every node sees")
    parser.add_argument("--page-rows", type=int, default=50_000,
                        help="ledger rows read and written at a time, per shard (bounds memory)")
    parser.add_argument("--ray", action="store_true",
                        help="export shards in parallel as Ray tasks (implied when RAY_ADDRESS is set)")


def selection_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a report job reads and writes, and which documents it looks at."""
    parser.add_argument("--snapshot", type=Path, help="snapshot folder (default <data dir>/snapshot)")
    parser.add_argument("--out", type=Path, help="reports folder (default <data dir>/reports)")
    parser.add_argument("--since", type=date.fromisoformat, help="first local issue date, YYYY-MM-DD")
    parser.add_argument("--until", type=date.fromisoformat, help="last local issue date, YYYY-MM-DD")
    parser.add_argument("--merchant", action="append", help="only this merchant id (repeatable)")


def report_arguments(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    selection_arguments(parser)
    if top:
        parser.add_argument("--top", type=int, default=15, help="how many products to rank")
    else:
        parser.add_argument("--period", choices=("day", "week", "month"), default="month")


def demand_arguments(parser: argparse.ArgumentParser) -> None:
    selection_arguments(parser)
    parser.add_argument("--weeks", type=int, default=4, help="weeks the weekday-mean model averages")
    parser.add_argument("--top", type=int, default=20, help="stores shown in the forecast chart")


def integrity_arguments(parser: argparse.ArgumentParser) -> None:
    selection_arguments(parser)
    parser.add_argument("--merchant-kinds", type=Path, help="CSV or Parquet with merchant_id and kind, the peer groups "
                        f"of the refund check (default <data dir>/{MERCHANTS_FILE} when it exists, else each "
                        "merchant is its own group)")
    parser.add_argument("--late-after-h", type=float, default=1.0, help="a document accepted later than this "
                        "many hours after issue is late")
    parser.add_argument("--duplicate-window-s", type=float, default=60.0,
                        help="two identical receipts at most this far apart look duplicated")
    parser.add_argument("--refund-k", type=float, default=5.0, help="flag refund ratios this many robust "
                        "deviations above the peer median")


def bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's data (generated when --snapshot holds none), engines and repetitions."""
    parser.add_argument("--out", type=Path, help="where bench.json and bench.png go (default <data dir>/bench)")
    parser.add_argument("--snapshot", type=Path, help="the snapshot to read; written there first when the folder "
                        "is empty or missing (default <out>/snapshot)")
    parser.add_argument("--documents", type=int, default=1_000_000, help="about how many receipts to generate")
    parser.add_argument("--days", type=int, default=91)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 5), help="first day, YYYY-MM-DD")
    parser.add_argument("--merchants", type=int, default=120)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engines", default="ray,polars,duckdb", help="comma-separated: ray, polars, duckdb")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine; the median counts")
    parser.add_argument("--tasks", type=int, help="Ray tasks (partitions of days) per report "
                        "(default: the cluster's CPUs)")
    parser.add_argument("--address", help="Ray cluster to use (default RAY_ADDRESS, else a private local one)")
    parser.add_argument("--period", choices=("day", "week", "month"), default="month")
    parser.add_argument("--top", type=int, default=15, help="how many products to rank")


def settings_for(args):
    """posray's settings for these arguments (environment, then the state of `posray up`)."""
    from posray.locate import deployment_settings

    return deployment_settings(args)


@dataclass(frozen=True, slots=True)
class JobInputs:
    """Where a report job reads (the snapshot) and writes (its report folder)."""

    settings: object
    snapshot: Path
    out: Path
    args: argparse.Namespace

    def table(self, name: str):
        """A lazy scan of one snapshot table, restricted to the job's dates and merchants."""
        from posray.analytics.snapshot import restrict
        from posray.adapters.parquet_snapshot import scan_table

        a = self.args
        return restrict(scan_table(self.snapshot, name), a.since, a.until, a.merchant)


def job_inputs(args, report: str) -> JobInputs:
    """The settings, snapshot folder and report folder (…/reports/<report>) of a report job."""
    settings = settings_for(args)
    snapshot = Path(args.snapshot or settings.data_dir / "snapshot")
    return JobInputs(settings, snapshot, Path(args.out or settings.data_dir / "reports") / report, args)


def read_merchants(path: Path):
    """merchant_id and kind from a CSV or Parquet file, as a LazyFrame."""
    import polars as pl

    frame = pl.scan_parquet(path) if path.suffix == ".parquet" else pl.scan_csv(path, infer_schema=False)
    return frame.select(pl.col("merchant_id").cast(pl.String), pl.col("kind").cast(pl.String))
