"""Use case `gather_status`: shards, captured heights, backlogs, ledger heights, lag, checkpoints."""

from __future__ import annotations

import time

from posray.adapters.pg import create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_capture import connect
from posray.adapters.redis_stream import RedisShardStream
from posray.services.health import checkpoint_age_s
from posray.settings import Settings


async def gather_status(settings: Settings) -> dict:
    """Per shard: captured (last sequence in Redis), backlog (stream length), recorded height,
    ledger lag (age of the oldest unrecorded document, s), checkpoint age (s; 0 when the
    recorded height is signed), unreleased conflicts and sequences a capture store lost."""
    client = connect(settings.redis_url, settings.sentinels, settings.redis_master)
    stream = RedisShardStream(client, settings.key_prefix)
    pool = await create_pool(settings.pg_dsn, size_max=2)
    try:
        ledger = PgLedger(pool)
        heights = await ledger.heights()
        signed = await ledger.latest_checkpoints(list(range(settings.shard_count)))
        terminals = await PgTerminals(pool).count()
        fences = PgFences(pool)
        stopped: dict[int, int] = {}
        for conflict in await fences.conflicts():
            if not conflict.released:
                stopped[conflict.shard] = stopped.get(conflict.shard, 0) + 1
        lost: dict[int, int] = {}
        for loss in await fences.losses():
            lost[loss.shard] = lost.get(loss.shard, 0) + loss.lost_to - loss.lost_from + 1
        shards = {}
        for shard in range(settings.shard_count):
            batches, recorded = heights.get(shard, (0, 0))
            oldest_ms = await stream.oldest_accepted_ms(shard)
            signed_size, signed_ms = signed.get(shard, (0, None))
            now_ms = int(time.time() * 1000)
            shards[shard] = {
                "captured": await stream.captured_height(shard),
                "backlog": await stream.backlog(shard),
                "recorded": recorded,
                "batches": batches,
                "ledger_lag_s": 0.0 if oldest_ms is None else round(max(0, now_ms - oldest_ms) / 1000, 3),
                "checkpointed": signed_size,
                "checkpoint_age_s": round(checkpoint_age_s(recorded, signed_size, signed_ms, now_ms), 3),
                # Unreleased conflicts stop the shard's recording; lost: sequences acknowledged
                # and lost by a capture store (exact or an upper bound), answered 410.
                "conflicts_unreleased": stopped.get(shard, 0),
                "lost_sequences": lost.get(shard, 0),
            }
    finally:
        await pool.close()
        await client.aclose()
    totals = {k: sum(s[k] for s in shards.values()) for k in ("captured", "backlog", "recorded")}
    return {"shards": shards, "totals": totals, "terminals": terminals}
