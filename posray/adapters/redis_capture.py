"""Capture adapter: appends batches of documents to a shard's Redis stream atomically.

The only module (with redis_stream.py) that talks to Redis. Driver errors become Unavailable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn
from importlib import resources

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from posray.adapters.redis_client import connect  # noqa: F401  (callers import it from here)
from posray.adapters.redis_keys import fence_key, idem_key, recorded_key, seq_key, stream_key
from posray.domain.errors import NotFenced, Overloaded, StoreRestarted, Unavailable
from posray.domain.fence import Fence, StoreState
from posray.domain.transaction import Submission

log = logging.getLogger(__name__)

NEW, SAME, CONFLICT = 0, 1, 2
BACKLOG_FULL, UNFENCED, RESERVATION_USED = -1, -2, -3
HASH_BYTES = 32  # an idempotency value starts with the document's raw SHA-256
_SCRIPT = resources.files("posray.adapters").joinpath("capture.lua").read_text()
# KEYS: seq counter, stream, fence. Returns {counter, last stream seq, fence value or false}.
_STATE_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local top = 0
if last then
  local s, n
  for i = 1, #last[2], 2 do
    if last[2][i] == 's' then s = tonumber(last[2][i + 1]) end
    if last[2][i] == 'n' then n = tonumber(last[2][i + 1]) end
  end
  if s and n then top = s + n - 1 end
end
return {tonumber(redis.call('GET', KEYS[1]) or '0'), top, redis.call('GET', KEYS[3])}
"""
# KEYS: seq counter, fence, recorded height. ARGV: the counter seen when the fence was planned,
# the floor, "epoch:reserved", the ledger's height. Refuses (0) if the counter moved meanwhile.
_INSTALL_SCRIPT = """
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
if counter ~= tonumber(ARGV[1]) then return 0 end
if counter < tonumber(ARGV[2]) then redis.call('SET', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[3])
local r = tonumber(redis.call('GET', KEYS[3]) or '0')
if r < tonumber(ARGV[4]) then redis.call('SET', KEYS[3], ARGV[4]) end
return 1
"""
# KEYS: fence. ARGV: epoch, new reserved sequence. Only raises the reservation of the same epoch.
_EXTEND_SCRIPT = """
local fence = redis.call('GET', KEYS[1])
if not fence then return 0 end
local epoch, reserved = string.match(fence, '^(%d+):(%d+)$')
if epoch ~= ARGV[1] then return 0 end
if tonumber(reserved) < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of one document in a capture call."""

    status: int
    seq: int
    accepted_at_ms: int


