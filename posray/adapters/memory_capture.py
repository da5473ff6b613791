"""In-memory capture store: capture.lua's semantics and the shard streams' consumer group, without Redis.

MemoryCaptureLog (what RedisCapture does) and MemoryShardStream (what RedisShardStream does)
share one MemoryCaptureStore, as the two adapters share one Redis. Each method does what the
Redis adapter's script or command does, step for step, including what a refused call leaves
behind; tests/contract runs the same assertions against both. For tests, the store can also
suffer what a real one suffers: lose a shard's keys, be flushed, rewound to a snapshot,
restarted (its scripts gone) or be unreachable.
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass, field
from typing import Callable

from posray.adapters.redis_capture import CONFLICT, HASH_BYTES, NEW, SAME, Appended
from posray.adapters.redis_keys import LEDGER_GROUP
from posray.adapters.redis_stream import StreamEntry
from posray.domain.errors import NotFenced, Overloaded, StoreRestarted, Unavailable
from posray.domain.fence import Fence, StoreState
from posray.domain.transaction import Submission

_POLL_S = 0.002  # how often a blocking read looks for new entries


@dataclass
class _Entry:
    """One capture call's new documents (stream fields s, n, t, e, d)."""

    first_seq: int
    accepted_at_ms: int
    epoch: int
    documents: tuple[bytes, ...]


@dataclass
class _Group:
    delivered: int = 0                                   # the last delivered entry id (its first seq)
    pending: dict[int, str] = field(default_factory=dict)  # entry id -> consumer, in delivery order


@dataclass
class _Stream:
    entries: dict[int, _Entry] = field(default_factory=dict)  # by entry id "(first seq)-0", ascending
    last_id: int = 0  # the highest id ever added: XADD refuses ids at or below it, deleted or not
    groups: dict[str, _Group] = field(default_factory=dict)


@dataclass
class _Shard:
    """The keys of one shard: counter, recorded height, fence, idempotency keys and stream."""

    counter: int | None = None
    recorded: int | None = None
    fence: str | None = None  # "epoch:reserved"
    idem: dict[tuple[str, int], tuple[bytes, float]] = field(default_factory=dict)  # value, expires (s)
    stream: _Stream | None = None


class MemoryCaptureStore:
    """The state one Redis holds for posray, shared by a MemoryCaptureLog and MemoryShardStream."""

    def __init__(self, clock: Callable[[], float] = time.time, durability: str = "always"):
        self.clock = clock           # seconds, for the idempotency keys' lifetime
        self.durability = durability
        self.available = True        # False: every call raises Unavailable, as a Redis that is away
        self.scripts = 0             # bumped by restart(): loaded scripts are gone
        self._shards: dict[int, _Shard] = {}

    def shard(self, shard: int) -> _Shard:
        return self._shards.setdefault(shard, _Shard())

    def check(self) -> None:
        if not self.available:
            raise Unavailable("Redis is unreachable: ConnectionError")

    # What happens to real stores, for tests.
    def lose_shard(self, shard: int) -> None:
        """Delete every key of the shard (a flush, a restore or a replacement)."""
        self._shards.pop(shard, None)

    def flush(self) -> None:
        """FLUSHALL: every key is gone (loaded scripts stay)."""
        self._shards.clear()

    def snapshot(self) -> dict[int, _Shard]:
        """A copy of every key, to restore later (an old AOF or RDB)."""
        return copy.deepcopy(self._shards)

    def rewind(self, snapshot: dict[int, _Shard]) -> None:
        """Go back to `snapshot`, behind posray's back (a restore while running)."""
        self._shards = copy.deepcopy(snapshot)

    def restart(self) -> None:
        """A restart with every write kept (appendfsync always), but no scripts loaded."""
        self.scripts += 1

    # What the tests look at.
    def documents(self, shard: int) -> int:
        """Documents held in the shard's stream."""
        stream = self.shard(shard).stream
        return sum(len(e.documents) for e in stream.entries.values()) if stream else 0

    def delivered_unacknowledged(self, shard: int) -> int:
        """Entries of the shard's stream delivered to the ledger group and not acknowledged."""
        stream = self.shard(shard).stream
        group = stream.groups.get(LEDGER_GROUP) if stream else None
        return len(group.pending) if group else 0

    def delete_entry(self, shard: int, first_seq: int) -> bool:
        """XDEL one entry (a gap in the stream)."""
        stream = self.shard(shard).stream
        return stream is not None and stream.entries.pop(first_seq, None) is not None


