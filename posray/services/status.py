"""Use case `gather_status`: shards, captured heights, backlogs and ledger heights."""

from __future__ import annotations

from posray.adapters.pg import create_pool
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_capture import connect
from posray.adapters.redis_stream import RedisShardStream
from posray.settings import Settings


async def gather_status(settings: Settings) -> dict:
    """Per shard: captured (last sequence in Redis), backlog (stream length), recorded height."""
    client = connect(settings.redis_url)
    stream = RedisShardStream(client, settings.key_prefix)
    pool = await create_pool(settings.pg_dsn, size_max=2)
    try:
        heights = await PgLedger(pool).heights()
        terminals = await PgTerminals(pool).count()
        shards = {}
        for shard in range(settings.shard_count):
            batches, recorded = heights.get(shard, (0, 0))
            shards[shard] = {
                "captured": await stream.captured_height(shard),
                "backlog": await stream.backlog(shard),
                "recorded": recorded,
                "batches": batches,
            }
    finally:
        await pool.close()
        await client.aclose()
    totals = {k: sum(s[k] for s in shards.values()) for k in ("captured", "backlog", "recorded")}
    return {"shards": shards, "totals": totals, "terminals": terminals}
