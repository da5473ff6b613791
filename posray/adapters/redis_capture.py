"""Capture adapter: appends batches of documents to a shard's Redis stream atomically.

The only module (with redis_stream.py) that talks to Redis. Driver errors become Unavailable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from posray.adapters.redis_keys import idem_key, recorded_key, seq_key, stream_key
from posray.domain.errors import Overloaded, Unavailable
from posray.domain.transaction import Submission

log = logging.getLogger(__name__)

NEW, SAME, CONFLICT = 0, 1, 2
HASH_BYTES = 32  # an idempotency value starts with the document's raw SHA-256
_SCRIPT = resources.files("posray.adapters").joinpath("capture.lua").read_text()
# KEYS: seq counter, stream, recorded height; ARGV[1]: the ledger's height. The counter must
# also pass the last stream entry (id "first-0" holding n documents), or XADD would fail.
_FLOOR_SCRIPT = """
local floor = tonumber(ARGV[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if last then
  local s, n
  for i = 1, #last[2], 2 do
    if last[2][i] == 's' then s = tonumber(last[2][i + 1]) end
    if last[2][i] == 'n' then n = tonumber(last[2][i + 1]) end
  end
  if s and n and s + n - 1 > floor then floor = s + n - 1 end
end
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < floor then redis.call('SET', KEYS[1], string.format('%d', floor)) v = floor end
local r = tonumber(redis.call('GET', KEYS[3]) or '0')
if r < tonumber(ARGV[1]) then redis.call('SET', KEYS[3], ARGV[1]) end
return v
"""


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of one document in a capture call."""

    status: int
    seq: int
    accepted_at_ms: int


def connect(url: str, **kwargs) -> aioredis.Redis:
    """An asyncio Redis client for `url` with bounded timeouts."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=kwargs.pop("socket_timeout", 10),
        socket_connect_timeout=kwargs.pop("socket_connect_timeout", 5),
        health_check_interval=kwargs.pop("health_check_interval", 30),
        **kwargs,
    )


class RedisCapture:
    """Atomic per-batch capture into one stream per shard."""

    def __init__(self, client: aioredis.Redis, prefix: str, idempotency_ttl_s: int, backlog_max: int):
        self._client = client
        self._prefix = prefix
        self._ttl_s = idempotency_ttl_s
        self._backlog_max = backlog_max
        self._sha: str | None = None

    async def append(
        self, shard: int, accepted_at_ms: int, submissions: list[Submission]
    ) -> list[Appended]:
        """Append new documents as one stream entry; report same-document retries and conflicts.

        Raises:
            Overloaded: the shard's backlog would exceed its maximum.
            Unavailable: Redis cannot be reached or refused the write.
        """
        prefix = self._prefix
        tag = f"{prefix}:{{{shard}}}:idem:"
        keys = [seq_key(prefix, shard), stream_key(prefix, shard), recorded_key(prefix, shard)]
        args: list = [accepted_at_ms, self._ttl_s, self._backlog_max]
        for s in submissions:
            keys.append(f"{tag}{s.terminal_id}:{s.counter}")
            args.append(s.document_hash)
            args.append(s.canonical)
        reply = await self._run(keys, args)
        if reply and int(reply[0]) == -1:
            raise Overloaded(f"shard {shard} backlog is full ({int(reply[1])} documents)", 2)
        return [
            Appended(int(reply[i]), int(reply[i + 1]), int(reply[i + 2]))
            for i in range(0, len(reply), 3)
        ]

    async def _run(self, keys: list, args: list) -> list:
        try:
            if self._sha is None:
                self._sha = await self._client.script_load(_SCRIPT)
            try:
                return await self._client.evalsha(self._sha, len(keys), *keys, *args)
            except NoScriptError:
                self._sha = await self._client.script_load(_SCRIPT)
                return await self._client.evalsha(self._sha, len(keys), *keys, *args)
        except ResponseError as e:
            raise Unavailable(f"Redis refused the capture: {e}") from e
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def raise_seq_floor(self, shard: int, floor: int) -> int:
        """Make the shard counter at least `floor` (the ledger's height) and return it.

        Guards against a Redis that lost its data: new sequences must never reuse recorded ones,
        nor stream ids already taken. Also raises the recorded height Redis knows to `floor`, so
        that the backlog bound counts only what the ledger has not recorded.
        """
        try:
            return int(await self._client.eval(
                _FLOOR_SCRIPT, 3, seq_key(self._prefix, shard), stream_key(self._prefix, shard),
                recorded_key(self._prefix, shard), floor))
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def pending(self, shard: int, seq: int) -> tuple[int, bytes] | None:
        """The (accepted_at_ms, canonical document) of a captured, not yet recorded sequence."""
        try:
            rows = await self._client.xrevrange(stream_key(self._prefix, shard), f"{seq}-0", "-", count=1)
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        if not rows:
            return None
        fields = rows[0][1]
        first, count = int(fields[b"s"]), int(fields[b"n"])
        if not first <= seq < first + count:
            return None
        return int(fields[b"t"]), fields[b"d"].split(b"\n")[seq - first]

    async def seq_of(self, shard: int, terminal_id: str, counter: int) -> int | None:
        """The sequence captured for (terminal_id, counter) within the idempotency window."""
        try:
            value = await self._client.get(idem_key(self._prefix, shard, terminal_id, counter))
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        return None if value is None else int(value[HASH_BYTES:].split(b":", 1)[0])

    async def durability(self) -> str:
        """"always" when every acknowledged write is fsynced, else a description of why not."""
        try:
            config = await self._client.config_get("append*")
        except ResponseError:
            return "unknown (CONFIG is disabled on this server)"
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        if config.get("appendonly") != "yes":
            return "appendonly is off"
        return config.get("appendfsync", "unknown")
