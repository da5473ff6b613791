"""The private stack `posray faults` breaks: its own Valkey, PostgreSQL, Ray, posray and bench terminals."""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tooling.bench import loadgen, workload
from tooling.bench.ledger import check_exactly_once
from tooling.embedded import ChildPostgres, ChildRedis, ReplicatedRedis, free_port
from tooling.faults_load import Stream
from posray.settings import Settings

BATCH_SIZE = 10
REPLICAS = 2  # of a replicated stack: with acks waiting for one, capture goes on after a failover
READY_TIMEOUT_S = 180


@dataclass(frozen=True, slots=True)
class FaultOptions:
    """The terminals' load in every scenario, and the shape of the stack under it."""

    duration_s: float = 30.0
    fault_at_s: float = 5.0
    rate: float = 300.0  # documents per second, single documents and batches together
    batch_share: float = 0.2  # share of the documents sent in batches of BATCH_SIZE
    connections: int = 96
    timeout_s: float = 15.0  # an answer later than this counts as a timeout
    terminals: int = 200
    backlog_max: int = 600  # per-shard stream bound (POSRAY_STREAM_BACKLOG_MAX)
    drain_timeout_s: float = 180.0
    replicas: int = 2  # Serve replicas (a second one keeps serving while one is killed)
    pg_fsync: bool = True  # False only for throwaway test runs
    # Capture on a replicated set (primary, 2 replicas, 3 sentinels) instead of one Valkey;
    # capture_replicas_min: replicas whose AOF must hold a write before its ack (WAITAOF), 0: none.
    replicated: bool = False
    capture_replicas_min: int = 0

    def documents_per_scenario(self) -> tuple[int, int]:
        """(single-document requests, batch requests) one scenario may send."""
        single = math.ceil(self.rate * (1 - self.batch_share) * self.duration_s) + 10
        batches = math.ceil(self.rate * self.batch_share / BATCH_SIZE * self.duration_s) + 2
        return single, batches


