"""The ledger's own capacity: posray's recording code draining a captured backlog, in one process.

In a live run the ledger only ever records what ingest feeds it, so its rate says little about
what it could do. Here the bench captures documents into scratch streams on the deployment's
Redis (RedisCapture, as IngestShard does, in calls of 100), then runs one ShardRecorder per
shard in this process (as one LedgerWriter actor does) against a scratch database with posray's
schema on the deployment's PostgreSQL, and times the drain: stream reads, RFC 6962 leaves and
subtrees, the batch chain, COPY in one transaction per batch, acknowledgements. Comparable with
the raw COPY baseline (one process, one connection). Scratch keys and database are removed.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from posray.adapters.pg import apply_schema, create_pool, ensure_database
from posray.adapters.redis_capture import RedisCapture, connect
from posray.adapters.redis_stream import RedisShardStream
from posray.domain.codes import CodeKey
from posray.domain.transaction import Submission, shard_of

CAPTURE_CALL_DOCS = 100


async def ledger_capacity(redis_url: str, pg_dsn: str, entries: list[tuple[bytes, str]], shards: int,
                          batch_max: int, code_key: CodeKey) -> dict:
    """Capture `entries` (canonical bytes, hash hex) into `shards` scratch streams, record them all
    into a scratch database with posray's schema.

    Returns:
        docs_per_s of the drain, documents, batches, and the setup.
    """
    name = f"posray_bench_ledger_{secrets.token_hex(4)}"
    dsn = await ensure_database(pg_dsn, name)
    try:
        await apply_schema(dsn)
        return await append_rate(redis_url, dsn, entries, shards, batch_max, code_key)
    finally:
        await _drop_database(pg_dsn, name)


async def append_rate(redis_url: str, dsn: str, entries: list[tuple[bytes, str]], shards: int,
                      batch_max: int, code_key: CodeKey, shard_base: int = 0) -> dict:
    """The drain of ledger_capacity into the ledger `dsn` as it is (empty or filled); scratch keys removed.

    Documents go to shards shard_base + shard_of(terminal, shards): a bench that drains into one
    ledger more than once passes another base each time, so each run's scratch store fences
    shards of its own.
    """
    import orjson

    prefix = f"posray-bench-ledger:{secrets.token_hex(4)}"
    client = connect(redis_url)
    try:
        by_shard: dict[int, list[Submission]] = {}
        for canonical, digest in entries:
            doc = orjson.loads(canonical)
            shard = shard_base + shard_of(doc["terminal_id"], shards)
            by_shard.setdefault(shard, []).append(
                Submission(doc["terminal_id"], doc["counter"], shard, bytes.fromhex(digest), canonical))
        await _capture(RedisCapture(client, prefix, 3600, 10 ** 9), dsn, prefix, by_shard)
        elapsed_s, batches, recorded = await _drain(client, prefix, dsn, sorted(by_shard), batch_max, code_key)
    finally:
        await _drop_keys(client, prefix)
    documents = sum(len(v) for v in by_shard.values())
    return {"docs_per_s": round(documents / elapsed_s, 1), "documents": documents, "recorded": recorded,
            "batches": batches,
            "elapsed_s": round(elapsed_s, 3),
            "setup": f"{len(by_shard)} shards recorded by one process (like one LedgerWriter), "
                     f"batches of up to {batch_max}"}


async def _capture(capture: RedisCapture, dsn: str, prefix: str, by_shard: dict[int, list[Submission]]) -> None:
    from posray.adapters.pg_fences import PgFences
    from posray.services.fencing import ShardFences

    accepted_ms = int(time.time() * 1000)
    pool = await create_pool(dsn, size_max=1)
    try:
        # Fenced as an IngestShard is, with one reservation covering the whole scratch backlog.
        total = sum(len(subs) for subs in by_shard.values())
        fences = ShardFences(capture, PgFences(pool), f"bench#{prefix}", total + 1)
        for shard, subs in by_shard.items():
            fence = await fences.ensure(shard)
            for i in range(0, len(subs), CAPTURE_CALL_DOCS):
                await capture.append(shard, accepted_ms, subs[i:i + CAPTURE_CALL_DOCS], fence)
    finally:
        await pool.close()


async def _drain(client, prefix: str, dsn: str, shards: list[int], batch_max: int,
                 code_key: CodeKey) -> tuple[float, int, int]:
    from posray.adapters.pg_ledger import PgLedger
    from posray.services.recording import ShardRecorder

    pool = await create_pool(dsn, size_max=len(shards) + 1)
    stream = RedisShardStream(client, prefix)
    try:
        recorders = [ShardRecorder(s, stream, PgLedger(pool), code_key, batch_max, wait_ms=5) for s in shards]
        for recorder in recorders:
            await recorder.resync()
        started = time.perf_counter()
        batches = sum(await asyncio.gather(*(_record_all(r, stream) for r in recorders)))
        elapsed_s = time.perf_counter() - started
        recorded = sum(r.recorded for r in recorders)
        return elapsed_s, batches, recorded
    finally:
        await pool.close()


async def _record_all(recorder, stream: RedisShardStream) -> int:
    batches = 0
    while await stream.backlog(recorder.shard):
        if await recorder.step():
            batches += 1
    return batches


async def _drop_keys(client, prefix: str) -> None:
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


async def _drop_database(pg_dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
