"""Use case `load`: record a generated history in the ledger, through the ledger-writing path.

History is older than the edge's 30-day upload window, so it bypasses the HTTP edge and Redis,
but not the ledger: rows are built with record_bytes, sealed with seal_batch and appended with
PgLedger.append_batch, as ShardRecorder does, so the chain audits like any other. Every
document was checked (wire types, business rules at its acceptance time) by the generator.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from posray.adapters.keyfile import load_keys
from posray.adapters.pg import create_pool
from posray.adapters.pg_ledger import EntryRow, PgLedger
from posray.adapters.pg_snapshot import PgSnapshotSource
from posray.adapters.pg_terminals import PgTerminals
from posray.analytics.generator import Accepted, GeneratorConfig, History, World, build_world
from posray.domain.chain import ChainHead, advance, record_bytes, seal_batch
from posray.domain.keys import terminal_key
from posray.domain.transaction import issued_at_ms

# The ledger writer's own batching delay: a batch is recorded this long after its last document.
_RECORD_DELAY_MS = 200


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
    dsn: str, seed_file: Path, config: GeneratorConfig, *, batch_max: int = 2000, workers: int = 1,
    sink: Callable[[Accepted], None] | None = None,
) -> LoadSummary:
    """Generate `config`'s history and record it; see load_history.

    Args:
        workers: processes generating and writing disjoint sets of shards in parallel (the
            documents are the same whatever the number); `sink` needs workers=1.
    """
    if workers <= 1:
        return asyncio.run(load_history(dsn, seed_file, config, batch_max=batch_max, sink=sink))
    if sink is not None:
        raise ValueError("a sink sees documents in one process only: use workers=1")
    started = time.perf_counter()
    registered = asyncio.run(_register_only(dsn, config))
    groups = [frozenset(range(w, config.shard_count, workers)) for w in range(min(workers, config.shard_count))]
    with ProcessPoolExecutor(len(groups), mp_context=multiprocessing.get_context("spawn")) as pool:
        parts = list(pool.map(_load_part, [(dsn, seed_file, config, batch_max, g) for g in groups]))
    return _merged(parts, registered, time.perf_counter() - started)


def _load_part(args) -> LoadSummary:
    dsn, seed_file, config, batch_max, shards = args
    return asyncio.run(load_history(dsn, seed_file, config, batch_max=batch_max, shards=shards))


async def load_history(
    dsn: str, seed_file: Path, config: GeneratorConfig, *, batch_max: int = 2000,
    sink: Callable[[Accepted], None] | None = None, shards: frozenset[int] | None = None,
) -> LoadSummary:
    """Register the world's merchants and terminals, then record its history batch by batch.

    A second load of the same world (a later window) continues each terminal's counters and
    each shard's chain. `sink` sees every document as it is recorded (tests keep them);
    `shards` limits the load to the documents of those shards.

    Raises:
        ValueError: a world terminal id is registered to another merchant.
        LedgerCorrupted: another writer advanced a shard during the load.
    """
    started = time.perf_counter()
    keys = load_keys(seed_file)
    world = build_world(config)
    shard_ids = sorted(shards) if shards is not None else range(config.shard_count)
    pool = await create_pool(dsn, size_max=2)
    try:
        versions, registered = await _register(PgTerminals(pool), world)
        ledger, source = PgLedger(pool), PgSnapshotSource(pool)
        heads = {s: await ledger.head(s) for s in shard_ids}
        history = History(
            world, config, code_key=keys.code,
            key_of=lambda tid: terminal_key(keys.terminal_master, tid, versions[tid]),
            next_seqs={s: h.last_seq + 1 for s, h in heads.items()},
            counters=await source.last_counters(sorted(versions)), shards=shards,
        )
        writer = _BatchWriter(ledger, heads, batch_max)
        types: Counter = Counter()
        for accepted in history:
            if sink is not None:
                sink(accepted)
            types[accepted.document["type"]] += 1
            await writer.add(accepted)
        await writer.flush_all()
    finally:
        await pool.close()
    return LoadSummary(sum(types.values()), dict(types), writer.batches, registered,
                       time.perf_counter() - started, history.anomalies)


async def _register_only(dsn: str, config: GeneratorConfig) -> int:
    pool = await create_pool(dsn, size_max=1)
    try:
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


class _BatchWriter:
    """Per shard, collects accepted documents and appends them as chained batches.

    A batch closes when full or when the UTC day of acceptance changes, as a ledger writer
    that runs continuously would never hold documents across a day.
    """

    def __init__(self, ledger: PgLedger, heads: dict[int, ChainHead], batch_max: int):
        self._ledger = ledger
        self._heads = heads
        self._batch_max = batch_max
        self._open: dict[int, list[Accepted]] = {}
        self.batches = 0

    async def add(self, accepted: Accepted) -> None:
        batch = self._open.setdefault(accepted.shard, [])
        if batch and accepted.accepted_at_ms // 86_400_000 != batch[-1].accepted_at_ms // 86_400_000:
            await self._flush(accepted.shard)
            batch = self._open[accepted.shard]
        batch.append(accepted)
        if len(batch) >= self._batch_max:
            await self._flush(accepted.shard)

    async def flush_all(self) -> None:
        for shard in sorted(self._open):
            await self._flush(shard)

    async def _flush(self, shard: int) -> None:
        batch = self._open.get(shard)
        if not batch:
            return
        head = self._heads[shard]
        if batch[0].seq != head.last_seq + 1:
            raise ValueError(f"shard {shard}: batch starts at {batch[0].seq}, head is {head.last_seq}")
        rows = [_row(a) for a in batch]
        header, leaves = seal_batch(head, batch[0].seq, [r.record for r in rows],
                                    batch[-1].accepted_at_ms + _RECORD_DELAY_MS)
        await self._ledger.append_batch(header, rows, leaves)
        self._heads[shard] = advance(head, header)
        self._open[shard] = []
        self.batches += 1


def _row(accepted: Accepted) -> EntryRow:
    doc = accepted.document
    return EntryRow(
        seq=accepted.seq,
        terminal_id=doc["terminal_id"],
        counter=doc["counter"],
        issued_at_ms=issued_at_ms(doc["issued_at"]),
        accepted_at_ms=accepted.accepted_at_ms,
        total_minor=doc["total_minor"],
        record=record_bytes(accepted.shard, accepted.seq, accepted.code, accepted.accepted_at_ms, accepted.canonical),
    )
