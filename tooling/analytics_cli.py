"""`posray analytics generate|snapshot|fiscal|retail|demand|integrity|bench`: shortcuts to the analytics jobs.

The Ray jobs (`python -m jobs.snapshot ...`) build their parsers from jobs/arguments.py, as
these shortcuts do, so a job and its shortcut take the same flags. Defaults come from posray's settings: POSRAY_* and
what `posray up` recorded in the data folder (the PostgreSQL DSN, the operator seed); the
snapshot lives in <data dir>/snapshot and reports go to <data dir>/reports. `generate` also
records the kind of each generated merchant in <data dir>/merchants.csv (the ledger's merchant
registry has no kind), which the integrity job uses to compare terminals with their peers.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from jobs.arguments import (
    MERCHANTS_FILE,
    bench_arguments,
    demand_arguments,
    integrity_arguments,
    report_arguments,
    settings_for,
    snapshot_arguments,
)

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
    analytics = subparsers.add_parser("analytics", help="demo history, ledger snapshots, fiscal, retail, demand "
                                      "and integrity reports")
    sub = analytics.add_subparsers(dest="analytics_command", required=True)
    generate = sub.add_parser("generate", help="record a generated retail history in a ledger of its own "
                              "(refuses a live ledger, see docs/analytics.md)")
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
    demand = sub.add_parser("demand", help="next week's sales per store and category, with its backtest error")
    demand_arguments(demand)
    demand.set_defaults(func=lambda args: _job("demand").run(args))
    integrity = sub.add_parser("integrity", help="counter gaps, late uploads, refund outliers, duplicate receipts")
    integrity_arguments(integrity)
    integrity.set_defaults(func=lambda args: _job("integrity").run(args))
    bench = sub.add_parser("bench", help="time the fiscal and retail analytics as a Ray job, in one Polars "
                           "process and in DuckDB on the same generated snapshot")
    bench_arguments(bench)
    bench.set_defaults(func=lambda args: _job("bench").run(args))


def cmd_generate(args) -> int:
    """Record a generated history in a ledger no capture store is fenced against (2 when refused)."""
    import asyncio

    from posray.adapters.pg import ensure_ledger
    from posray.synthetic.generator import GeneratorConfig, build_world
    from posray.domain.errors import LedgerLive
    from posray.progress import Progress
    from posray.services.loading import load_into_ledger

    settings = settings_for(args)
    dsn = args.dsn or settings.pg_dsn
    if not dsn:
        print("posray analytics generate: no ledger to write to: pass --dsn, set POSRAY_PG_DSN or run `posray up`",
              file=sys.stderr)
        return 2
    config = GeneratorConfig(
        seed=args.seed, merchants=args.merchants, start=args.start, days=args.days,
        documents=args.documents, shard_count=args.shards or settings.shard_count,
        anomalies=not args.no_anomalies, vat_rates_bp=settings.vat_rates_bp,
    )
    if asyncio.run(ensure_ledger(dsn)):
        print("created the ledger database for the generated history (posray's schema)")
    try:
        with Progress("generate", total=config.documents, unit="documents") as tick:
            summary = load_into_ledger(dsn, settings.seed_file, config, settings=settings, workers=args.workers,
                                       progress=tick)
    except LedgerLive as e:
        print(f"posray analytics generate: {e}: pass --dsn (or POSRAY_PG_DSN) naming another database, e.g. "
              f"{_sibling_dsn(dsn, 'posray_history')} (created when missing)", file=sys.stderr)
        return 2
    write_merchants(settings.data_dir / MERCHANTS_FILE, build_world(config))
    print(f"recorded {summary.documents:,} documents {summary.by_type} in {summary.batches} batches, "
          f"{summary.terminals_registered} new terminals, {summary.elapsed_s:.1f} s "
          f"({summary.documents / max(summary.elapsed_s, 1e-9):,.0f} documents/s)")
    return 0


def _sibling_dsn(dsn: str, name: str) -> str:
    """`dsn` naming database `name` on the same server (query parameters kept, a password masked)."""
    base, _, tail = dsn.rpartition("/")
    _, mark, query = tail.partition("?")
    scheme, sep, rest = base.partition("://")
    user, at, host = rest.rpartition("@")
    if at and ":" in user:  # printed on a terminal: never the password
        base = f"{scheme}{sep}{user.split(':', 1)[0]}:<password>@{host}"
    return f"{base}/{name}{mark}{query}"


def write_merchants(path: Path, world) -> None:
    """Add the world's merchants (merchant_id, name, kind) to the CSV at `path`, replacing
    rows of the same merchant ids."""
    import polars as pl

    rows = pl.DataFrame([{"merchant_id": m.merchant_id, "name": m.name, "kind": m.kind.name} for m in world.merchants],
                        schema={"merchant_id": pl.String, "name": pl.String, "kind": pl.String})
    if path.exists():
        rows = pl.concat([pl.read_csv(path, schema=rows.schema).filter(~pl.col("merchant_id").is_in(rows["merchant_id"])), rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.sort("merchant_id").write_csv(path)


def _job(name: str):
    import importlib

    return importlib.import_module(f"jobs.{name}")
