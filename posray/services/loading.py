"""Use case `load`: record a generated history in the ledger, through the ledger-writing path.

History is older than the edge's 30-day upload window, so it bypasses the HTTP edge and Redis,
but not the ledger: each batch goes through ShardRecorder.record, exactly as the LedgerWriter
records a shard's stream (record bytes, Merkle batch header chained to the previous one,
transparency-log nodes, one PostgreSQL transaction), and each shard gets a signed checkpoint at
the end, so the loaded ledger audits like any other. Every document was checked (wire types,
business rules at its acceptance time) by the generator.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from posray.adapters.keyfile import load_keys
from posray.adapters.pg import create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_snapshot import PgSnapshotSource
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_stream import StreamEntry
from posray.synthetic.generator import GeneratedSale, GeneratorConfig, History, World, build_world
from posray.domain.codes import CodeKey
from posray.domain.errors import LedgerRace
from posray.domain.keys import terminal_key
from posray.domain.note import Checkpoint, NoteSigner, sign_checkpoint
from posray.services.recording import ShardRecorder, Sign
from posray.settings import Settings

PROGRESS_EVERY = 1000  # documents between two calls of a load's progress callback


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """What a load recorded."""

    documents: int
    by_type: dict[str, int]
    batches: int
    terminals_registered: int
    elapsed_s: float
    anomalies: dict


def load_into_ledger(
    dsn: str, seed_file: Path, config: GeneratorConfig, *, settings: Settings | None = None,
    batch_max: int = 2000, workers: int = 1, sink: Callable[[GeneratedSale], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadSummary:
    """Generate `config`'s history and record it; see load_history.

    Args:
        workers: processes generating and writing disjoint sets of shards in parallel (the
            documents are the same whatever the number); `sink` needs workers=1. A script
            that uses workers > 1 must guard its entry point with `if __name__ == "__main__"`.
        progress: called in this process with the documents handed to the ledger so far, a
            growing count.
    """
    settings = settings or Settings()
    if workers <= 1:
        return asyncio.run(load_history(dsn, seed_file, config, settings=settings, batch_max=batch_max, sink=sink,
                                        progress=progress))
    if sink is not None:
        raise ValueError("a sink sees documents in one process only: use workers=1")
    started = time.perf_counter()
    registered = asyncio.run(_register_only(dsn, config))  # refuses a live ledger first
    groups = [frozenset(range(w, config.shard_count, workers)) for w in range(min(workers, config.shard_count))]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(len(groups), mp_context=context) as pool:
        counts = manager.Queue()
        futures = [pool.submit(_load_part, (dsn, seed_file, config, settings, batch_max, g, counts)) for g in groups]
        _relay_counts(futures, counts, progress)
        parts = [f.result() for f in futures]
    return _merged(parts, registered, time.perf_counter() - started)


def _relay_counts(futures, counts, progress: Callable[[int], None] | None) -> None:
    """Until every part is done, add up the documents the parts report and pass the sum on."""
    done = 0
    while True:
        finished = wait_futures(futures, timeout=0.5).not_done == set()
        while not counts.empty():
            done += counts.get_nowait()
        if progress is not None:
            progress(done)
        if finished:
            return


def _load_part(args) -> LoadSummary:
    dsn, seed_file, config, settings, batch_max, shards, counts = args
    return asyncio.run(load_history(dsn, seed_file, config, settings=settings, batch_max=batch_max, shards=shards,
                                    progress=_Increments(counts.put)))


class _Increments:
    """A progress callback that passes on what was added since its last call (parts add up)."""

    def __init__(self, put: Callable[[int], None]):
        self._put, self._seen = put, 0

    def __call__(self, done: int) -> None:
        self._put(done - self._seen)
        self._seen = done


async def load_history(
    dsn: str, seed_file: Path, config: GeneratorConfig, *, settings: Settings, batch_max: int = 2000,
    sink: Callable[[GeneratedSale], None] | None = None, shards: frozenset[int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LoadSummary:
    """Register the world's merchants and terminals, then record its history batch by batch.

    A second load of the same world (a later window) continues each terminal's counters and
    each shard's chain. `sink` sees every document as it is recorded (tests keep them);
    `shards` limits the load to the documents of those shards; `progress` is called with the
    documents generated and handed to the ledger so far every PROGRESS_EVERY documents and at the end. Checkpoints are
    signed with the operator's log key under `settings`' log origins.

    Only a ledger no capture store was ever fenced against is loaded: generated history takes
    each shard's next sequences, which on a live ledger belong to capture (docs/analytics.md).

    Raises:
        LedgerLive: a capture store is fenced against this ledger (nothing is written).
        ValueError: a world terminal id is registered to another merchant.
        LedgerRace: another writer advanced a shard during the load.
    """
    started = time.perf_counter()
    keys = load_keys(seed_file)
    world = build_world(config)
    signer = NoteSigner(settings.log_key_name, keys.signing_seed)

    def sign_for(shard: int) -> Sign:
        origin = settings.log_origin(shard)
        return lambda size, root, extensions: sign_checkpoint(signer, Checkpoint(origin, size, root, extensions))

    pool = await create_pool(dsn, size_max=3)  # one holds the fence locks for the whole load
    try:
        async with PgFences(pool).offline(sorted(shards) if shards is not None else list(range(config.shard_count))):
            types, writer, history, registered = await _load(pool, keys, world, config, sign_for, batch_max,
                                                             sink, shards, progress)
    finally:
        await pool.close()
    return LoadSummary(sum(types.values()), dict(types), writer.batches, registered,
                       time.perf_counter() - started, history.anomalies)


async def _load(pool, keys, world: World, config: GeneratorConfig, sign_for: Callable[[int], Sign], batch_max: int,
                sink: Callable[[GeneratedSale], None] | None, shards: frozenset[int] | None,
                progress: Callable[[int], None] | None):
    """Register the world, then record its history; return (types, writer, history, terminals registered)."""
    versions, registered = await _register(PgTerminals(pool), world)
    writer = _BatchWriter(PgLedger(pool), keys.code, batch_max, sign_for)
    history = History(
        world, config, code_key=keys.code,
        key_of=lambda tid: terminal_key(keys.terminal_master, tid, versions[tid]),
        next_seqs=await writer.next_seqs(sorted(shards) if shards is not None else range(config.shard_count)),
        counters=await PgSnapshotSource(pool).last_counters(sorted(versions)), shards=shards,
    )
    types: Counter = Counter()
    for accepted in history:
        if sink is not None:
            sink(accepted)
        types[accepted.document["type"]] += 1
        await writer.add(accepted)
        if progress is not None and types.total() % PROGRESS_EVERY == 0:
            progress(types.total())
    await writer.close()
    if progress is not None:
        progress(types.total())
    return types, writer, history, registered


async def _register_only(dsn: str, config: GeneratorConfig) -> int:
    pool = await create_pool(dsn, size_max=2)
    try:
        async with PgFences(pool).offline([]):
            return (await _register(PgTerminals(pool), build_world(config)))[1]
    finally:
        await pool.close()


def _merged(parts: list[LoadSummary], registered: int, elapsed_s: float) -> LoadSummary:
    types: Counter = Counter()
    for part in parts:
        types.update(part.by_type)
    anomalies = parts[0].anomalies
    for part in parts[1:]:
        anomalies["counter_gaps"]["missing_counters"] += part.anomalies["counter_gaps"]["missing_counters"]
        anomalies["duplicates"]["pairs"] += part.anomalies["duplicates"]["pairs"]
    return LoadSummary(sum(types.values()), dict(types), sum(p.batches for p in parts), registered,
                       elapsed_s, anomalies)


async def _register(terminals: PgTerminals, world: World) -> tuple[dict[str, int], int]:
    """Register what is missing; return every terminal's key version and how many were new."""
    for merchant in world.merchants:
        await terminals.add_merchant(merchant.merchant_id, merchant.name)
    known = await terminals.get_many([t.terminal_id for t in world.terminals])
    for t in world.terminals:
        if t.terminal_id in known and known[t.terminal_id].merchant_id != t.merchant_id:
            raise ValueError(f"terminal {t.terminal_id} is registered to {known[t.terminal_id].merchant_id}")
    fresh = [(t.terminal_id, t.merchant_id, t.store_id) for t in world.terminals if t.terminal_id not in known]
    if fresh:
        await terminals.import_terminals(fresh)
    versions = {t.terminal_id: 1 for t in world.terminals}
    versions.update({tid: row.key_version for tid, row in known.items()})
    return versions, len(fresh)


