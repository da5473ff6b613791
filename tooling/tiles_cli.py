"""`posray tiles export DIR`: write each shard's log as C2SP tiles, for any static server, bucket or CDN.

DIR/<shard>/ gets what GET /tlog/<shard>/ serves: `checkpoint`, `tile/<L>/<N>[.p/<W>]` and
`tile/entries/<N>[.p/<W>]`. Every file appears whole (written aside, then renamed); full tiles
are written once; the checkpoint last, so a reader that sees it finds every tile it needs.
With --follow the export repeats every --interval-s as the ledger grows (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from jobs.audit import parse_shards

ROUNDS_MAX_DEFAULT = None  # --follow runs until stopped


def add_parser(subparsers) -> None:
    """Register `tiles export DIR [--shards 0,2,5-7] [--follow] [--interval-s S]` on the `posray` parser."""
    tiles = subparsers.add_parser("tiles", help="the shard logs as static C2SP tiles (c2sp.org/tlog-tiles)")
    actions = tiles.add_subparsers(dest="tiles_action", required=True)
    export = actions.add_parser("export", help="write DIR/<shard>/checkpoint and its tiles")
    export.add_argument("dir", type=Path, metavar="DIR")
    export.add_argument("--shards", type=parse_shards, help="shards to export, e.g. 0,2,5-7 (default: all)")
    export.add_argument("--follow", action="store_true", help="keep exporting as the ledger grows")
    export.add_argument("--interval-s", type=_interval, default=1.0, help="pause between rounds with --follow")
    export.add_argument("--rounds-max", type=int, default=ROUNDS_MAX_DEFAULT, help=argparse.SUPPRESS)
    export.set_defaults(func=cmd_tiles_export)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError("the interval is 0.05 to 3600 seconds")
    return value


def cmd_tiles_export(args) -> int:
    """0 when every round exported, 1 when a shard was refused, 2 on configuration errors."""
    from posray.locate import deployment_settings

    settings = deployment_settings(args)
    if settings.pg_dsn is None:
        print("posray tiles: no PostgreSQL configured (run `posray up` or set POSRAY_PG_DSN)", file=sys.stderr)
        return 2
    shards = args.shards or list(range(settings.shard_count))
    if shards[-1] >= settings.shard_count:
        print(f"posray tiles: this deployment has shards 0..{settings.shard_count - 1}", file=sys.stderr)
        return 2
    return asyncio.run(_export(settings, args, shards))


async def _export(settings, args, shards: list[int]) -> int:
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_ledger import PgLedger
    from posray.adapters.tile_files import TileDirectory
    from posray.domain.errors import AuditDivergence, SetupError
    from posray.services.tiles import export

    sink = TileDirectory(args.dir)
    rounds = 0
    pool = await create_pool(settings.pg_dsn, size_max=2)
    try:
        ledger = PgLedger(pool)
        while True:
            started = time.monotonic()
            for shard in shards:
                try:
                    done = await export(ledger, sink, shard, settings.log_origin(shard), settings.witness_quorum)
                except (SetupError, AuditDivergence) as e:
                    print(f"posray tiles: shard {shard}: {e}", file=sys.stderr)
                    return 1
                if done.to_size != done.from_size or not args.follow:
                    print(f"shard {shard}: size {done.from_size} -> {done.to_size}, {done.written} files", flush=True)
            rounds += 1
            if not args.follow or (args.rounds_max is not None and rounds >= args.rounds_max):
                return 0
            await asyncio.sleep(max(0.0, args.interval_s - (time.monotonic() - started)))
    finally:
        await pool.close()
