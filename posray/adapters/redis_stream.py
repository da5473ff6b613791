"""Ledger side of the shard streams: consumer-group reads, acknowledgement and trimming.

Entries are read through one consumer group with a stable consumer name per shard, so after
a crash the same writer finds its pending (delivered, unacknowledged) entries first.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from posray.adapters.redis_keys import LEDGER_GROUP, seq_key, stream_key
from posray.domain.errors import Unavailable


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One captured document as the ledger reads it; `seq` is its identity, not `entry_id`."""

    entry_id: bytes
    seq: int
    accepted_at_ms: int
    document_hash: bytes
    canonical: bytes


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

    async def read(self, shard: int, count: int, block_ms: int | None, pending: bool) -> list[StreamEntry]:
        """Read up to `count` entries: this consumer's pending ones, or new ones.

        Args:
            pending: True to re-read entries delivered before but not acknowledged.
            block_ms: how long to wait for new entries (ignored for pending reads).
        """
        start = "0" if pending else ">"
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

    async def acknowledge(self, shard: int, entry_ids: list[bytes]) -> None:
        """Acknowledge and delete recorded entries in one round trip."""
        if not entry_ids:
            return
        key = stream_key(self._prefix, shard)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(key, LEDGER_GROUP, *entry_ids)
                pipe.xdel(key, *entry_ids)
                await pipe.execute()
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def backlog(self, shard: int) -> int:
        """Documents captured in this shard and not yet recorded."""
        try:
            return int(await self._client.xlen(stream_key(self._prefix, shard)))
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e

    async def backlogs(self, shards: list[int]) -> dict[int, int]:
        """Documents not yet recorded, per shard, in one round trip."""
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.xlen(stream_key(self._prefix, shard))
                lengths = await pipe.execute()
        except (RedisError, OSError) as e:
            raise Unavailable(f"Redis is unreachable: {type(e).__name__}") from e
        return {shard: int(n) for shard, n in zip(shards, lengths)}

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
        seq=int(fields[b"s"]),
        accepted_at_ms=int(fields[b"t"]),
        document_hash=bytes.fromhex(fields[b"h"].decode()),
        canonical=fields[b"d"],
    )