class _NoStream:
    """What ShardRecorder needs of a stream when documents come from a generator, not Redis."""

    async def ensure_group(self, shard: int) -> None:
        return None

    async def acknowledge(self, shard: int, entry_ids: list[bytes], recorded_height: int) -> None:
        return None

    async def report_recorded(self, shard: int, recorded_height: int) -> None:
        return None


class _BatchWriter:
    """Per shard, collects accepted documents and records them with ShardRecorder, one batch at a time.

    A batch closes when full or when the UTC day of acceptance changes, as a ledger writer
    that runs continuously would never hold documents across a day.
    """

    def __init__(self, ledger: PgLedger, code_key: CodeKey, batch_max: int, sign_for: Callable[[int], Sign]):
        self._ledger = ledger
        self._code_key = code_key
        self._batch_max = batch_max
        self._sign_for = sign_for
        self._recorders: dict[int, ShardRecorder] = {}
        self._open: dict[int, list[StreamEntry]] = {}
        self.batches = 0

    async def next_seqs(self, shards) -> dict[int, int]:
        """Per shard, the next free sequence (the recorders load their chain heads here)."""
        for shard in shards:
            recorder = ShardRecorder(shard, _NoStream(), self._ledger, self._code_key, self._batch_max, 0,
                                     self._sign_for(shard))
            await recorder.resync()
            self._recorders[shard] = recorder
        return {shard: r.head.last_seq + 1 for shard, r in self._recorders.items()}

    async def add(self, accepted: GeneratedSale) -> None:
        batch = self._open.setdefault(accepted.shard, [])
        if batch and accepted.accepted_at_ms // 86_400_000 != batch[-1].accepted_at_ms // 86_400_000:
            await self._flush(accepted.shard)
            batch = self._open[accepted.shard]
        batch.append(StreamEntry(b"%d-0" % accepted.seq, accepted.seq, accepted.accepted_at_ms,
                                 (accepted.canonical,)))
        if len(batch) >= self._batch_max:
            await self._flush(accepted.shard)

    async def close(self) -> None:
        """Record what is still open, then sign a checkpoint of every shard that grew."""
        for shard in sorted(self._open):
            await self._flush(shard)
        for recorder in self._recorders.values():
            await recorder.checkpoint_if_due(force=True)

    async def _flush(self, shard: int) -> None:
        batch = self._open.get(shard)
        if not batch:
            return
        if await self._recorders[shard].record(batch) != len(batch):
            raise LedgerRace(f"shard {shard}: another writer recorded part of a generated batch")
        self._open[shard] = []
        self.batches += 1
