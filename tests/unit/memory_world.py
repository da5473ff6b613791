"""Capture and recording wired to the in-memory adapters: the unit tests' Redis and PostgreSQL."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from posray.adapters.memory_capture import MemoryCaptureLog, MemoryCaptureStore, MemoryShardStream
from posray.adapters.memory_ledger import MemoryFences, MemoryLedger, MemoryLedgerState
from posray.domain.keys import OperatorKeys, terminal_key
from posray.domain.transaction import Submission
from posray.services.fencing import ShardFences
from posray.services.recording import ShardRecorder
from tests.documents import make_document, submission_of

KEYS = OperatorKeys.from_seed(bytes(range(32)))
SHARD_COUNT = 16
IDEMPOTENCY_TTL_S = 3600
# When the test documents were issued unless a test says otherwise: one fixed time, so that a
# document built twice is the same document.
ISSUED_AT_MS = (int(time.time()) - 60) * 1000


@dataclass
class World:
    """One capture store and one ledger, with the adapters and the fences of one IngestShard."""

    backlog_max: int = 1_000_000
    reservation: int = 1000
    keys_ttl_s: int | None = IDEMPOTENCY_TTL_S
    store: MemoryCaptureStore = field(default_factory=MemoryCaptureStore)
    db: MemoryLedgerState = field(default_factory=MemoryLedgerState)

    def __post_init__(self):
        self.capture = MemoryCaptureLog(self.store, IDEMPOTENCY_TTL_S, self.backlog_max)
        self.stream = MemoryShardStream(self.store)
        self.ledger = MemoryLedger(self.db)
        self.fence_ledger = MemoryFences(self.db)
        self.fences = ShardFences(self.capture, self.fence_ledger, "memory#store", self.reservation,
                                  keys_ttl_s=self.keys_ttl_s)

    def recorder(self, shard: int, batch_max: int = 1000, stream=None, **kwargs) -> ShardRecorder:
        return ShardRecorder(shard, stream or self.stream, self.ledger, KEYS.code, batch_max, wait_ms=50,
                             fences=self.fence_ledger, **kwargs)

    async def record_all(self, shard: int, batch_max: int = 1000, steps_max: int = 100) -> int:
        """Run a fresh recorder until the shard's backlog is empty; return documents recorded."""
        recorder = self.recorder(shard, batch_max)
        recorded = 0
        for _ in range(steps_max):
            recorded += await recorder.step()
            if await self.stream.backlog(shard) == 0:
                return recorded
        raise AssertionError(f"shard {shard} still has a backlog after {steps_max} steps")


def doc(terminal_id: str, counter: int, issued_at_ms: int | None = None, seed=None) -> Submission:
    key = terminal_key(KEYS.terminal_master, terminal_id, 1)
    issued_at = iso(ISSUED_AT_MS if issued_at_ms is None else issued_at_ms)
    return submission_of(make_document(terminal_id, counter, key, issued_at=issued_at, seed=seed), SHARD_COUNT)


def docs(terminal_id: str, counters) -> list[Submission]:
    return [doc(terminal_id, c) for c in counters]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_ms() -> int:
    return int(time.time() * 1000)
