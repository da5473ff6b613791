"""Readiness (pure decision, cached probes, GET /readyz), checkpoint age and active terminals."""

from __future__ import annotations

import asyncio

import orjson

from deployments.http_api import PosrayApi
from posray.domain.errors import Unavailable
from posray.services.activity import ActiveTerminals
from posray.services.health import Observed, Readiness, ReadinessCheck, checkpoint_age_s, decide
from posray.settings import Settings


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=5))


def observed(**changes) -> Observed:
    values = dict(redis_ok=True, postgres_ok=True, backlogs={0: 3, 1: 0}, writer_errors={0: None, 1: None})
    values.update(changes)
    return Observed(**values)


class TestDecidingReadiness:
    def test_everything_answering_within_bounds_is_ready(self):
        assert decide(observed(), backlog_max=100) == Readiness(True, {})

    def test_redis_not_answering_is_named(self):
        readiness = decide(observed(redis_ok=False, failures={"redis": "Redis is unreachable"}), 100)
        assert not readiness.ready
        assert readiness.not_ready == {"redis": "Redis is unreachable"}

    def test_postgres_not_answering_is_named(self):
        readiness = decide(observed(postgres_ok=False), 100)
        assert readiness.not_ready == {"postgres": "did not answer SELECT 1"}

    def test_a_backlog_at_the_limit_names_its_shard(self):
        readiness = decide(observed(backlogs={0: 99, 1: 100}), 100)
        assert readiness.not_ready == {"shard 1 backlog": "100 unrecorded documents (max 100)"}

    def test_unknown_backlogs_are_not_ready(self):
        readiness = decide(observed(backlogs=None, failures={"backlog": "did not answer within 1 s"}), 100)
        assert readiness.not_ready == {"backlog": "did not answer within 1 s"}

    def test_a_ledger_writer_error_names_its_shard(self):
        readiness = decide(observed(writer_errors={0: None, 1: "Unavailable: PostgreSQL is unreachable"}), 100)
        assert readiness.not_ready == {"shard 1 ledger": "Unavailable: PostgreSQL is unreachable"}

    def test_silent_ledger_writers_are_not_ready(self):
        assert "ledger" in decide(observed(writer_errors=None), 100).not_ready

    def test_every_failure_is_listed_at_once(self):
        readiness = decide(observed(redis_ok=False, postgres_ok=False, backlogs=None, writer_errors=None), 100)
        assert set(readiness.not_ready) == {"redis", "postgres", "backlog", "ledger"}

    def test_the_json_answer_names_what_is_not_ready(self):
        assert Readiness(True, {}).to_json() == {"status": "ready"}
        assert Readiness(False, {"redis": "x"}).to_json() == {"status": "not_ready", "not_ready": {"redis": "x"}}


class Probes:
    """Async probes that count their calls; `hang` makes the PostgreSQL probe never answer."""

    def __init__(self, hang: bool = False, redis_error: Exception | None = None):
        self.calls = 0
        self.hang = hang
        self.redis_error = redis_error

    async def redis(self):
        self.calls += 1
        if self.redis_error:
            raise self.redis_error

    async def postgres(self):
        if self.hang:
            await asyncio.sleep(60)

    async def backlogs(self):
        return {0: 1, 1: 2}

    async def writers(self):
        return {0: None, 1: None}

    def check(self, **kwargs) -> ReadinessCheck:
        return ReadinessCheck(self.redis, self.postgres, self.backlogs, self.writers, 100, **kwargs)


class TestCheckingReadiness:
    def test_all_probes_answering_is_ready(self):
        assert run(Probes().check()()).ready

    def test_a_failing_probe_is_reported_with_its_error(self):
        readiness = run(Probes(redis_error=Unavailable("Redis is unreachable: ConnectionError")).check()())
        assert readiness.not_ready == {"redis": "Redis is unreachable: ConnectionError"}

    def test_a_hanging_probe_times_out_and_is_named(self):
        readiness = run(Probes(hang=True).check(timeout_s=0.05)())
        assert readiness.not_ready == {"postgres": "did not answer within 0.05 s"}

    def test_answers_are_cached_and_concurrent_callers_share_one_run(self):
        probes = Probes()
        check = probes.check(cache_s=60)

        async def go():
            await asyncio.gather(*(check() for _ in range(10)))
            await check()

        run(go())
        assert probes.calls == 1

    def test_the_cache_expires(self):
        probes = Probes()
        check = probes.check(cache_s=0)

        async def go():
            await check()
            await check()

        run(go())
        assert probes.calls == 2


