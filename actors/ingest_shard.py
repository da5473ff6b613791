"""IngestShard: a Ray actor holding Redis connections for its logical shards.

A thin shell around posray.services.capture (start_capture, then capture_owned): one call carries
many documents of any of its shards (one Redis call per shard), encoded by posray.services.hop.
"""

from __future__ import annotations

import asyncio
import collections
import os

import ray

from actors.metrics import IngestMetrics
from posray.adapters.keyfile import load_keys
from posray.adapters.pg import check_layout, create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.redis_capture import RedisCapture, connect
from posray.services import hop
from posray.services.capture import capture_owned, start_capture
from posray.services.fencing import ShardFences
from posray.settings import Settings



@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=1000)
class IngestShard:
    """Captures documents of the logical shards it owns."""

    def __init__(self, settings: Settings, shards: list[int]):
        self._settings = settings
        self._shards = set(shards)
        self._keys = load_keys(settings.seed_file)
        self._client = connect(settings.redis_url, settings.sentinels, settings.redis_master)
        self._capture = RedisCapture(
            self._client, settings.key_prefix, settings.idempotency_ttl_s, settings.stream_backlog_max,
            settings.capture_replicas_min, settings.capture_replicas_timeout_ms,
        )
        self._metrics = IngestMetrics()
        self._fences: ShardFences | None = None
        self._ready = asyncio.get_running_loop().create_task(self._prepare())

    async def _prepare(self) -> None:
        if self._fences is None:
            # The pool lives as long as the actor: fences are set and reservations extended from it.
            pool = await create_pool(self._settings.pg_dsn, size_max=2)
            try:
                await check_layout(pool, self._settings.shard_count)
            except Exception:
                await pool.close()
                raise
            s = self._settings
            self._fences = ShardFences(self._capture, PgFences(pool), s.capture_store_id, s.capture_reservation,
                                       keys_ttl_s=s.idempotency_ttl_s)
        await start_capture(self._capture, self._fences, self._shards, self._settings.redis_require_aof)

    async def append(self, wire: list[tuple]) -> list:
        """Capture submissions of any owned shards (posray.services.hop's tuples); one result each."""
        await self._ensure_ready()
        submissions = hop.receive_submissions(wire)
        for shard, documents in collections.Counter(s.shard for s in submissions).items():
            self._metrics.call(shard, documents)
        results = await capture_owned(self._capture, self._fences, self._keys, self._shards, submissions)
        while self._fences.losses:  # what re-fencing found lost: counted once, and logged there
            shard, loss = self._fences.losses.pop()
            self._metrics.lost(shard, loss.lost_to - loss.lost_from + 1)
        return hop.send_results(results)

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
