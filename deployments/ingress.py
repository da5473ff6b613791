"""The Serve application: HTTP ingress replicas in front of the IngestShard actors.

Thin: builds each replica's Backend (connections, terminal directory, micro-batcher whose
`send` is a Ray call to the actor owning the shard) and hands requests to PosrayApi.
"""

from __future__ import annotations

import asyncio
import logging

import ray
from ray import serve

from actors.metrics import IngressMetrics
from actors.placement import ingest_name, ledger_name, owned_shards, owner_of
from deployments.api.backend import Backend
from deployments.http_api import PosrayApi
from posray.adapters.keyfile import load_keys
from posray.adapters.pg import check_layout, create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_merchants import PgMerchants
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_capture import RedisCapture, connect
from posray.adapters.redis_stream import RedisShardStream
from posray.domain.errors import Unavailable
from posray.domain.transaction import Rules
from posray.services.batcher import IngestBatcher
from posray.services import hop
from posray.services.health import ReadinessCheck
from posray.services.intake import Intake
from posray.services.terminals import TerminalDirectory
from posray.settings import Settings

log = logging.getLogger("posray.ingress")
APP_NAME = "posray"
# The replica's own HTTP server (Serve's direct ingress, behind HAProxy) is uvicorn, which by
# default believes X-Forwarded-For from a loopback peer; Ray's HAProxy passes the client's header
# through unchanged, so a client could pick its own address. Trust no proxy header here: the
# public endpoints' limiter decides what X-Forwarded-For means (POSRAY_TRUSTED_PROXY_HOPS).
REPLICA_ENV = {"FORWARDED_ALLOW_IPS": ""}
METRICS_REPORT_S = 5.0
WRITER_STATUS_TIMEOUT_S = 0.8


class ReplicaBackend:
    """Builds the replica's Backend on first use (inside the replica process) and keeps it."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._backend: Backend | None = None
        self._lock: asyncio.Lock | None = None
        self._actors: dict[int, ray.actor.ActorHandle] = {}
        self._writers: dict[int, ray.actor.ActorHandle] = {}

    async def __call__(self) -> Backend:
        if self._backend is None:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                if self._backend is None:
                    self._backend = await self._build()
        return self._backend

    async def _build(self) -> Backend:
        s = self._settings
        keys = load_keys(s.seed_file)
        pool = await create_pool(s.pg_dsn, size_max=4)
        await check_layout(pool, s.shard_count)
        terminals = PgTerminals(pool)
        directory = TerminalDirectory(terminals, keys.terminal_master, s.terminal_cache_max)
        await directory.start()
        asyncio.get_running_loop().create_task(self._refresh(directory))
        rules = Rules(frozenset(s.vat_rates_bp), s.future_skew_s, s.upload_window_s)
        client = connect(s.redis_url, s.sentinels, s.redis_master)
        capture = RedisCapture(client, s.key_prefix, s.idempotency_ttl_s, s.stream_backlog_max)
        batcher = IngestBatcher(self._send, lambda sub: owner_of(sub.shard, s.ingest_actors), s.shard_batch_max,
                                s.shard_batch_wait_ms, s.shard_queue_max, s.shard_calls_in_flight_max)
        ledger, stream = PgLedger(pool), RedisShardStream(client, s.key_prefix)
        shards = list(range(s.shard_count))
        readiness = ReadinessCheck(stream.ping, ledger.ping, lambda: stream.backlogs(shards),
                                   self._writer_errors, s.ready_backlog_max)
        metrics = IngressMetrics()
        asyncio.get_running_loop().create_task(self._report(metrics))
        # Merchants' reads get a pool of their own: a long summary never holds up documents.
        merchants = PgMerchants(await create_pool(s.pg_dsn, size_max=2))
        # Retention: detached days are read back from the tiles archive, found through the snapshot.
        archive = index = None
        if s.tiles_archive:
            from posray.adapters.parquet_snapshot import SnapshotIndex  # Polars, only where it is needed
            from posray.adapters.tile_http import tile_source

            archive, index = tile_source(s.tiles_archive), SnapshotIndex(s.snapshot_path)
        return Backend(s, keys, Intake(rules, directory, s.shard_count), batcher,
                       ledger, capture, terminals, readiness, metrics, merchants=merchants,
                       fences=PgFences(pool), archive=archive, receipt_index=index)

    async def _report(self, metrics: IngressMetrics) -> None:
        while True:
            await asyncio.sleep(METRICS_REPORT_S)
            try:
                metrics.report()
            except Exception as e:  # metrics must never take the replica down
                log.warning("metrics report failed: %s", type(e).__name__)

    async def _writer_errors(self) -> dict[int, str | None]:
        """Per shard: the error its LedgerWriter reports (None when recording), for /readyz."""
        s = self._settings
        indexes = list(range(s.ledger_actors))
        views = await asyncio.gather(*(self._writer_status(i) for i in indexes), return_exceptions=True)
        out: dict[int, str | None] = {}
        for index, view in zip(indexes, views):
            if isinstance(view, BaseException):
                self._writers.pop(index, None)
                reason = "did not answer" if isinstance(view, asyncio.TimeoutError) else type(view).__name__
                out.update({shard: f"ledger actor {index}: {reason}"
                            for shard in owned_shards(index, s.ledger_actors, s.shard_count)})
            else:
                out.update({shard: v.get("error") for shard, v in view.items()})
        return out

    async def _writer_status(self, index: int) -> dict:
        actor = self._writers.get(index)
        if actor is None:
            actor = self._writers[index] = ray.get_actor(
                ledger_name(self._settings.key_prefix, index), namespace=self._settings.ray_namespace)
        return await asyncio.wait_for(actor.status.remote(), WRITER_STATUS_TIMEOUT_S)

    async def _refresh(self, directory: TerminalDirectory) -> None:
        while True:
            await asyncio.sleep(self._settings.revocation_poll_s)
            try:
                await directory.refresh()
            except Exception as e:  # PostgreSQL away: keep serving from the cache, retry
                log.warning("terminal directory refresh failed: %s", type(e).__name__)

    async def _send(self, index: int, submissions: list) -> list:
        """One call to IngestShard `index`: submissions go as tuples, results come back as tuples."""
        actor = self._actors.get(index)
        if actor is None:
            try:
                actor = ray.get_actor(ingest_name(self._settings.key_prefix, index),
                                      namespace=self._settings.ray_namespace)
            except ValueError:
                raise Unavailable(f"ingest actor {index} is not running") from None
            self._actors[index] = actor
        try:
            results = await asyncio.wait_for(
                actor.append.remote(hop.send_submissions(submissions)), self._settings.actor_call_timeout_s
            )
        except asyncio.TimeoutError:
            raise Unavailable(f"ingest actor {index} did not answer in time") from None
        except ray.exceptions.RayActorError:
            self._actors.pop(index, None)
            raise Unavailable(f"ingest actor {index} is restarting") from None
        return hop.receive_results(results)


def build_app(settings: Settings):
    """The bound Serve application for `settings` (deploy with serve.run)."""
    api = PosrayApi(ReplicaBackend(settings))

    @serve.deployment(
        name="PosrayIngress",
        num_replicas=settings.replicas,
        max_ongoing_requests=settings.replica_ongoing_requests_max,
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": REPLICA_ENV}},
        health_check_period_s=5,
        logging_config={"enable_access_log": False},
    )
    @serve.ingress(api)
    class PosrayIngress:
        pass

    return PosrayIngress.bind()