class FakeBackend:
    def __init__(self, readiness=None):
        self.settings = Settings()
        self.readiness = readiness
        self.observed: list[tuple] = []
        self.observer = self

    def request_done(self, *args):
        self.observed.append(args)


def call(api: PosrayApi, method: str, path: str, body: bytes = b"") -> tuple[int, dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    run(api(scope, receive, send))
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def api_of(backend) -> PosrayApi:
    async def get():
        if isinstance(backend, Exception):
            raise backend
        return backend
    return PosrayApi(get)


class TestReadyEndpoint:
    def test_ready_answers_200(self):
        async def ready():
            return Readiness(True, {})
        assert call(api_of(FakeBackend(ready)), "GET", "/readyz") == (200, {"status": "ready"})

    def test_not_ready_answers_503_naming_what_is_not_ready(self):
        async def not_ready():
            return Readiness(False, {"shard 2 backlog": "100 unrecorded documents (max 100)"})
        status, body = call(api_of(FakeBackend(not_ready)), "GET", "/readyz")
        assert status == 503
        assert body["not_ready"] == {"shard 2 backlog": "100 unrecorded documents (max 100)"}

    def test_a_replica_that_cannot_connect_is_not_ready(self):
        status, body = call(api_of(Unavailable("PostgreSQL is unreachable: OSError")), "GET", "/readyz")
        assert (status, body["not_ready"]) == (503, {"replica": "PostgreSQL is unreachable: OSError"})


class TestObservingRequests:
    def test_a_request_refused_as_a_whole_is_observed_once_with_its_reason(self):
        backend = FakeBackend()
        status, _ = call(api_of(backend), "POST", "/v1/transactions", b"{not json")
        assert status == 400
        ((endpoint, elapsed_ms, accepted, rejected, terminal_ids),) = backend.observed
        assert (endpoint, accepted, rejected, terminal_ids) == ("single", 0, {"invalid": 1}, [])
        assert elapsed_ms >= 0

    def test_an_empty_batch_is_observed_on_the_batch_endpoint(self):
        backend = FakeBackend()
        call(api_of(backend), "POST", "/v1/transactions/batch", b'{"documents": []}')
        assert [(o[0], o[3]) for o in backend.observed] == [("batch", {"invalid": 1})]


class TestCheckpointAge:
    def test_a_fully_signed_log_has_age_zero(self):
        assert checkpoint_age_s(10, 10, 1_000, 60_000) == 0.0

    def test_unsigned_leaves_age_from_the_last_checkpoint(self):
        assert checkpoint_age_s(12, 10, 1_000, 4_500) == 3.5

    def test_unknown_signing_time_reads_zero(self):
        assert checkpoint_age_s(12, 0, None, 4_500) == 0.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TestActiveTerminals:
    def test_distinct_terminals_are_counted_once(self):
        active = ActiveTerminals(clock=Clock())
        active.see(["T-1", "T-2", "T-1"])
        active.see(["T-2"])
        assert active.count() == 2

    def test_terminals_not_seen_within_the_window_are_forgotten(self):
        clock = Clock()
        active = ActiveTerminals(window_s=300, clock=clock)
        active.see(["T-1", "T-2"])
        clock.now += 200
        active.see(["T-2"])
        clock.now += 150
        assert active.count() == 1

    def test_memory_is_bounded_and_the_count_saturates_at_the_cap(self):
        clock = Clock()
        active = ActiveTerminals(window_s=300, ids_max=100, clock=clock)
        active.see(f"T-{n}" for n in range(250))
        active.see(["T-999"])
        assert active.count() == 100
        clock.now += 301
        active.see(["T-new"])
        assert active.count() == 1
