"""LedgerWriter: a Ray actor recording its logical shards' streams into PostgreSQL.

A thin shell that runs posray.services.recording.keep_recording for every owned shard, from
construction on (so a restarted actor resumes by itself); what to retry and when to stop is
decided there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import ray

from actors.metrics import LedgerMetrics
from posray.adapters.keyfile import load_keys
from posray.adapters.pg import check_layout, create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.redis_capture import connect
from posray.adapters.redis_stream import RedisShardStream
from posray.adapters.witness_http import HttpWitnesses
from posray.domain.errors import PosrayError
from posray.domain.note import Checkpoint, NoteSigner, sign_checkpoint
from posray.services.recording import ShardRecorder, keep_recording
from posray.services.witnessing import WitnessConfig, keep_witnessing
from posray.settings import Settings, witness_list

log = logging.getLogger("posray.ledger")
METRICS_REPORT_S = 2.0


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=100)
class LedgerWriter:
    """Records the shards it owns; `status()` reports heights, backlog and errors."""

    def __init__(self, settings: Settings, shards: list[int]):
        self._settings = settings
        self._shards = shards
        keys = load_keys(settings.seed_file)
        self._code_key = keys.code
        self._signer = NoteSigner(settings.log_key_name, keys.signing_seed)
        self._recorders: dict[int, ShardRecorder] = {}
        self._errors: dict[int, str] = {}
        self._conflicts: dict[int, int] = {}
        self._stream: RedisShardStream | None = None
        self._metrics = LedgerMetrics()
        self._main = asyncio.get_running_loop().create_task(self._run())
        self._reporter = asyncio.get_running_loop().create_task(self._report())

    async def _run(self) -> None:
        s = self._settings
        client = connect(s.redis_url, s.sentinels, s.redis_master)
        self._stream = RedisShardStream(client, self._settings.key_prefix)
        pool = None
        while pool is None:
            try:
                pool = await create_pool(self._settings.pg_dsn, size_max=len(self._shards) + 1)
                await check_layout(pool, self._settings.shard_count)
            except PosrayError as e:  # PostgreSQL away, or a shard count the ledger refuses
                self._errors = {s: str(e) for s in self._shards}
                if pool is not None:
                    await pool.close()
                    pool = None
                await asyncio.sleep(1)
        ledger = PgLedger(pool)
        s = self._settings
        self._recorders = {
            shard: ShardRecorder(shard, self._stream, ledger, self._code_key,
                                 s.ledger_batch_max, s.ledger_batch_wait_ms,
                                 self._checkpoint_signer(shard), s.checkpoint_interval_s,
                                 self._metrics.batch_recorded, PgFences(pool))
            for shard in self._shards
        }
        witnessing = []
        if s.witnesses:  # beside recording, at its own pace: a witness away never slows recording
            witnesses = [WitnessConfig.parse(url, key) for url, key in witness_list(s.witnesses)]
            witnessing.append(keep_witnessing(ledger, HttpWitnesses(s.witness_timeout_s), witnesses,
                                              self._shards, s.witness_interval_s))
        await asyncio.gather(*(keep_recording(r, self._heard) for r in self._recorders.values()), *witnessing)

    def _checkpoint_signer(self, shard: int):
        origin = self._settings.log_origin(shard)
        signer = self._signer
        return lambda size, root, extensions: sign_checkpoint(signer, Checkpoint(origin, size, root, extensions))

    def _heard(self, shard: int, error: str | None, conflicts: int) -> None:
        """posray.services.recording.keep_recording's report: the shard's state for status()."""
        if error is None:
            self._errors.pop(shard, None)
            self._conflicts.pop(shard, None)
        else:
            self._errors[shard] = error
            self._conflicts[shard] = conflicts

    async def _report(self) -> None:
        """Every few seconds: each owned shard's stream backlog and checkpoint age as gauges."""
        while True:
            await asyncio.sleep(METRICS_REPORT_S)
            if self._stream is None:
                continue
            try:
                backlogs = await self._stream.backlogs(self._shards)
                now_ms = int(time.time() * 1000)
                for shard, backlog in backlogs.items():
                    recorder = self._recorders.get(shard)
                    age_s = recorder.checkpoint_age_s(now_ms) if recorder else 0.0
                    self._metrics.shard(shard, backlog, age_s, self._conflicts.get(shard, 0))
            except Exception as e:  # Redis away: the recording loops report it; keep going
                log.debug("metrics report failed: %s", type(e).__name__)

    async def status(self) -> dict:
        """Per owned shard: recorded height, documents recorded by this incarnation, error."""
        out = {}
        for shard in self._shards:
            recorder = self._recorders.get(shard)
            head = recorder.head if recorder else None
            out[shard] = {
                "last_seq": head.last_seq if head else None,
                "batches": head.batch_no + 1 if head else None,
                "recorded_here": recorder.recorded if recorder else 0,
                "last_batch_age_s": None if not recorder or not recorder.last_batch_ms
                else round(time.time() - recorder.last_batch_ms / 1000, 3),
                "error": self._errors.get(shard),
                "conflicts": self._conflicts.get(shard, 0),
            }
        return out

    async def pid(self) -> int:
        """The actor's process id (operators and fault tests kill -9 it)."""
        return os.getpid()

    async def ping(self) -> list[int]:
        return list(self._shards)
