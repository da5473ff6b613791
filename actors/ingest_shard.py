"""IngestShard: a Ray actor holding Redis connections for its logical shards.

A thin shell around posray.services.capture.capture_owned: one call carries many documents of
any of its shards (one Redis call per shard).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os

import ray

from actors.metrics import IngestMetrics
from posray.adapters.keyfile import load_keys
from posray.adapters.pg import check_layout, create_pool
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.redis_capture import RedisCapture, connect
from posray.domain.errors import Unavailable
from posray.services.capture import capture_owned
from posray.settings import Settings

log = logging.getLogger("posray.ingest")


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)
class IngestShard:
    """Captures documents of the logical shards it owns."""

    def __init__(self, settings: Settings, shards: list[int]):
        self._settings = settings
        self._shards = set(shards)
        self._keys = load_keys(settings.seed_file)
        self._client = connect(settings.redis_url)
        self._capture = RedisCapture(
            self._client, settings.key_prefix, settings.idempotency_ttl_s, settings.stream_backlog_max
        )
        self._metrics = IngestMetrics()
        self._ready = asyncio.get_running_loop().create_task(self._prepare())

    async def _prepare(self) -> None:
        durability = await self._capture.durability()
        if durability != "always":
            if self._settings.redis_require_aof:
                raise Unavailable(f"Redis is not durable (appendfsync: {durability}); refusing to ack")
            log.warning("Redis durability is %r: acknowledged documents may be lost on a crash", durability)
        pool = await create_pool(self._settings.pg_dsn, size_max=1)
        try:
            await check_layout(pool, self._settings.shard_count)
            ledger = PgLedger(pool)
            for shard in self._shards:
                head = await ledger.head(shard)
                await self._capture.raise_seq_floor(shard, head.last_seq)
        finally:
            await pool.close()

    async def append(self, submissions: list[tuple]) -> list:
        """Capture submissions (as tuples, cheap to pickle) of any owned shards; one result each."""
        await self._ensure_ready()
        for shard, documents in collections.Counter(fields[2] for fields in submissions).items():
            self._metrics.call(shard, documents)
        return await capture_owned(self._capture, self._keys, self._shards, submissions)

    async def _ensure_ready(self) -> None:
        try:
            await asyncio.shield(self._ready)
        except Exception:
            # Retry preparation (e.g. Redis or PostgreSQL came back) on the next call.
            self._ready = asyncio.get_running_loop().create_task(self._prepare())
            raise

    async def pid(self) -> int:
        """The actor's process id (operators and fault tests kill -9 it)."""
        return os.getpid()

    async def ping(self) -> list[int]:
        await self._ensure_ready()
        return sorted(self._shards)