class MemoryCaptureLog:
    """capture.lua and the fencing scripts of posray.adapters.redis_capture, in memory.

    A store without replicas: what RedisCapture adds for replication (ARGV[5], WAIT and
    WAITAOF) has no effect here.
    """

    def __init__(self, store: MemoryCaptureStore, idempotency_ttl_s: int, backlog_max: int):
        self._store = store
        self._ttl_s = idempotency_ttl_s
        self._backlog_max = backlog_max
        self._loaded: int | None = None  # the store's script generation this client loaded

    async def append(self, shard: int, accepted_at_ms: int, submissions: list[Submission],
                     fence: Fence) -> list[Appended] | int:
        """What RedisCapture.append does (see capture.lua's header)."""
        self._script()
        keys = self._store.shard(shard)
        if keys.fence is None:
            raise NotFenced(f"shard {shard}: the capture store is not fenced with epoch {fence.epoch} (missing)", 1)
        epoch, reserved = _fence(keys.fence)
        if epoch != fence.epoch:
            raise NotFenced(f"shard {shard}: the capture store is not fenced with epoch {fence.epoch} "
                            f"(epoch {epoch})", 1)
        n = len(submissions)
        seq = keys.counter or 0
        backlog = seq - (keys.recorded or 0)
        if backlog + n > self._backlog_max:
            raise Overloaded(f"shard {shard} backlog is full ({backlog} documents)", 2)
        if seq + n > reserved:
            return reserved
        first, now_s = seq + 1, self._store.clock()
        out: list[Appended] = []
        documents: list[bytes] = []
        for s in submissions:
            prior = keys.idem.get((s.terminal_id, s.counter))
            if prior is not None and prior[1] > now_s:
                pseq, _, pacc = prior[0][HASH_BYTES:].partition(b":")
                out.append(Appended(SAME if prior[0][:HASH_BYTES] == s.document_hash else CONFLICT,
                                    int(pseq), int(pacc)))
                continue
            keys.idem[(s.terminal_id, s.counter)] = (s.document_hash + b"%d:%d" % (seq + 1, accepted_at_ms),
                                                     now_s + self._ttl_s)
            seq += 1
            documents.append(s.canonical)
            out.append(Appended(NEW, seq, accepted_at_ms))
        if documents:
            keys.counter = seq
            stream = keys.stream = keys.stream or _Stream()
            if first <= stream.last_id:  # XADD refuses; Lua keeps the writes made before it
                raise Unavailable("Redis refused the capture: ERR The ID specified in XADD is equal or "
                                  "smaller than the target stream top item")
            stream.entries[first] = _Entry(first, accepted_at_ms, fence.epoch, tuple(documents))
            stream.last_id = first
        return out

    def _script(self) -> None:
        self._store.check()
        if self._loaded is None:
            self._loaded = self._store.scripts
        elif self._loaded != self._store.scripts:
            self._loaded = None
            raise StoreRestarted("the capture store restarted or failed over (its scripts are gone)", 1)

    async def state(self, shard: int) -> StoreState:
        self._store.check()
        keys = self._store.shard(shard)
        top = 0
        if keys.stream is not None and keys.stream.entries:
            last = keys.stream.entries[max(keys.stream.entries)]
            top = last.first_seq + len(last.documents) - 1
        epoch = reserved = None
        if keys.fence is not None:
            epoch, reserved = _fence(keys.fence)
        return StoreState(keys.counter or 0, top, epoch, reserved)

    async def install(self, shard: int, seen_counter: int, fence: Fence, ledger_seq: int) -> bool:
        self._store.check()
        keys = self._store.shard(shard)
        counter = keys.counter or 0
        if counter != seen_counter:
            return False
        if counter < fence.floor:
            keys.counter = fence.floor
        keys.fence = f"{fence.epoch}:{fence.reserved}"
        if (keys.recorded or 0) < ledger_seq:
            keys.recorded = ledger_seq
        return True

    async def extend(self, shard: int, epoch: int, reserved: int) -> bool:
        self._store.check()
        keys = self._store.shard(shard)
        if keys.fence is None:
            return False
        held_epoch, held_reserved = _fence(keys.fence)
        if held_epoch != epoch:
            return False
        if held_reserved < reserved:
            keys.fence = f"{epoch}:{reserved}"
        return True

    async def pending(self, shard: int, seq: int) -> tuple[int, bytes] | None:
        self._store.check()
        stream = self._store.shard(shard).stream
        below = [i for i in stream.entries if i <= seq] if stream else []
        if not below:
            return None
        entry = stream.entries[max(below)]
        if not entry.first_seq <= seq < entry.first_seq + len(entry.documents):
            return None
        return entry.accepted_at_ms, entry.documents[seq - entry.first_seq]

    async def seq_of(self, shard: int, terminal_id: str, counter: int) -> int | None:
        self._store.check()
        value = self._store.shard(shard).idem.get((terminal_id, counter))
        if value is None or value[1] <= self._store.clock():
            return None
        return int(value[0][HASH_BYTES:].split(b":", 1)[0])

    async def durability(self) -> str:
        self._store.check()
        return self._store.durability


