"""In-memory ledger: PgLedger's and PgFences' semantics over one shared state, without PostgreSQL.

MemoryLedger and MemoryFences share one MemoryLedgerState, as PgLedger and PgFences share one
database: a fence reads the ledger's height, `recorded` reads its entries. Writes fail where
PostgreSQL's primary keys would make them fail, with the errors the PostgreSQL adapters raise,
and write nothing then; tests/contract runs the same assertions against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable

from posray.adapters.pg_fences import Conflict, FenceState, Loss, Plan, Recorded
from posray.adapters.pg_ledger import EntryRow, RecordedEntry
from posray.domain.chain import BatchHeader, ChainHead
from posray.domain.errors import LedgerLive, LedgerRace, Unavailable
from posray.domain.fence import Fence, FencePlan, PriorFence


@dataclass(frozen=True, slots=True)
class _Entry:
    batch_no: int
    leaf_index: int
    row: EntryRow
    leaf_hash: bytes


@dataclass(frozen=True, slots=True)
class _Fence:
    store: str
    ledger_seq: int
    store_seq: int
    plan: FencePlan
    created_ms: int


class MemoryLedgerState:
    """The tables of one posray database, shared by a MemoryLedger and a MemoryFences."""

    def __init__(self, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)):
        self.clock_ms = clock_ms     # now() of the database, epoch ms
        self.available = True        # False: every call raises Unavailable
        self.batches: dict[int, dict[int, tuple[BatchHeader, bytes]]] = {}  # shard -> batch_no -> header, hash
        self.entries: dict[int, dict[int, _Entry]] = {}                      # shard -> seq -> entry
        self.nodes: dict[int, dict[tuple[int, int], bytes]] = {}             # shard -> (level, idx) -> hash
        self.checkpoints: dict[int, dict[int, tuple[bytes, str, int]]] = {}  # shard -> size -> root, note, ms
        self.cosignatures: dict[int, dict[tuple[int, str], str]] = {}        # shard -> (size, witness) -> line
        self.merchants: dict[str, str] = {}                                  # terminal -> merchant (terminals)
        self.fences: dict[int, dict[int, _Fence]] = {}                       # shard -> epoch -> fence
        self.reservations: dict[tuple[int, int], set[int]] = {}              # (shard, epoch) -> reserved seqs
        self.conflicts: dict[tuple[int, int, bytes], tuple[bytes, int]] = {}  # -> document, accepted_at_ms
        self.released: dict[tuple[int, int, bytes], str] = {}               # -> released_by
        self.locks: dict[int, asyncio.Lock] = {}                            # the fences' advisory locks
        self.detached: set[tuple[int, int]] = set()                         # (shard, batch_no) detached

    def detach(self, shard: int, batch_nos: set[int]) -> None:
        """Retention in memory: the batches' rows leave `entries`, their headers and nodes stay."""
        for batch_no in batch_nos:
            header, _ = self.batches[shard][batch_no]
            for seq in range(header.first_seq, header.last_seq + 1):
                self.entries[shard].pop(seq, None)
            self.detached.add((shard, batch_no))

    def check(self) -> None:
        if not self.available:
            raise Unavailable("PostgreSQL is unreachable: ConnectionError")

    def ledger_seq(self, shard: int) -> int:
        batches = self.batches.get(shard)
        return batches[max(batches)][0].last_seq if batches else 0


