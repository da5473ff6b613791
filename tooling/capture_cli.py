"""`posray capture status|release|rebind`: the operator's side of fencing capture against the ledger.

See docs/operations.md, "When capture and the ledger disagree". Failures end in one line on
stderr through posray's one handler (tooling/cli_errors.py).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import sys

from jobs.audit import parse_shards

REBIND_DANGER = (
    "refusing without --yes: rebind lets this deployment's capture store ({store}) take over shards the "
    "ledger's fences give to another store; if that store still captures, two stores hand out the same "
    "sequences of one ledger and receipts are lost. Stop the other deployment first, then run again with --yes")


def add_parser(subparsers) -> None:
    """Register `capture status`, `capture release SHARD` and `capture rebind` on the `posray` parser."""
    capture = subparsers.add_parser("capture", help="fences between the capture store and the ledger: "
                                    "status, release conflicts, rebind to this store")
    actions = capture.add_subparsers(dest="capture_action", required=True)
    status = actions.add_parser("status", help="per shard: fence epoch, store, floor, reservation, losses, conflicts")
    status.add_argument("--shards", type=parse_shards, help="only these shards, e.g. 0,2,5-7")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    release = actions.add_parser("release", help="release a stopped shard's conflicts (they stay recorded as "
                                 "lost) so that its recording resumes")
    release.add_argument("shard", type=int)
    release.add_argument("--by", help="who releases, recorded with the release (default: your user name)")
    rebind = actions.add_parser("rebind", help="let this deployment's capture store take over shards fenced "
                                "by another store")
    rebind.add_argument("--shards", type=parse_shards, help="only these shards (default: every shard)")
    rebind.add_argument("--yes", action="store_true", help="confirm that no other store captures these shards")
    capture.set_defaults(func=cmd_capture)


def cmd_capture(args) -> int:
    """Run the action; 0 when done, 1 on failure, 2 when refused or not set up."""
    from posray.locate import deployment_settings
    from posray.locate import require

    settings = deployment_settings(args)
    if args.capture_action == "rebind" and not args.yes:
        store = settings.capture_store_id if settings.redis_url else "POSRAY_REDIS_URL"
        print(f"posray capture rebind: {REBIND_DANGER.format(store=store)}", file=sys.stderr)
        return 2
    require(settings, "pg_dsn", *(("redis_url",) if args.capture_action == "rebind" else ()))
    run = {"status": _status, "release": _release, "rebind": _rebind}[args.capture_action]
    return asyncio.run(run(settings, args))


async def _status(settings, args) -> int:
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_fences import PgFences
    from posray.adapters.pg_ledger import PgLedger
    from posray.services.capture_admin import capture_status

    pool = await create_pool(settings.pg_dsn, size_max=1)
    try:
        shards = args.shards or list(range(settings.shard_count))
        rows = await capture_status(PgFences(pool), PgLedger(pool), shards)
    finally:
        await pool.close()
    if args.shards:
        rows = [r for r in rows if r.shard in set(args.shards)]
    if args.json:
        print(json.dumps({"store": settings.capture_store_id, "shards": [r.to_json() for r in rows]}, indent=2))
        return 0
    _print_status(rows, settings.capture_store_id)
    return 0


def _print_status(rows, own_store: str) -> None:
    print(f"this deployment's capture store: {own_store}")
    print(f"{'shard':>5} {'epoch':>6} {'ledger':>10} {'floor':>10} {'reserved':>10} {'lost':>7} "
          f"{'conflicts':>9} {'released':>8}  store")
    for r in rows:
        f = r.fence
        store = "(not fenced)" if f is None else ("this deployment's" if f.store == own_store else f.store)
        print(f"{r.shard:>5} {f.epoch if f else '-':>6} {r.ledger_seq:>10} {f.floor if f else '-':>10} "
              f"{f.reserved if f else '-':>10} {r.lost_sequences:>7} {len(r.conflicts_unreleased):>9} "
              f"{len(r.conflicts_released):>8}  {store}")
    stopped = [r.shard for r in rows if r.conflicts_unreleased]
    if stopped:
        print(f"recording STOPPED on shard(s) {', '.join(map(str, stopped))} by unreleased conflicts: see "
              "`posray audit --reconcile`, then `posray capture release SHARD`")


async def _release(settings, args) -> int:
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_fences import PgFences
    from posray.services.capture_admin import release

    by = args.by or _user()
    pool = await create_pool(settings.pg_dsn, size_max=1)
    try:
        released = await release(PgFences(pool), args.shard, by)
    finally:
        await pool.close()
    if not released:
        print(f"shard {args.shard}: no unreleased conflict, nothing to release")
        return 0
    print(f"shard {args.shard}: released {len(released)} conflict(s) (by {by}); they stay recorded as lost "
          "and their receipt codes keep answering 410:")
    for seq, digest in released:
        print(f"  seq {seq}  document {digest.hex()}")
    print("the shard's ledger writer acknowledges them on its next retry (within a few seconds) and "
          "recording resumes; `posray status` shows it")
    return 0


async def _rebind(settings, args) -> int:
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_fences import PgFences
    from posray.adapters.redis_capture import RedisCapture, connect
    from posray.services.capture_admin import rebind

    shards = args.shards or list(range(settings.shard_count))
    # The fencing service logs for the IngestShard's log; here the outcome is printed below.
    logging.getLogger("posray.services.fencing").setLevel(logging.CRITICAL)
    client = connect(settings.redis_url, settings.sentinels, settings.redis_master)
    pool = await create_pool(settings.pg_dsn, size_max=1)
    try:
        capture = RedisCapture(client, settings.key_prefix, settings.idempotency_ttl_s, settings.stream_backlog_max)
        done = await rebind(capture, PgFences(pool), settings.capture_store_id, settings.capture_reservation, shards)
    finally:
        await pool.close()
        await client.aclose()
    for r in done:
        if r.outcome != "rebound":
            continue
        lost = "" if r.lost_from is None else f"; sequences {r.lost_from}..{r.lost_to} recorded as possibly lost"
        print(f"shard {r.shard}: rebound from {r.previous_store} (epoch {r.fence.epoch}, floor {r.fence.floor}){lost}")
    moved = sum(r.outcome == "rebound" for r in done)
    print(f"{moved} shard(s) rebound to {settings.capture_store_id}; "
          f"{sum(r.outcome != 'rebound' for r in done)} already this store's or not fenced yet")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "operator"
