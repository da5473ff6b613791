"""`posray ledger detach --before DATE`: detach old daily partitions once their archives hold them.

Retention (docs/operations.md, "Partitions and retention"): fiscal records are kept 10 years,
PostgreSQL keeps the recent days. A day leaves the ledger only when both archives hold every one
of its rows: the Parquet snapshot (`posray analytics snapshot`, the index by printed fields) and
the C2SP tiles export (`posray tiles export`, POSRAY_TILES_ARCHIVE or --tiles), whose checkpoint
must be one this ledger signed and whose records must give every batch's stored Merkle root
(`archives_of`). Detaching does not delete: the detached table stays in the database until the
operator has dumped and archived it.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date, datetime, timezone
from pathlib import Path


def add_parser(subparsers) -> None:
    """Register `ledger detach` on the `posray` parser."""
    ledger = subparsers.add_parser("ledger", help="ledger partitions and retention")
    actions = ledger.add_subparsers(dest="ledger_action", required=True)
    detach = actions.add_parser(
        "detach", help="detach the daily partitions before DATE once the Parquet snapshot holds them")
    detach.add_argument("--before", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD",
                        help="detach the days before this one (UTC days on which batches were recorded)")
    detach.add_argument("--snapshot", type=Path,
                        help="the Parquet snapshot folder (default: POSRAY_SNAPSHOT_DIR, else <data>/snapshot)")
    detach.add_argument("--tiles", metavar="DIR_OR_URL",
                        help="the tiles archive, a `posray tiles export` (default: POSRAY_TILES_ARCHIVE)")
    detach.add_argument("--dry-run", action="store_true", help="say what would be detached, detach nothing")
    ledger.set_defaults(func=cmd_ledger)


def archives_of(snapshot_dir: Path, tiles_held: dict[int, int] | None) -> dict[str, dict[int, int]]:
    """Per archive, the last sequence of each shard it holds; a day is detached only when every
    archive holds it.

    Args:
        tiles_held: per shard, the last sequence the tiles archive verifiably holds
            (posray.services.retention.tiles_held); None when no archive is configured: it holds nothing.
    """
    from posray.adapters.parquet_snapshot import read_watermark
    from posray.services.retention import TILES_ARCHIVE

    return {"Parquet snapshot": read_watermark(snapshot_dir), TILES_ARCHIVE: tiles_held or {}}


def cmd_ledger(args) -> int:
    """0 when the days were detached (or would be), 1 when any must stay (one line each)."""
    from posray.locate import deployment_settings, require

    settings = deployment_settings(args)
    require(settings, "pg_dsn")
    snapshot_dir = args.snapshot or settings.snapshot_path
    tiles = args.tiles or settings.tiles_archive
    return asyncio.run(_detach(settings.pg_dsn, args.before, snapshot_dir, tiles, args.dry_run))


async def _detach(dsn: str, before: date, snapshot_dir: Path, tiles: str | None, dry_run: bool) -> int:
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_ledger import PgLedger
    from posray.adapters.pg_partitions import PgPartitions
    from posray.adapters.tile_http import tile_source
    from posray.services.retention import detach_before, tiles_held

    pool = await create_pool(dsn, size_max=1)
    try:
        today = datetime.now(timezone.utc).date()
        partitions = PgPartitions(pool)
        held, problems = None, ["no tiles archive configured (POSRAY_TILES_ARCHIVE or --tiles): "
                                "run `posray tiles export DIR` and name it"]
        if tiles:
            held, problems = await tiles_held(PgLedger(pool), partitions, tile_source(tiles), before)
        plans = await detach_before(partitions, before, today, archives_of(snapshot_dir, held), dry_run)
    finally:
        await pool.close()
    refused = [p for p in plans if p.reason]
    for problem in problems if refused else ():
        print(f"posray ledger detach: {problem}", file=sys.stderr)
    for plan in refused:
        print(f"posray ledger detach: refused, {plan.reason}", file=sys.stderr)
    if refused:
        print(f"posray ledger detach: nothing detached ({len(refused)} of {len(plans)} days must stay)",
              file=sys.stderr)
        return 1
    verb = "would detach" if dry_run else "detached"
    for plan in plans:
        part = plan.partition
        print(f"{verb} {part.name} ({part.day}, {part.rows:,} rows, {len(part.last_seqs)} shards)")
    if not plans:
        print(f"no attached partition before {before}")
    elif not dry_run:
        print("the detached tables are still in the database: dump and archive them (10 years), "
              "then drop them (docs/operations.md)")
    return 0
