"""The contract suites' fixture: every port, opened on each implementation in turn.

`stores` is parametrized: "memory" (posray.adapters.memory_*, no servers) and "real" (Redis and
PostgreSQL through the integration fixtures: a per-test key prefix, the run's schema database).
Only the real half asks for those fixtures, so `pytest tests/contract -k memory` needs no server.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import pytest

from posray.adapters.memory_capture import MemoryCaptureLog, MemoryCaptureStore, MemoryShardStream
from posray.adapters.memory_ledger import MemoryFences, MemoryLedger, MemoryLedgerState
from posray.services.ports import CaptureLog, FenceLedger, Ledger, ShardStream

IDEMPOTENCY_TTL_S = 3600
BACKLOG_MAX = 1_000_000


@dataclass
class Stores:
    """The four ports of one implementation, bound to one event loop."""

    capture: CaptureLog
    stream: ShardStream
    ledger: Ledger
    fences: FenceLedger


@contextlib.asynccontextmanager
async def memory_stores(backlog_max: int = BACKLOG_MAX, ttl_s: int = IDEMPOTENCY_TTL_S):
    store, db = MemoryCaptureStore(), MemoryLedgerState()
    yield Stores(MemoryCaptureLog(store, ttl_s, backlog_max), MemoryShardStream(store),
                 MemoryLedger(db), MemoryFences(db))


@contextlib.asynccontextmanager
async def real_stores(redis_url: str, dsn: str, prefix: str, backlog_max: int = BACKLOG_MAX,
                      ttl_s: int = IDEMPOTENCY_TTL_S):
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_fences import PgFences
    from posray.adapters.pg_ledger import PgLedger
    from posray.adapters.redis_capture import RedisCapture
    from posray.adapters.redis_client import connect
    from posray.adapters.redis_stream import RedisShardStream

    client = connect(redis_url)
    pool = await create_pool(dsn)
    try:
        yield Stores(RedisCapture(client, prefix, ttl_s, backlog_max), RedisShardStream(client, prefix),
                     PgLedger(pool), PgFences(pool))
    finally:
        await pool.close()
        await client.aclose()


@pytest.fixture(params=["memory", "real"])
def stores(request):
    """Opens the ports of one implementation: `async with stores(backlog_max=...) as s`."""
    if request.param == "memory":
        return memory_stores
    return functools.partial(real_stores, request.getfixturevalue("redis_url"),
                             request.getfixturevalue("schema_dsn"), request.getfixturevalue("key_prefix"))