class MemoryShardStream:
    """RedisShardStream in memory: one consumer group per shard stream, read by one consumer."""

    def __init__(self, store: MemoryCaptureStore, consumer: str = "writer"):
        self._store = store
        self._consumer = consumer

    async def ensure_group(self, shard: int) -> None:
        self._store.check()
        keys = self._store.shard(shard)
        keys.stream = keys.stream or _Stream()
        keys.stream.groups.setdefault(LEDGER_GROUP, _Group())

    async def read(self, shard: int, count: int, block_ms: int | None, pending: bool,
                   after: bytes | None = None) -> list[StreamEntry]:
        """What XREADGROUP does for RedisShardStream.read (block_ms 0 waits for ever, as in Redis)."""
        self._store.check()
        stream = self._store.shard(shard).stream
        group = stream.groups.get(LEDGER_GROUP) if stream else None
        if group is None:  # NOGROUP
            await self.ensure_group(shard)
            return []
        if pending:
            start = int(after.split(b"-")[0]) if after else 0
            ids = [i for i, who in group.pending.items() if who == self._consumer and i > start]
            return [_entry(stream.entries[i]) for i in sorted(ids)[:count] if i in stream.entries]
        deadline = None if not block_ms else time.monotonic() + block_ms / 1000
        while True:
            fresh = sorted(i for i in stream.entries if i > group.delivered)[:count]
            if fresh or block_ms is None or (deadline is not None and time.monotonic() >= deadline):
                break
            await asyncio.sleep(_POLL_S)
            self._store.check()
            stream = self._store.shard(shard).stream
            group = stream.groups.get(LEDGER_GROUP) if stream else None
            if group is None:  # the stream was deleted while blocked
                return []
        for i in fresh:
            group.pending[i] = self._consumer
            group.delivered = i
        return [_entry(stream.entries[i]) for i in fresh]

    async def acknowledge(self, shard: int, entry_ids: list[bytes], recorded_height: int) -> None:
        self._store.check()
        keys = self._store.shard(shard)
        if keys.stream is not None:
            group = keys.stream.groups.get(LEDGER_GROUP)
            for entry_id in entry_ids:
                first = int(entry_id.split(b"-")[0])
                if group is not None:
                    group.pending.pop(first, None)
                keys.stream.entries.pop(first, None)
        if (keys.recorded or 0) < recorded_height:
            keys.recorded = recorded_height

    async def report_recorded(self, shard: int, recorded_height: int) -> None:
        await self.acknowledge(shard, [], recorded_height)

    async def unfence(self, shard: int) -> None:
        self._store.check()
        self._store.shard(shard).fence = None

    async def backlog(self, shard: int) -> int:
        return (await self.backlogs([shard]))[shard]

    async def backlogs(self, shards: list[int]) -> dict[int, int]:
        self._store.check()
        return {s: max(0, (self._store.shard(s).counter or 0) - (self._store.shard(s).recorded or 0))
                for s in shards}

    async def oldest_accepted_ms(self, shard: int) -> int | None:
        self._store.check()
        stream = self._store.shard(shard).stream
        if stream is None or not stream.entries:
            return None
        return stream.entries[min(stream.entries)].accepted_at_ms

    async def ping(self) -> None:
        self._store.check()

    async def captured_height(self, shard: int) -> int:
        self._store.check()
        return self._store.shard(shard).counter or 0


def _fence(value: str) -> tuple[int, int]:
    epoch, _, reserved = value.partition(":")
    return int(epoch), int(reserved)


def _entry(entry: _Entry) -> StreamEntry:
    return StreamEntry(b"%d-0" % entry.first_seq, entry.first_seq, entry.accepted_at_ms, entry.documents)
