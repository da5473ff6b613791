"""Helpers of the integration tests: real Redis and PostgreSQL clients, one logical shard per test.

The PostgreSQL database is shared by the whole run while Redis keys are per test, so every test
records into shards no other test uses; otherwise a ledger head left by one test would make the
next test's sequences look already recorded.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from posray.adapters.pg import create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_capture import RedisCapture, connect
from posray.adapters.redis_keys import LEDGER_GROUP, seq_key, stream_key
from posray.adapters.redis_stream import RedisShardStream
from posray.domain.codes import CodeKey
from posray.domain.transaction import shard_of
from posray.domain.transaction import Submission
from posray.domain.keys import terminal_key
from posray.domain.note import Checkpoint, NoteSigner, sign_checkpoint
from posray.services import recording
from posray.services.fencing import ShardFences
from posray.services.recording import ShardRecorder
from tests.documents import make_document, submission_of

# With this many logical shards every test can own shards of its own (codes allow 2**16).
SHARD_COUNT = 1 << 16
IDEMPOTENCY_TTL_S = 3600
_used_shards: set[int] = set()
_next_shard = itertools.count(1)


def fresh_shard() -> int:
    """A shard number no other test of this run records into."""
    while True:
        shard = next(_next_shard)
        if shard not in _used_shards:
            _used_shards.add(shard)
            return shard


def fresh_terminal(stem: str = "T") -> tuple[str, int]:
    """A terminal id unique to this run whose shard (of SHARD_COUNT) no other test uses."""
    while True:
        terminal_id = f"{stem}-{secrets.token_hex(6)}"
        shard = shard_of(terminal_id, SHARD_COUNT)
        if shard not in _used_shards:
            _used_shards.add(shard)
            return terminal_id, shard


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Backends:
    """Real clients for one test, bound to the test's event loop."""

    redis: aioredis.Redis
    pool: asyncpg.Pool
    prefix: str
    capture: RedisCapture
    stream: RedisShardStream
    ledger: PgLedger
    terminals: PgTerminals
    fence_ledger: PgFences
    fences: ShardFences

    def recorder(self, shard: int, code_key: CodeKey, batch_max: int = 1000, stream=None) -> ShardRecorder:
        return ShardRecorder(shard, stream or self.stream, self.ledger, code_key, batch_max, wait_ms=5,
                             fences=self.fence_ledger)

    async def append(self, shard: int, accepted_at_ms: int, subs: list[Submission]):
        """Capture straight through the adapter, under this test's fence of the shard."""
        return await self.capture.append(shard, accepted_at_ms, subs, await self.fences.ensure(shard))

    async def xlen(self, shard: int) -> int:
        """Documents held in the shard's stream (an entry holds one capture call's documents)."""
        entries = await self.redis.xrange(stream_key(self.prefix, shard))
        return sum(int(fields[b"n"]) for _, fields in entries)

    async def xpending(self, shard: int) -> int:
        return (await self.redis.xpending(stream_key(self.prefix, shard), LEDGER_GROUP))["pending"]

    async def seq_counter(self, shard: int) -> int:
        return int(await self.redis.get(seq_key(self.prefix, shard)) or 0)

    async def record_all(self, shard: int, code_key: CodeKey, batch_max: int = 1000, steps_max: int = 1000) -> int:
        """Run a fresh recorder until the shard's stream is empty; return documents recorded."""
        recorder = self.recorder(shard, code_key, batch_max)
        recorded = 0
        for _ in range(steps_max):
            recorded += await recorder.step()
            if await self.stream.backlog(shard) == 0:
                return recorded
        raise AssertionError(f"shard {shard} still has a backlog after {steps_max} steps")

    async def ledger_rows(self, shard: int) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT * FROM ledger_entries WHERE shard = $1 ORDER BY seq", shard)

    async def batch_rows(self, shard: int) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT * FROM ledger_batches WHERE shard = $1 ORDER BY batch_no", shard
        )


@contextlib.asynccontextmanager
async def backends(redis_url: str, dsn: str, prefix: str, backlog_max: int = 1_000_000,
                   reservation: int = 1000, replicas_min: int = 0, replicas_timeout_ms: int = 1000,
                   sentinels: tuple = (), master: str | None = None, store_id: str | None = None):
    """Real clients; with `sentinels`, through the primary they name (store_id: its fence identity)."""
    client = connect(redis_url, sentinels, master)
    pool = await create_pool(dsn)
    capture = RedisCapture(client, prefix, IDEMPOTENCY_TTL_S, backlog_max, replicas_min, replicas_timeout_ms)
    try:
        yield Backends(
            redis=client,
            pool=pool,
            prefix=prefix,
            capture=capture,
            stream=RedisShardStream(client, prefix),
            ledger=PgLedger(pool),
            terminals=PgTerminals(pool),
            fence_ledger=PgFences(pool),
            fences=ShardFences(capture, PgFences(pool), store_id or f"{redis_url}#{prefix}", reservation,
                               keys_ttl_s=IDEMPOTENCY_TTL_S),
        )
    finally:
        await pool.close()
        await client.aclose()


DAY_MS = 86_400_000


class _Clock:
    """The recorder's clock moved by whole days (its monotonic clock is left alone)."""

    def __init__(self, days: int):
        self.offset_s = days * DAY_MS / 1000

    def time(self) -> float:
        return time.time() + self.offset_s

    def monotonic(self) -> float:
        return time.monotonic()


async def record_days(b, keys, settings, terminal_id, shard, days: list[int], per_day: int, monkeypatch) -> None:
    """Capture and record `per_day` documents on each of `days` (offsets from today), signed."""
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    signer = NoteSigner(settings.log_key_name, keys.signing_seed)
    origin = settings.log_origin(shard)
    counter = 0
    for offset in days:
        monkeypatch.setattr(recording, "time", _Clock(offset))
        subs = [submission_of(make_document(terminal_id, counter + c, key), SHARD_COUNT) for c in range(1, per_day + 1)]
        counter += per_day
        await b.append(shard, now_ms() + offset * DAY_MS, subs)
        recorder = ShardRecorder(
            shard, b.stream, b.ledger, keys.code, 7, wait_ms=5, checkpoint_interval_s=0,
            sign=lambda size, root, ext, o=origin: sign_checkpoint(signer, Checkpoint(o, size, root, ext)))
        while await b.stream.backlog(shard):
            await recorder.step()
    monkeypatch.setattr(recording, "time", time)
