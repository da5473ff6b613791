"""`posray analytics generate|snapshot|fiscal|retail`: shortcuts to the analytics jobs.

The Ray jobs (`python -m jobs.snapshot ...`) build their parsers from the functions here, so a
job and its shortcut take the same flags. Defaults come from posray's settings: POSRAY_* and
what `posray up` recorded in the data folder (the PostgreSQL DSN, the operator seed); the
snapshot lives in <data dir>/snapshot and reports go to <data dir>/reports.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path


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


def report_arguments(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    parser.add_argument("--snapshot", type=Path, help="snapshot folder (default <data dir>/snapshot)")
    parser.add_argument("--out", type=Path, help="reports folder (default <data dir>/reports)")
    parser.add_argument("--since", type=date.fromisoformat, help="first local issue date, YYYY-MM-DD")
    parser.add_argument("--until", type=date.fromisoformat, help="last local issue date, YYYY-MM-DD")
    parser.add_argument("--merchant", action="append", help="only this merchant id (repeatable)")
    if top:
        parser.add_argument("--top", type=int, default=15, help="how many products to rank")
    else:
        parser.add_argument("--period", choices=("day", "week", "month"), default="month")


def generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", help="PostgreSQL DSN of the ledger (default: POSRAY_PG_DSN or `posray up`'s)")
    parser.add_argument("--seed", type=int, default=7, help="world and history seed (reproducible)")
    parser.add_argument("--documents", type=int, default=100_000, help="about how many receipts")
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 3, 2), help="first day, YYYY-MM-DD")
    parser.add_argument("--merchants", type=int, default=12)
    parser.add_argument("--shards", type=int, help="the ledger's shard count (default POSRAY_SHARD_COUNT)")
    parser.add_argument("--no-anomalies", action="store_true", help="plant no anomalies")
    parser.add_argument("--workers", type=int, default=1, help="processes generating disjoint shards in parallel")


def add_parser(subparsers) -> None:
    """Register `analytics` and its commands on the `posray` parser."""
    analytics = subparsers.add_parser("analytics", help="demo history, ledger snapshots, fiscal and retail reports")
    sub = analytics.add_subparsers(dest="analytics_command", required=True)
    generate = sub.add_parser("generate", help="record a generated retail history in the ledger")
    generate_arguments(generate)
    generate.set_defaults(func=cmd_generate)
    snapshot = sub.add_parser("snapshot", help="export new ledger rows to the Parquet snapshot")
    snapshot_arguments(snapshot)
    snapshot.set_defaults(func=lambda args: _job("snapshot").run(args))
    fiscal = sub.add_parser("fiscal", help="per-merchant totals by VAT rate, refunds, cash vs card")
    report_arguments(fiscal)
    fiscal.set_defaults(func=lambda args: _job("fiscal").run(args))
    retail = sub.add_parser("retail", help="revenue by hour/day/weekday, products, baskets, stores")
    report_arguments(retail, top=True)
    retail.set_defaults(func=lambda args: _job("retail").run(args))


def settings_for(args):
    """posray's settings for these arguments (environment, then the state of `posray up`)."""
    from posray.cli import _settings

    return _settings(args)


def cmd_generate(args) -> int:
    from posray.analytics.generator import GeneratorConfig
    from posray.services.loading import load_into_ledger

    settings = settings_for(args)
    dsn = args.dsn or settings.pg_dsn
    if not dsn:
        print("posray: no ledger to write to: pass --dsn, set POSRAY_PG_DSN or run `posray up`")
        return 2
    config = GeneratorConfig(
        seed=args.seed, merchants=args.merchants, start=args.start, days=args.days,
        documents=args.documents, shard_count=args.shards or settings.shard_count,
        anomalies=not args.no_anomalies, vat_rates_bp=settings.vat_rates_bp,
    )
    summary = load_into_ledger(dsn, settings.seed_file, config, settings=settings, workers=args.workers)
    print(f"recorded {summary.documents:,} documents {summary.by_type} in {summary.batches} batches, "
          f"{summary.terminals_registered} new terminals, {summary.elapsed_s:.1f} s "
          f"({summary.documents / max(summary.elapsed_s, 1e-9):,.0f} documents/s)")
    return 0


def _job(name: str):
    import importlib

    return importlib.import_module(f"jobs.{name}")
