"""Use case `check_readiness`, and the figures operators watch: readiness and checkpoint age.

Ray-free: the replica passes in the probes (Redis PING, PostgreSQL SELECT 1, stream backlogs,
the LedgerWriters' errors) as async callables; `decide` turns what they saw into an answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

PROBE_TIMEOUT_S = 1.0
CACHE_S = 1.0


@dataclass(frozen=True, slots=True)
class Observed:
    """What the probes saw: None for a probe that failed, with its error in `failures`."""

    redis_ok: bool
    postgres_ok: bool
    backlogs: dict[int, int] | None
    writer_errors: dict[int, str] | None
    failures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The answer of GET /readyz: ready, or what is not ready and why."""

    ready: bool
    not_ready: dict[str, str]

    def to_json(self) -> dict:
        if self.ready:
            return {"status": "ready"}
        return {"status": "not_ready", "not_ready": self.not_ready}


def decide(seen: Observed, backlog_max: int) -> Readiness:
    """Ready only if Redis and PostgreSQL answered, every backlog is below `backlog_max` and
    no LedgerWriter reports an error."""
    not_ready: dict[str, str] = {}
    if not seen.redis_ok:
        not_ready["redis"] = seen.failures.get("redis", "did not answer PING")
    if not seen.postgres_ok:
        not_ready["postgres"] = seen.failures.get("postgres", "did not answer SELECT 1")
    if seen.backlogs is None:
        not_ready.setdefault("backlog", seen.failures.get("backlog", "stream backlogs unknown"))
    else:
        for shard, backlog in sorted(seen.backlogs.items()):
            if backlog >= backlog_max:
                not_ready[f"shard {shard} backlog"] = f"{backlog} unrecorded documents (max {backlog_max})"
    if seen.writer_errors is None:
        not_ready["ledger"] = seen.failures.get("ledger", "ledger writers did not answer")
    else:
        for shard, error in sorted(seen.writer_errors.items()):
            if error:
                not_ready[f"shard {shard} ledger"] = error
    return Readiness(not not_ready, not_ready)


def checkpoint_age_s(recorded_size: int, signed_size: int, signed_ms: int | None, now_ms: int) -> float:
    """Seconds since the last signed checkpoint while the log has unsigned leaves; 0 when signed.

    Args:
        signed_ms: when the latest checkpoint was signed (or, if none ever was, since when
            unsigned leaves have been waiting); None when unknown.
    """
    if recorded_size <= signed_size or signed_ms is None:
        return 0.0
    return max(0.0, (now_ms - signed_ms) / 1000)


Probe = Callable[[], Awaitable]


class ReadinessCheck:
    """Runs the probes at most once per `cache_s` (concurrent callers share one run)."""

    def __init__(self, ping_redis: Probe, ping_postgres: Probe, backlogs: Probe, writer_errors: Probe,
                 backlog_max: int, timeout_s: float = PROBE_TIMEOUT_S, cache_s: float = CACHE_S):
        self._probes = {"redis": ping_redis, "postgres": ping_postgres,
                        "backlog": backlogs, "ledger": writer_errors}
        self._backlog_max = backlog_max
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._last: tuple[float, Readiness] | None = None
        self._running: asyncio.Task | None = None

    async def __call__(self) -> Readiness:
        if self._last and time.monotonic() - self._last[0] < self._cache_s:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(self._check())
        return await asyncio.shield(self._running)

    async def _check(self) -> Readiness:
        names = list(self._probes)
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(self._probes[n](), self._timeout_s) for n in names), return_exceptions=True
        )
        values = dict(zip(names, outcomes))
        failures = {n: _describe(v, self._timeout_s) for n, v in values.items()
                    if isinstance(v, BaseException)}
        seen = Observed(
            redis_ok="redis" not in failures,
            postgres_ok="postgres" not in failures,
            backlogs=None if "backlog" in failures else values["backlog"],
            writer_errors=None if "ledger" in failures else values["ledger"],
            failures=failures,
        )
        readiness = decide(seen, self._backlog_max)
        self._last = (time.monotonic(), readiness)
        return readiness


def _describe(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return f"did not answer within {timeout_s:g} s"
    return str(error) or type(error).__name__
