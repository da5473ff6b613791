"""Ledger side of the shard streams: consumer-group reads, acknowledgement and trimming.

Each stream entry holds the new documents of one capture call (see capture.lua). Entries are
read through one consumer group with a stable consumer name per shard, so after a crash the
same writer finds its pending (delivered, unacknowledged) entries first. The backlog of a
shard is its captured height minus the recorded height the ledger last reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from posray.adapters.redis_keys import LEDGER_GROUP, fence_key, recorded_key, seq_key, stream_key
from posray.domain.errors import Unavailable


@dataclass(frozen=True, slots=True)
class Captured:
    """One captured document as the ledger records it; `seq` is its identity."""

    seq: int
    accepted_at_ms: int
    canonical: bytes


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One capture call's new documents: sequences first_seq, first_seq + 1, ..."""

    entry_id: bytes
    first_seq: int
    accepted_at_ms: int
    documents: tuple[bytes, ...]

    def captured(self) -> list[Captured]:
        return [Captured(self.first_seq + i, self.accepted_at_ms, d) for i, d in enumerate(self.documents)]


# KEYS: stream, recorded height; ARGV[1]: the recorded height; ARGV[2]: the consumer group
# (LEDGER_GROUP); ARGV[3..]: entry ids.
_ACK_SCRIPT = """
local ids = {unpack(ARGV, 3)}
if #ids > 0 then
  redis.call('XACK', KEYS[1], ARGV[2], unpack(ids))
  redis.call('XDEL', KEYS[1], unpack(ids))
end
local r = tonumber(redis.call('GET', KEYS[2]) or '0')
if r < tonumber(ARGV[1]) then redis.call('SET', KEYS[2], ARGV[1]) end
return 1
"""


class RedisShardStream:
    """Reads a shard's stream for the ledger writer and removes what has been recorded."""

    def __init__(self, client: aioredis.Redis, prefix: str, consumer: str = "writer"):
        self._client = client
        self._prefix = prefix
        self._consumer = consumer

    async def ensure_group(self, shard: int) -> None:
        """Create the ledger consumer group (and the stream) if missing."""
        try:
            await self._client.xgroup_create(
                stream_key(self._prefix, shard), LEDGER_GROUP, id="0", mkstream=True
            )
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise Unavailable(f"Redis refused the consumer group: {e}") from e
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def read(self, shard: int, count: int, block_ms: int | None, pending: bool,
                   after: bytes | None = None) -> list[StreamEntry]:
        """Read up to `count` entries: this consumer's pending ones, or new ones.

        Args:
            pending: True to re-read entries delivered before but not acknowledged.
            block_ms: how long to wait for new entries (ignored for pending reads).
            after: pending reads continue after this entry id.
        """
        start = (after or "0") if pending else ">"
        try:
            reply = await self._client.xreadgroup(
                LEDGER_GROUP,
                self._consumer,
                {stream_key(self._prefix, shard): start},
                count=count,
                block=None if pending else block_ms,
            )
        except ResponseError as e:
            if "NOGROUP" in str(e):
                await self.ensure_group(shard)
                return []
            raise Unavailable(f"Redis refused the read: {e}") from e
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        if not reply:
            return []
        return [_entry(entry_id, fields) for entry_id, fields in reply[0][1] if fields]

    async def acknowledge(self, shard: int, entry_ids: list[bytes], recorded_height: int) -> None:
        """Acknowledge and delete recorded entries and report the recorded height, atomically."""
        await self._acknowledge(shard, entry_ids, recorded_height)

    async def report_recorded(self, shard: int, recorded_height: int) -> None:
        """Raise the recorded height Redis knows (after a restart, or a Redis that lost it)."""
        await self._acknowledge(shard, [], recorded_height)

    async def _acknowledge(self, shard: int, entry_ids: list[bytes], recorded_height: int) -> None:
        keys = (stream_key(self._prefix, shard), recorded_key(self._prefix, shard))
        try:
            await self._client.eval(_ACK_SCRIPT, 2, *keys, recorded_height, LEDGER_GROUP, *entry_ids)
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def unfence(self, shard: int) -> None:
        """Remove the shard's capture fence: capture refuses until it is fenced above the ledger again."""
        try:
            await self._client.delete(fence_key(self._prefix, shard))
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def backlog(self, shard: int) -> int:
        """Documents captured in this shard and not yet recorded."""
        return (await self.backlogs([shard]))[shard]

    async def backlogs(self, shards: list[int]) -> dict[int, int]:
        """Documents captured and not yet recorded, per shard, in one round trip."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.get(seq_key(self._prefix, shard))
                    pipe.get(recorded_key(self._prefix, shard))
                values = await pipe.execute()
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        return {
            shard: max(0, int(values[2 * i] or 0) - int(values[2 * i + 1] or 0))
            for i, shard in enumerate(shards)
        }

    async def oldest_accepted_ms(self, shard: int) -> int | None:
        """When the oldest unrecorded document of `shard` was acknowledged (None: none left).

        Recorded entries are deleted from the stream, so its first entry is the oldest pending.
        """
        try:
            first = await self._client.xrange(stream_key(self._prefix, shard), count=1)
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        if not first or b"t" not in first[0][1]:
            return None
        return int(first[0][1][b"t"])

    async def ping(self) -> None:
        """Raises Unavailable unless Redis answers PING."""
        try:
            await self._client.ping()
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def captured_height(self, shard: int) -> int:
        """The last sequence assigned in this shard (0 when none)."""
        try:
            value = await self._client.get(seq_key(self._prefix, shard))
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        return int(value or 0)


def _entry(entry_id: bytes, fields: dict) -> StreamEntry:
    return StreamEntry(
        entry_id=entry_id,
        first_seq=int(fields[b"s"]),
        accepted_at_ms=int(fields[b"t"]),
        documents=tuple(fields[b"d"].split(b"\n")),
    )
