"""The bench's view of the ledger: live stream backlog, draining, and the exactly-once check."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np

from posray.adapters.redis_capture import connect
from posray.adapters.redis_keys import recorded_key, seq_key
from tooling.bench.workload import Series, place, terminal_id

EXAMPLES_MAX = 5


class LedgerMonitor:
    """Samples every shard's stream backlog (captured, not yet recorded) and captured height."""

    def __init__(self, redis_url: str, key_prefix: str, shard_count: int):
        self._client = connect(redis_url)
        self._prefix, self._shards = key_prefix, range(shard_count)

    async def sample(self) -> tuple[int, int]:
        """(documents in the streams, documents ever captured) over all shards."""
        async with self._client.pipeline(transaction=False) as pipe:
            for shard in self._shards:
                pipe.get(seq_key(self._prefix, shard))
                pipe.get(recorded_key(self._prefix, shard))
            values = await pipe.execute()
        captured = [int(v or 0) for v in values[0::2]]
        recorded = [int(v or 0) for v in values[1::2]]
        return sum(max(0, c - r) for c, r in zip(captured, recorded)), sum(captured)

    async def wait_drained(self, timeout_s: float, on_sample) -> bool:
        """Sample once a second until every stream is empty; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            backlog, captured = await self.sample()
            on_sample(backlog, captured)
            if backlog == 0:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(1.0)

    async def close(self) -> None:
        await self._client.aclose()


@dataclass
class Recorded:
    """This run's documents as found in PostgreSQL, and the check against the acks."""

    exactly_once: bool
    counts: dict
    examples: dict
    accepted_ms: np.ndarray = field(repr=False)  # epoch ms of acceptance, per recorded document
    lag_ms: np.ndarray = field(repr=False)  # recorded_at - accepted_at, per recorded document


async def check_exactly_once(pool, series: Series, first_doc: int, acks, unanswered: set[int]) -> Recorded:
    """Check that each acknowledged document is in the ledger exactly once, at its (shard, seq).

    Args:
        acks: (document index, shard, seq) arrays of every acknowledgement of this run.
        unanswered: documents sent without an answer: they may or may not be recorded.

    Nothing else of this run may be recorded: the series' entries from `first_doc` on must be
    exactly the acknowledged ones (plus, possibly, some unanswered ones).
    """
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e.shard, e.seq, e.terminal_id, e.counter,"
            " (extract(epoch FROM e.accepted_at) * 1000)::bigint AS accepted_ms,"
            " (extract(epoch FROM b.recorded_at) * 1000)::bigint AS recorded_ms"
            " FROM ledger_entries e JOIN ledger_batches b ON b.shard = e.shard AND b.batch_no = e.batch_no"
            " WHERE e.terminal_id LIKE $1 AND e.counter >= $2",
            f"BENCH-{series.series_id}-%", place(first_doc, series.terminals)[1],
        )
    recorded, duplicates, times = {}, [], []
    for shard, seq, tid, counter, accepted_ms, recorded_ms in rows:
        j = (counter - 1) * series.terminals + int(tid.rsplit("-", 1)[1])
        if j < first_doc:
            continue  # an earlier run's document
        if j in recorded:
            duplicates.append(j)
            continue
        recorded[j] = (shard, seq)
        times.append((accepted_ms, recorded_ms - accepted_ms))
    checked = _compare(recorded, duplicates, acks, unanswered, np.array(times, dtype=np.int64).reshape(-1, 2))
    for name, docs in checked.examples.items():
        checked.examples[name] = [_name(series, j) for j in docs]
    return checked


def _name(series: Series, j: int) -> str:
    i, counter = place(j, series.terminals)
    return f"{terminal_id(series.series_id, i)} counter {counter}"


def _compare(recorded: dict, duplicates: list, acks, unanswered: set[int], times: np.ndarray) -> Recorded:
    docs, shards, seqs = acks
    acked = dict(zip(docs, zip(shards, seqs)))
    acked_twice = len(docs) - len(acked)
    missing = [j for j in acked if j not in recorded]
    moved = [j for j, place_ in acked.items() if j in recorded and recorded[j] != place_]
    extra = [j for j in recorded if j not in acked]
    unknown = [j for j in extra if j in unanswered]
    unexpected = [j for j in extra if j not in unanswered]
    counts = {
        "acknowledged": len(acked), "recorded": len(recorded), "missing": len(missing),
        "at_other_shard_seq": len(moved), "recorded_twice": len(duplicates),
        "acknowledged_twice": acked_twice, "unexpected": len(unexpected),
        "unanswered_sent": len(unanswered), "unanswered_recorded": len(unknown),
    }
    examples = {name: values[:EXAMPLES_MAX] for name, values in
                (("missing", missing), ("at_other_shard_seq", moved), ("recorded_twice", duplicates),
                 ("unexpected", unexpected)) if values}
    ok = not (missing or moved or duplicates or unexpected or acked_twice)
    return Recorded(ok, counts, examples, times[:, 0], times[:, 1])
