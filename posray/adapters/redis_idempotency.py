"""The capture store's idempotency keys, read page by page for `posray audit --reconcile`.

Each key "(prefix):{shard}:idem:(terminal_id):(counter)" holds the 32-byte SHA-256 of the
document captured under that terminal counter, then "seq:accepted_at_ms" (capture.lua). SCAN
walks them in bounded pages (COUNT) and the values of a page are read in one pipelined round
trip, so a reconciliation never blocks Redis for longer than one page.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from posray.adapters.redis_capture import HASH_BYTES
from posray.domain.errors import Unavailable

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class CapturedKey:
    """One idempotency key: which document the store captured at (shard, seq).

    `document_hash` is None when the value cannot be read as capture.lua writes it (then seq
    and accepted_at_ms are 0): something other than posray wrote the key.
    """

    shard: int
    terminal_id: str
    counter: int
    document_hash: bytes | None
    seq: int
    accepted_at_ms: int


class RedisIdempotencyKeys:
    """Pages of a capture store's idempotency keys (every shard, any order, each key once or more)."""

    def __init__(self, client: aioredis.Redis, prefix: str):
        self._client = client
        self._prefix = prefix

    async def pages(self, count: int) -> AsyncIterator[list[CapturedKey]]:
        """Yield the keys SCAN returns, `count` at a time (Redis may return a few more or fewer).

        SCAN guarantees every key that exists for the whole walk is returned at least once;
        keys expiring or written meanwhile may or may not be.

        Raises:
            Unavailable: Redis is unreachable.
        """
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self._prefix) + ":{*}:idem:*"
        cursor = 0
        while True:
            try:
                cursor, names = await self._client.scan(cursor, match=pattern, count=count)
                values = await self._values(names)
            except (RedisError, OSError) as e:
                raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
            page = [k for k in (self._parse(n, v) for n, v in zip(names, values)) if k is not None]
            if page:
                yield page
            if int(cursor) == 0:
                return

    async def _values(self, names: list[bytes]) -> list[bytes | None]:
        if not names:
            return []
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.get(name)
            return await pipe.execute()

    def _parse(self, name: bytes, value: bytes | None) -> CapturedKey | None:
        """The key's fields; None for a key that expired since SCAN or is not an idempotency key."""
        if value is None:
            return None
        text = name.decode(errors="replace")[len(self._prefix) + 2:]  # after "(prefix):{"
        shard_text, sep, rest = text.partition("}:idem:")
        terminal_id, _, counter_text = rest.rpartition(":")
        if not sep or not shard_text.isdigit() or not counter_text.isdigit():
            return None
        digest, seq, accepted_at_ms = _value(value)
        return CapturedKey(int(shard_text), terminal_id, int(counter_text), digest, seq, accepted_at_ms)


def _value(value: bytes) -> tuple[bytes | None, int, int]:
    """(hash, seq, accepted_at_ms) of an idempotency value, (None, 0, 0) when malformed."""
    seq_text, sep, acc_text = value[HASH_BYTES:].partition(b":")
    if len(value) <= HASH_BYTES or not sep or not seq_text.isdigit() or not acc_text.isdigit():
        return None, 0, 0
    return value[:HASH_BYTES], int(seq_text), int(acc_text)