class MemoryLedger:
    """PgLedger in memory."""

    def __init__(self, state: MemoryLedgerState):
        self._db = state

    async def head(self, shard: int) -> ChainHead:
        self._db.check()
        batches = self._db.batches.get(shard)
        if not batches:
            return ChainHead.genesis(shard)
        header, header_hash = batches[max(batches)]
        return ChainHead(shard, header.batch_no, header.last_seq, header_hash)

    async def append_batch(self, header: BatchHeader, rows: list[EntryRow], leaves: list[bytes],
                           nodes: dict[tuple[int, int], bytes] | None = None) -> None:
        """All or nothing, refused where ledger_batches', ledger_entries' or tlog_nodes' keys are taken.

        Raises:
            LedgerRace: as PgLedger.append_batch on a unique violation.
        """
        self._db.check()
        shard = header.shard
        batches = self._db.batches.setdefault(shard, {})
        entries = self._db.entries.setdefault(shard, {})
        stored = self._db.nodes.setdefault(shard, {})
        seqs = [r.seq for r in rows]
        if (header.batch_no in batches or len(set(seqs)) != len(seqs) or any(s in entries for s in seqs)
                or any(key in stored for key in nodes or {})):
            raise LedgerRace(
                f"shard {header.shard}: batch {header.batch_no} or one of its sequences is already recorded")
        batches[header.batch_no] = (header, header.hash())
        for i, row in enumerate(rows):
            entries[row.seq] = _Entry(header.batch_no, i, row, leaves[i])
        stored.update(nodes or {})

    async def stored_hashes(self, shard: int, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        self._db.check()
        entries = self._db.entries.get(shard, {})
        nodes = self._db.nodes.get(shard, {})
        out: dict[tuple[int, int], bytes] = {}
        for level, index in keys:
            if level == 0 and index + 1 in entries:
                out[(0, index)] = entries[index + 1].leaf_hash
            elif level != 0 and (level, index) in nodes:
                out[(level, index)] = nodes[(level, index)]
        return out

    async def hash_range(self, shard: int, level: int, start: int, count: int) -> list[bytes]:
        self._db.check()
        entries, nodes = self._db.entries.get(shard, {}), self._db.nodes.get(shard, {})
        out = []
        for index in range(start, start + count):
            found = (entries[index + 1].leaf_hash if index + 1 in entries else None) if level == 0 \
                else nodes.get((level, index))
            if found is None:
                break
            out.append(found)
        return out

    async def record_range(self, shard: int, first_seq: int, count: int) -> list[bytes]:
        self._db.check()
        entries = self._db.entries.get(shard, {})
        out = []
        for seq in range(first_seq, first_seq + count):
            if seq not in entries:
                break
            out.append(entries[seq].row.record)
        return out

    async def add_checkpoint(self, shard: int, tree_size: int, root: bytes, note: str, created_ms: int) -> None:
        self._db.check()
        self._db.checkpoints.setdefault(shard, {}).setdefault(tree_size, (root, note, created_ms))

    async def checkpoint(self, shard: int, tree_size: int | None = None,
                         cosigned_min: int = 0) -> tuple[int, bytes, str] | None:
        self._db.check()
        signed = self._db.checkpoints.get(shard, {})
        cosigned = self._db.cosignatures.get(shard, {})
        enough = [size for size in signed if sum(1 for s, _ in cosigned if s == size) >= cosigned_min]
        size = max(enough, default=None) if tree_size is None else tree_size
        if size not in signed:
            return None
        root, note, _ = signed[size]
        return size, root, note

    async def add_cosignature(self, shard: int, tree_size: int, witness: str, line: str, created_ms: int) -> None:
        self._db.check()
        self._db.cosignatures.setdefault(shard, {}).setdefault((tree_size, witness), line)

    async def cosignatures(self, shard: int, tree_size: int) -> list[str]:
        self._db.check()
        found = self._db.cosignatures.get(shard, {})
        return [found[key] for key in sorted(found) if key[0] == tree_size]

    async def cosigned_size(self, shard: int, witness: str) -> int:
        self._db.check()
        return max((size for size, w in self._db.cosignatures.get(shard, {}) if w == witness), default=0)

    async def latest_checkpoints(self, shards: list[int]) -> dict[int, tuple[int, int | None]]:
        self._db.check()
        out = {}
        for shard in shards:
            signed = self._db.checkpoints.get(shard)
            if signed:
                out[shard] = (max(signed), signed[max(signed)][2])
                continue
            batches = self._db.batches.get(shard)
            out[shard] = (0, batches[min(batches)][0].recorded_at_ms if batches else None)
        return out

    async def entry(self, shard: int, seq: int) -> RecordedEntry | None:
        self._db.check()
        found = self._db.entries.get(shard, {}).get(seq)
        if found is None:
            return None
        header, header_hash = self._db.batches[shard][found.batch_no]
        return RecordedEntry(shard, seq, found.batch_no, found.leaf_index,
                             self._db.merchants.get(found.row.terminal_id), found.row.record, found.leaf_hash,
                             header, header_hash)

    async def records(self, shard: int, seqs: list[int]) -> dict[int, bytes]:
        self._db.check()
        entries = self._db.entries.get(shard, {})
        return {seq: entries[seq].row.record for seq in seqs if seq in entries}

    async def batch_leaves(self, shard: int, batch_no: int) -> list[bytes]:
        self._db.check()
        entries = self._db.entries.get(shard, {})
        return [entries[s].leaf_hash for s in sorted(entries) if entries[s].batch_no == batch_no]

    async def find_by_fields(self, terminal_id: str, counter: int,
                             since: date | None = None) -> list[tuple[int, int, int, datetime]]:
        self._db.check()
        return [(shard, seq, e.row.total_minor, _datetime(e.row.issued_at_ms))
                for shard, entries in sorted(self._db.entries.items()) for seq, e in sorted(entries.items())
                if (e.row.terminal_id, e.row.counter) == (terminal_id, counter)
                and (since is None or _datetime(self._db.batches[shard][e.batch_no][0].recorded_at_ms).date() >= since)]

    async def archived_batch(self, shard: int, seq: int) -> tuple[BatchHeader, bytes] | None:
        self._db.check()
        for batch_no, (header, header_hash) in self._db.batches.get(shard, {}).items():
            if header.first_seq <= seq <= header.last_seq:
                return (header, header_hash) if (shard, batch_no) in self._db.detached else None
        return None

    async def heights(self) -> dict[int, tuple[int, int]]:
        self._db.check()
        return {shard: (max(batches) + 1, max(h.last_seq for h, _ in batches.values()))
                for shard, batches in self._db.batches.items() if batches}

    async def ping(self) -> None:
        self._db.check()


class MemoryFences:
    """PgFences in memory: fences set one at a time per shard, under its lock."""

    def __init__(self, state: MemoryLedgerState):
        self._db = state

    async def establish(self, shard: int, store: str, store_seq: int, plan: Plan) -> Fence:
        self._db.check()
        async with self._lock(shard):
            ledger_seq = self._db.ledger_seq(shard)
            decided = plan(ledger_seq, self._prior(shard))  # raises StoreMismatch: nothing written
            fences = self._db.fences.setdefault(shard, {})
            assert decided.epoch not in fences, "capture_fences' key (shard, epoch) is taken"
            fences[decided.epoch] = _Fence(store, ledger_seq, store_seq, decided, self._db.clock_ms())
            self._db.reservations.setdefault((shard, decided.epoch), set()).add(decided.reserved)
            keys_lost_at_ms = max((f.created_ms for f in fences.values() if f.plan.keys_lost), default=None)
        return Fence(shard, decided.epoch, decided.floor, decided.reserved, keys_lost_at_ms)

    def _lock(self, shard: int) -> asyncio.Lock:
        return self._db.locks.setdefault(shard, asyncio.Lock())

    def _prior(self, shard: int) -> PriorFence | None:
        fences = self._db.fences.get(shard)
        if not fences:
            return None
        epoch = max(fences)
        return PriorFence(epoch, fences[epoch].store, self._reserved(shard, epoch))

    def _reserved(self, shard: int, epoch: int) -> int | None:
        return max(self._db.reservations.get((shard, epoch), ()), default=None)

    async def recorded(self, shard: int, counters: list[tuple[str, int]]) -> dict[tuple[str, int], Recorded]:
        self._db.check()
        wanted = set(counters)
        found: dict[tuple[str, int], Recorded] = {}
        for seq, e in sorted(self._db.entries.get(shard, {}).items()):
            key = (e.row.terminal_id, e.row.counter)
            if key in wanted:  # the first recording of a counter is the one its terminal was answered
                found.setdefault(key, Recorded(seq, e.row.record, e.row.accepted_at_ms))
        return found

    async def reserve(self, shard: int, epoch: int, reserved_seq: int) -> bool:
        self._db.check()
        async with self._lock(shard):
            if max(self._db.fences.get(shard, {}), default=None) != epoch:
                return False
            self._db.reservations.setdefault((shard, epoch), set()).add(reserved_seq)
        return True

    async def latest_epoch(self, shard: int) -> int | None:
        self._db.check()
        return max(self._db.fences.get(shard, {}), default=None)

    async def losses(self, shard: int | None = None, seq: int | None = None) -> list[Loss]:
        self._db.check()
        return [Loss(s, epoch, f.plan.lost_from, f.plan.lost_to, f.plan.lost_exact, f.plan.reason,
                     _datetime(f.created_ms))
                for s, fences in sorted(self._db.fences.items()) for epoch, f in sorted(fences.items())
                if f.plan.lost_from is not None and shard in (None, s)
                and (seq is None or f.plan.lost_from <= seq <= f.plan.lost_to)]

    async def recorded_twice(self) -> list[tuple[int, str, int, tuple[int, ...]]]:
        self._db.check()
        floors = {shard: min(f.plan.floor for f in fences.values() if f.plan.keys_lost)
                  for shard, fences in self._db.fences.items() if any(f.plan.keys_lost for f in fences.values())}
        seqs_of: dict[tuple[str, int], set[int]] = {}
        for entries in self._db.entries.values():
            for seq, e in entries.items():
                seqs_of.setdefault((e.row.terminal_id, e.row.counter), set()).add(seq)
        found = {(shard, e.row.terminal_id, e.row.counter)
                 for shard, floor in floors.items() for seq, e in self._db.entries.get(shard, {}).items()
                 if seq > floor}
        return [(shard, terminal, counter, tuple(sorted(seqs_of[(terminal, counter)])))
                for shard, terminal, counter in sorted(found) if len(seqs_of[(terminal, counter)]) > 1]

    async def add_conflicts(self, shard: int, found: list[tuple[int, bytes, bytes, int]]) -> None:
        self._db.check()
        for seq, document_hash, document, accepted_at_ms in found:
            self._db.conflicts.setdefault((shard, seq, document_hash), (document, accepted_at_ms))

    async def conflicts(self, shard: int | None = None, seq: int | None = None) -> list[Conflict]:
        self._db.check()
        return [Conflict(s, q, h, document, _datetime(ms), (s, q, h) in self._db.released)
                for (s, q, h), (document, ms) in sorted(self._db.conflicts.items())
                if shard in (None, s) and seq in (None, q)]

    async def release_conflicts(self, shard: int, by: str) -> list[tuple[int, bytes]]:
        self._db.check()
        released = sorted((q, h) for (s, q, h) in self._db.conflicts if s == shard
                          and (s, q, h) not in self._db.released)
        for q, h in released:
            self._db.released[(shard, q, h)] = by
        return released

    async def latest(self, shards: list[int] | None = None) -> dict[int, FenceState]:
        self._db.check()
        out = {}
        for shard, fences in sorted(self._db.fences.items()):
            if fences and (shards is None or shard in shards):
                epoch = max(fences)
                f = fences[epoch]
                out[shard] = FenceState(shard, epoch, f.store, f.plan.floor, self._reserved(shard, epoch),
                                        f.ledger_seq, f.plan.reason, _datetime(f.created_ms))
        return out

    @contextlib.asynccontextmanager
    async def offline(self, shards: list[int]) -> AsyncIterator[None]:
        """Hold the fence locks of `shards`; LedgerLive when any store was ever fenced here."""
        self._db.check()
        async with contextlib.AsyncExitStack() as held:
            for shard in sorted(shards):
                await held.enter_async_context(self._lock(shard))
            stores: dict[str, set[int]] = {}
            for shard, fences in self._db.fences.items():
                for f in fences.values():
                    stores.setdefault(f.store, set()).add(shard)
            if stores:
                named = ", ".join(f"{store} ({len(s)} shards)" for store, s in sorted(stores.items()))
                raise LedgerLive(
                    f"the ledger is live: capture store(s) {named} are fenced against it, and history "
                    "written here would take sequences capture hands out; generate into a database of "
                    "its own")
            yield


def _datetime(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