class FaultStack:
    """Valkey (AOF, appendfsync always) and PostgreSQL as child processes, Ray and posray on top."""

    def __init__(self, options: FaultOptions, root: Path | None = None):
        self.options = options
        self.root = Path(root or tempfile.mkdtemp(prefix="posray-faults-"))
        self.redis = (ReplicatedRedis(self.root / "redis-set", replicas=REPLICAS, down_after_ms=1000,
                                      failover_timeout_ms=3000)
                      if options.replicated else ChildRedis(self.root / "redis"))
        self.pg = ChildPostgres(self.root / "postgres", fsync=options.pg_fsync)
        self.settings: Settings | None = None
        self.series = None
        self.cursor = 0
        self._ray = False
        self._client = None
        self._pool = None
        self.second_deployment: dict | None = None  # what the second-deployment scenario saw
        self.old_primary: int | None = None  # the port of the primary a scenario killed

    def start(self, scenarios: int, say=print) -> None:
        """Start the servers, sign the documents, register the terminals, start Ray and posray."""
        from posray.adapters.keyfile import create_seed

        self.redis.start()
        self.pg.start()
        if self.options.replicated:
            redis = self.redis.settings_changes(self.options.capture_replicas_min)
            say(f"Valkey primary + {REPLICAS} replicas + 3 sentinels (AOF, appendfsync always, acks wait for "
                f"{self.options.capture_replicas_min} replica(s)), PostgreSQL on port {self.pg.port}")
        else:
            redis = {"redis_url": self.redis.url}
            say(f"Valkey (AOF, appendfsync always) on {self.redis.url}, PostgreSQL on port {self.pg.port}")
        dsn = asyncio.run(_create_database(self.pg.info.url))
        port, tag = free_port(), uuid.uuid4().hex[:8]
        seed = self.root / "keys" / "operator.seed"
        create_seed(seed)
        self.settings = Settings(
            **redis, pg_dsn=dsn, data_dir=self.root / "posray", operator_seed_file=seed,
            key_prefix=f"faults{tag}", ray_namespace=f"posray-faults-{tag}", http_port=port,
            public_base_url=f"http://127.0.0.1:{port}", replicas=self.options.replicas, shard_count=4,
            ingest_actors=2, ledger_actors=2, ledger_batch_wait_ms=100,
            stream_backlog_max=self.options.backlog_max,
            public_rate_per_s=0)  # the outcome check looks up every code that is not recorded as sent
        asyncio.run(self._terminals(scenarios, say))
        from tooling.harness import fault_targets

        say("starting a private Ray cluster and deploying posray ...")
        self._ray = True
        fault_targets.start(self.settings)

    async def _terminals(self, scenarios: int, say) -> None:
        from posray.adapters.keyfile import load_keys
        from posray.adapters.pg import create_pool

        single, batches = self.options.documents_per_scenario()
        documents = scenarios * (single + batches * BATCH_SIZE) + 1000
        master = load_keys(self.settings.seed_file).terminal_master
        pool = await create_pool(self.settings.pg_dsn, size_max=2)
        try:
            self.series, self.cursor, _ = await workload.choose_series(
                pool, master, "faults", self.options.terminals, documents, 1, self.root / "series")
            say(f"signing {documents:,} documents for {self.options.terminals} terminals ...")
            await asyncio.to_thread(workload.sign_series, self.series, master, os.cpu_count() or 1,
                                    lambda line: None)
            await workload.import_terminals(pool, self.series)
        finally:
            await pool.close()

    def close(self) -> None:
        """Stop Ray, Valkey and PostgreSQL; remove the stack's folder."""
        try:
            if self._ray:
                from tooling.harness import fault_targets

                fault_targets.stop()
        finally:
            try:
                self.redis.stop()
            finally:
                self.pg.stop()
                shutil.rmtree(self.root, ignore_errors=True)

    def streams(self) -> list[Stream]:
        """The next scenario's two open-loop streams (single documents, batches) on unused documents."""
        o, s = self.options, self.settings
        single, batches = o.documents_per_scenario()
        host = f"{s.http_host}:{s.http_port}"
        out = []
        for size, requests, share in ((1, single, 1 - o.batch_share), (BATCH_SIZE, batches, o.batch_share)):
            rate_rps = o.rate * share / size
            connections = max(2, math.ceil(o.connections * share))
            plan = loadgen.LoadPlan(s.http_host, s.http_port, connections, o.duration_s, rate_rps,
                                    o.timeout_s, drain_s=o.timeout_s + 2)
            out.append(Stream(plan, workload.RequestBuilder(self.series, host, self.cursor, size), requests))
            self.cursor += requests * size
        return out

    async def backlogs(self) -> list[int] | None:
        """Per shard: documents captured and not yet recorded (the quantity the capture bound
        limits: shard sequence minus recorded height); None while Redis is away."""
        from posray.adapters.redis_capture import connect
        from posray.adapters.redis_keys import recorded_key, seq_key

        s = self.settings
        self._client = self._client or connect(s.redis_url, s.sentinels, s.redis_master, socket_timeout=1,
                                               socket_connect_timeout=1)
        prefix = self.settings.key_prefix
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for shard in range(self.settings.shard_count):
                    pipe.get(seq_key(prefix, shard))
                    pipe.get(recorded_key(prefix, shard))
                values = [int(v or 0) for v in await pipe.execute()]
        except Exception:  # Redis away (the fault under test): no sample
            return None
        return [max(0, seq - recorded) for seq, recorded in zip(values[0::2], values[1::2])]

    async def wait_drained(self, timeout_s: float) -> float | None:
        """Wait until every stream is empty; the seconds it took, None on timeout."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            lengths = await self.backlogs()
            if lengths is not None and sum(lengths) == 0:
                return time.monotonic() - started
            await asyncio.sleep(0.5)
        return None

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until GET /readyz answers 200 (every backing service and writer is fine)."""
        url = f"{self.settings.public_base_url}/readyz"
        deadline, last = time.monotonic() + timeout_s, "no answer"
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                try:
                    answer = await http.get(url)
                    if answer.status_code == 200:
                        return
                    last = f"{answer.status_code} {answer.text[:500]}"
                except httpx.HTTPError as e:
                    last = type(e).__name__
                await asyncio.sleep(0.5)
        raise RuntimeError(f"posray was not ready within {timeout_s} s ({url}: {last})")

    async def check(self, first_doc: int, acks, unresolved: set[int]):
        """tooling.bench.ledger.check_exactly_once over this scenario's documents."""
        from posray.adapters.pg import create_pool

        pool = await create_pool(self.settings.pg_dsn, size_max=1)
        try:
            return await check_exactly_once(pool, self.series, first_doc, acks, unresolved)
        finally:
            await pool.close()

    def spare_documents(self, count: int) -> list[dict]:
        """`count` signed documents no scenario sends (taken from the series, never reused)."""
        import orjson

        builder = workload.RequestBuilder(self.series, "", self.cursor, 1).open()
        offsets, docs = builder._offsets, builder._docs
        out = [orjson.loads(docs[offsets[j]: offsets[j + 1] - 1]) for j in range(self.cursor, self.cursor + count)]
        self.cursor += count
        return out

    async def outcome(self, acks):
        """tooling.faults_outcome.classify over this scenario's acknowledgements."""
        from posray.adapters.keyfile import load_keys
        from tooling.faults_outcome import classify

        builder = workload.RequestBuilder(self.series, "", 0, 1).open()
        return await classify(await self._pg(), builder, load_keys(self.settings.seed_file).code,
                              self.settings.public_base_url, acks)

    async def release_conflicts(self) -> int:
        """`posray capture release SHARD` for every shard with unreleased conflicts; how many were released."""
        from posray.adapters.pg_fences import PgFences
        from posray.services.capture_admin import release

        fences = PgFences(await self._pg())
        blocking = {c.shard for c in await fences.conflicts() if not c.released}
        return sum([len(await release(fences, shard, "posray faults (operator)")) for shard in sorted(blocking)])

    async def reconcile(self) -> dict:
        """`posray audit --reconcile` now: what it lists, and the mismatches no conflict explains."""
        from posray.adapters.pg_fences import PgFences
        from posray.adapters.pg_ledger import PgLedger
        from posray.adapters.redis_capture import connect
        from posray.adapters.redis_idempotency import RedisIdempotencyKeys
        from posray.services.reconcile import reconcile

        s = self.settings
        client = connect(s.redis_url, s.sentinels, s.redis_master)
        try:
            pool = await self._pg()
            found = await reconcile(RedisIdempotencyKeys(client, self.settings.key_prefix), PgLedger(pool),
                                    PgFences(pool))
        finally:
            await client.aclose()
        return {"ok": found.ok, "keys_checked": found.keys_checked, "mismatches": found.mismatches_total,
                "unexplained": sum(1 for m in found.mismatches if m.conflict is None),
                "losses": len(found.losses), "conflicts": len(found.conflicts)}

    async def fence_summary(self) -> dict:
        """Fences set, losses recorded (sequences, exact or bound) and conflicts, over the whole run so far."""
        from posray.adapters.pg_fences import PgFences

        fences = PgFences(await self._pg())
        losses, conflicts = await fences.losses(), await fences.conflicts()
        async with (await self._pg()).acquire() as conn:
            fenced = await conn.fetchval("SELECT count(*) FROM capture_fences")
        return {"fences": fenced, "losses": len(losses),
                "lost_sequences": sum(x.lost_to - x.lost_from + 1 for x in losses),
                "conflicts": len(conflicts)}

    async def _pg(self):
        from posray.adapters.pg import create_pool

        if self._pool is None:
            self._pool = await create_pool(self.settings.pg_dsn, size_max=2)
        return self._pool

    async def aclose(self) -> None:
        """Close the stack's Redis client and pool (call before leaving the event loop)."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _create_database(url: str) -> str:
    from posray.adapters.pg import apply_schema, ensure_database

    dsn = await ensure_database(url, "posray")
    await apply_schema(dsn)
    return dsn
