"""Helpers of the contract suites: documents, fences and ledger batches built from the domain alone."""

from __future__ import annotations

import orjson

from posray.domain import tlog
from posray.domain.chain import ChainHead, record_bytes, seal_batch
from posray.domain.codes import CodeKey, make_code
from posray.domain.fence import Fence, FencePlan, PriorFence
from posray.domain.transaction import Submission, document_hash, issued_at_ms
from posray.services.ports import EntryRow, Ledger
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT

TERMINAL_KEY = bytes(range(32))
CODE_KEY = CodeKey(bytes(32))


def subs(terminal_id: str, counters, seed=None) -> list[Submission]:
    return [submission_of(make_document(terminal_id, c, TERMINAL_KEY, seed=seed), SHARD_COUNT) for c in counters]


async def fenced(capture, shard: int, epoch: int = 1, reserved: int = 1000, ledger_seq: int = 0) -> Fence:
    """Install a fence of `epoch` the way ShardFences does: above what the store holds."""
    state = await capture.state(shard)
    fence = Fence(shard, epoch, max(state.counter, state.stream_last), reserved)
    assert await capture.install(shard, state.counter, fence, ledger_seq)
    return fence


def row(shard: int, seq: int, sub: Submission, accepted_at_ms: int) -> EntryRow:
    doc = orjson.loads(sub.canonical)
    code = make_code(CODE_KEY, shard, seq, document_hash(sub.canonical))
    return EntryRow(seq, sub.terminal_id, sub.counter, issued_at_ms(doc["issued_at"]), accepted_at_ms,
                    doc["total_minor"], record_bytes(shard, seq, code, accepted_at_ms, sub.canonical))


async def append(ledger: Ledger, head: ChainHead, documents: list[Submission], recorded_at_ms: int,
                 accepted_at_ms: int = 1_700_000_000_000):
    """Append `documents` as the batch after `head` (as ShardRecorder does); return header, rows, leaves."""
    rows = [row(head.shard, head.last_seq + 1 + i, s, accepted_at_ms) for i, s in enumerate(documents)]
    header, leaves, nodes = await sealed(ledger, head, rows, recorded_at_ms)
    await ledger.append_batch(header, rows, leaves, nodes)
    return header, rows, leaves


async def sealed(ledger: Ledger, head: ChainHead, rows: list[EntryRow], recorded_at_ms: int):
    header, leaves = seal_batch(head, rows[0].seq, [r.record for r in rows], recorded_at_ms)
    old = head.last_seq
    older = await ledger.stored_hashes(head.shard, tlog.append_keys(old, old + len(leaves)))
    return header, leaves, tlog.appended_nodes(old, leaves, older)


def planner(seen: list, keys_lost: bool = False, lost: tuple[int, int] | None = None, reservation: int = 100):
    """A fence plan that records what it was shown: floor at the ledger's height."""

    def plan(ledger_seq: int, prior: PriorFence | None) -> FencePlan:
        seen.append((ledger_seq, prior))
        lost_from, lost_to = lost or (None, None)
        return FencePlan((prior.epoch if prior else 0) + 1, ledger_seq, ledger_seq + reservation,
                         lost_from, lost_to, lost is not None, "contract", keys_lost)

    return plan
