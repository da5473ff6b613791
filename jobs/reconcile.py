"""`posray audit --reconcile`: the capture store's acknowledgements against the ledger, as a report.

Lists idempotency keys whose recorded place holds another document, the sequences fences
recorded as lost and the ledger writers' conflicts (released or not). Exit 0 when there is
none, 1 when any receipt was lost, conflicts or mismatches (posray.services.reconcile).
"""

from __future__ import annotations

import asyncio
import json
import sys

from posray.progress import Progress

PROGRESS_INTERVAL_S = 2.0
LISTED_MAX = 20  # lines per section of the table report; --json lists everything kept


def run_reconcile(settings, args, out=None, err=None) -> int:
    """Reconcile the shards `args.shards` names (all by default); print the report; 0 clean, 1 not.

    Raises:
        NoDeployment: no capture store or ledger is configured.
        Unavailable: Redis or PostgreSQL is unreachable.
    """
    from posray.locate import require

    out, err = out or sys.stdout, err or sys.stderr
    require(settings, "redis_url", "pg_dsn")
    with Progress("reconcile", unit="keys", stream=err, interval_s=PROGRESS_INTERVAL_S, end_line=False) as tick:
        found = asyncio.run(_reconcile(settings, set(args.shards) if args.shards else None,
                                       args.scan_count, tick))
    if args.json:
        print(json.dumps(found.to_json(), indent=2), file=out)
    else:
        _report(found, out)
    return 0 if found.ok else 1


async def _reconcile(settings, shards, scan_count: int, tick):
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_fences import PgFences
    from posray.adapters.pg_ledger import PgLedger
    from posray.adapters.redis_capture import connect
    from posray.adapters.redis_idempotency import RedisIdempotencyKeys
    from posray.services.reconcile import reconcile

    client = connect(settings.redis_url, settings.sentinels, settings.redis_master)
    try:
        pool = await create_pool(settings.pg_dsn, size_max=2)
        try:
            return await reconcile(RedisIdempotencyKeys(client, settings.key_prefix), PgLedger(pool),
                                   PgFences(pool), shards, scan_count, tick)
        finally:
            await pool.close()
    finally:
        await client.aclose()


def _report(found, out) -> None:
    print(f"idempotency keys: {found.keys_scanned} scanned, {found.keys_checked} at recorded places checked, "
          f"{found.keys_pending} not recorded yet", file=out)
    print(f"mismatches (a recorded place holds another document): {found.mismatches_total}", file=out)
    for m in found.mismatches[:LISTED_MAX]:
        recorded = m.recorded_hash.hex()[:16] if m.recorded_hash else "nothing"
        captured = m.captured_hash.hex()[:16] if m.captured_hash else "an unreadable value"
        known = f", conflict {m.conflict}" if m.conflict else ""
        print(f"  shard {m.shard} seq {m.seq}: {m.terminal_id} counter {m.counter} captured {captured}…, "
              f"ledger holds {recorded}{known}", file=out)
    print(f"fence losses: {len(found.losses)}", file=out)
    for x in found.losses[:LISTED_MAX]:
        print(f"  shard {x.shard} seq {x.lost_from}..{x.lost_to} ({'exact' if x.exact else 'upper bound'}, "
              f"epoch {x.epoch}, {x.detected_at:%Y-%m-%d %H:%M:%S}): {x.reason}", file=out)
    print(f"conflicts: {len(found.conflicts)}", file=out)
    for c in found.conflicts[:LISTED_MAX]:
        state = "released (lost)" if c.released else "UNRELEASED: recording of the shard is stopped"
        print(f"  shard {c.shard} seq {c.seq}: document {c.document_hash.hex()[:16]}… accepted "
              f"{c.accepted_at:%Y-%m-%d %H:%M:%S}, {state}", file=out)
    print(f"sales recorded twice (resent after the capture store lost its keys): {len(found.recorded_twice)}",
          file=out)
    for shard, terminal_id, counter, seqs in found.recorded_twice[:LISTED_MAX]:
        print(f"  shard {shard}: {terminal_id} counter {counter} at seqs {', '.join(map(str, seqs))}", file=out)
    shown = max(len(found.mismatches), len(found.losses), len(found.conflicts), len(found.recorded_twice))
    if shown > LISTED_MAX:
        print(f"(at most {LISTED_MAX} lines per section: --json lists them all)", file=out)
    verdict = "ok: every acknowledged document checked is in the ledger" if found.ok else \
        "FAILED: acknowledged receipts were lost, conflict or are mismatched (docs/operations.md)"
    print(f"reconcile {verdict}", file=out)