class RedisCapture:
    """Atomic per-batch capture into one stream per shard.

    With `replicas_min` > 0 each capture call is followed, on the same connection and in the
    same round trip, by `WAIT` and `WAITAOF 1 replicas_min` (together bounded by
    `replicas_timeout_ms`): the call acknowledges only when the primary's AOF and that many
    replicas' AOFs hold its writes.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, idempotency_ttl_s: int, backlog_max: int,
                 replicas_min: int = 0, replicas_timeout_ms: int = 1000):
        self._client = client
        self._prefix = prefix
        self._ttl_s = idempotency_ttl_s
        self._backlog_max = backlog_max
        self._replicas_min = replicas_min
        self._replicas_timeout_ms = replicas_timeout_ms
        self._sha: str | None = None

    async def append(
        self, shard: int, accepted_at_ms: int, submissions: list[Submission], fence: Fence
    ) -> list[Appended] | int:
        """Append new documents as one stream entry; report same-document retries and conflicts.

        Returns:
            One Appended per submission, or the shard's reserved sequence when the new
            documents would pass it (nothing written: extend the reservation, call again).

        Raises:
            Overloaded: the shard's backlog would exceed its maximum.
            NotFenced: the store does not carry `fence` (flushed, restored, restarted, failed
                over, or fenced by another writer); nothing was written. StoreRestarted when
                its scripts are gone: it restarted or failed over, every shard is suspect.
            Unavailable: Redis cannot be reached or refused the write; or, with replicas_min,
                fewer replicas than that confirmed the write within the timeout (the documents
                are captured: a resend returns the same sequences once they are replicated).
        """
        prefix = self._prefix
        tag = f"{prefix}:{{{shard}}}:idem:"
        keys = [seq_key(prefix, shard), stream_key(prefix, shard), recorded_key(prefix, shard),
                fence_key(prefix, shard)]
        # ARGV[5]: with replication, a call that writes nothing new (resends only) still writes
        # once, so that WAITAOF waits for a replication offset past the documents it resends.
        args: list = [accepted_at_ms, self._ttl_s, self._backlog_max, fence.epoch,
                      1 if self._replicas_min else 0]
        for s in submissions:
            keys.append(f"{tag}{s.terminal_id}:{s.counter}")
            args.append(s.document_hash)
            args.append(s.canonical)
        reply, replicated = await self._run(keys, args)
        status = int(reply[0]) if reply else 0
        if status == BACKLOG_FULL:
            raise Overloaded(f"shard {shard} backlog is full ({int(reply[1])} documents)", 2)
        if status == UNFENCED:
            raise NotFenced(f"shard {shard}: the capture store is not fenced with epoch "
                            f"{fence.epoch} ({_text(reply[1])})", 1)
        if status == RESERVATION_USED:
            return int(reply[1])
        if replicated is not None:
            self._check_replicated(shard, replicated)
        return [
            Appended(int(reply[i]), int(reply[i + 1]), int(reply[i + 2]))
            for i in range(0, len(reply), 3)
        ]

    async def _run(self, keys: list, args: list) -> tuple[list, list | None]:
        """The script's reply, and WAITAOF's [local, replicas] (None without replication)."""
        try:
            if self._sha is None:
                self._sha = await self._client.script_load(_SCRIPT)
            if not self._replicas_min:
                return await self._client.evalsha(self._sha, len(keys), *keys, *args), None
            # One round trip: WAIT and WAITAOF run right after the script on the same
            # connection, so they wait for the offset of the script's writes (a pipeline
            # without MULTI). WAIT first: a replica answers the primary's first GETACK as soon
            # as it applied the write, before its own fsync, and then reports its fsynced
            # offset only once a second; WAITAOF blocking after WAIT makes the primary ask
            # again, by when the replica has fsynced (measured: ~1 ms instead of ~0.5-1 s).
            wait_ms = max(1, self._replicas_timeout_ms // 2)
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(self._sha, len(keys), *keys, *args)
            pipe.execute_command("WAIT", self._replicas_min, wait_ms)
            pipe.execute_command("WAITAOF", 1, self._replicas_min, max(1, self._replicas_timeout_ms - wait_ms))
            reply, applied, replicated = await pipe.execute(raise_on_error=False)
        except NoScriptError:
            self._forget_script()
        except ResponseError as e:
            raise Unavailable(f"Redis refused the capture: {e}") from e
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        # In a pipeline errors come back as values, in their command's place.
        if isinstance(reply, NoScriptError):
            self._forget_script()
        if isinstance(reply, ResponseError):
            raise Unavailable(f"Redis refused the capture: {reply}") from reply
        for refused in (applied, replicated):
            if isinstance(refused, ResponseError):
                raise Unavailable(f"Redis refused WAIT/WAITAOF (WAITAOF needs Redis 7.2 or Valkey, "
                                  f"and appendonly yes): {refused}") from refused
        return reply, replicated

    def _forget_script(self) -> NoReturn:
        # Scripts are neither persisted nor replicated: the store restarted, failed over or
        # was flushed of scripts. Whatever it kept must be checked against the ledger again.
        self._sha = None
        raise StoreRestarted("the capture store restarted or failed over (its scripts are gone)", 1) from None

    def _check_replicated(self, shard: int, replicated: list) -> None:
        """Raise Unavailable unless WAITAOF saw the local AOF and replicas_min replicas' AOFs."""
        local, replicas = int(replicated[0]), int(replicated[1])
        if local < 1 or replicas < self._replicas_min:
            raise Unavailable(
                f"shard {shard}: captured but not replicated: {replicas} of {self._replicas_min} "
                f"replica(s) fsynced it within {self._replicas_timeout_ms} ms"
                + ("" if local else ", nor the primary's own AOF") + "; not acknowledged, retry", 1)

    async def state(self, shard: int) -> StoreState:
        """The shard's counter, last stream sequence and fence, as the store holds them now."""
        p = self._prefix
        try:
            counter, top, fence = await self._client.eval(
                _STATE_SCRIPT, 3, seq_key(p, shard), stream_key(p, shard), fence_key(p, shard))
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        epoch = reserved = None
        if fence:
            epoch_text, _, reserved_text = _text(fence).partition(":")
            epoch, reserved = int(epoch_text), int(reserved_text)
        return StoreState(int(counter), int(top), epoch, reserved)

    async def install(self, shard: int, seen_counter: int, fence: Fence, ledger_seq: int) -> bool:
        """Install `fence` (and raise the counter to its floor) unless the counter moved since it was read."""
        p = self._prefix
        try:
            done = await self._client.eval(
                _INSTALL_SCRIPT, 3, seq_key(p, shard), fence_key(p, shard), recorded_key(p, shard),
                seen_counter, fence.floor, f"{fence.epoch}:{fence.reserved}", ledger_seq)
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        return bool(done)

    async def extend(self, shard: int, epoch: int, reserved: int) -> bool:
        """Raise the store's reservation for `epoch`; False when it carries another fence."""
        try:
            return bool(await self._client.eval(_EXTEND_SCRIPT, 1, fence_key(self._prefix, shard), epoch, reserved))
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


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
