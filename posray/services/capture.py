"""Use cases `append_batch` and `capture_owned`: capture documents in Redis and mint their receipts.

Runs inside an IngestShard actor. The receipt (code, fiscal sign) is returned only after the
Redis write returned, i.e. after the AOF fsync when Redis runs with appendfsync always.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from posray.domain.chain import record_code, record_document
from posray.domain.codes import make_code
from posray.domain.errors import DocumentConflict, NotFenced, PosrayError, StoreRestarted, Unavailable
from posray.domain.fence import Fence
from posray.domain.keys import OperatorKeys, fiscal_sign
from posray.domain.transaction import Submission, document_hash, utc_iso_ms
from posray.services.fencing import ShardFences
from posray.services.ports import CONFLICT, NEW, SAME, Appended, CaptureLog

log = logging.getLogger(__name__)
FENCED_ATTEMPTS_MAX = 4  # re-fence or extend, then call again: a bounded number of times


@dataclass(frozen=True, slots=True)
class Accepted:
    """An acknowledged document: what the terminal prints."""

    code: str
    shard: int
    seq: int
    accepted_at_ms: int
    fiscal_sign: str
    duplicate: bool


async def start_capture(capture: CaptureLog, fences: ShardFences, shards, require_aof: bool) -> None:
    """What an IngestShard checks before its first acknowledgement: a durable store, fenced shards.

    Raises:
        Unavailable: the store does not fsync every write (appendfsync is not `always`) and
            `require_aof` is set; or Redis / PostgreSQL is unreachable.
        NotFenced: a shard cannot be fenced (another store holds it in the ledger).
    """
    durability = await capture.durability()
    if durability != "always":
        if require_aof:
            raise Unavailable(f"Redis is not durable (appendfsync: {durability}); refusing to ack")
        log.warning("Redis durability is %r: acknowledged documents may be lost on a crash", durability)
    for shard in shards:
        await fences.ensure(shard)


async def capture_owned(
    capture: CaptureLog, fences: ShardFences, keys: OperatorKeys, owned: set[int], submissions: list[Submission]
) -> list[Accepted | PosrayError]:
    """Capture submissions of several shards (one Redis call per shard, concurrently).

    Args:
        submissions: in any shard order.

    Returns:
        One result per submission, in order: Accepted or the PosrayError (a conflict, or the
        failure of its whole shard: backlog full, Redis away, shard not owned).
    """
    by_shard: dict[int, list[int]] = {}
    for i, sub in enumerate(submissions):
        by_shard.setdefault(sub.shard, []).append(i)
    results: list = [None] * len(submissions)

    async def one(shard: int, indexes: list[int]) -> None:
        try:
            if shard not in owned:
                raise Unavailable(f"shard {shard} is not owned by this actor")
            out = await append_batch(capture, fences, keys, shard, [submissions[i] for i in indexes])
        except PosrayError as e:
            out = [e] * len(indexes)
        for i, result in zip(indexes, out):
            results[i] = result

    await asyncio.gather(*(one(shard, indexes) for shard, indexes in by_shard.items()))
    return results


async def append_batch(
    capture: CaptureLog, fences: ShardFences, keys: OperatorKeys, shard: int,
    submissions: list[Submission],
) -> list[Accepted | DocumentConflict]:
    """Capture `submissions` (all of `shard`) in one atomic Redis step, under the shard's fence.

    Returns one result per submission: Accepted (new or an identical retry) or a conflict.

    Raises:
        Overloaded: the shard's backlog is full (nothing was written).
        NotFenced: the store could not be fenced against the ledger (nothing acknowledged).
        Unavailable: Redis failed; the caller answers 503 and the terminal retries safely.
    """
    now_ms = int(time.time() * 1000)
    fence = await fences.ensure(shard)
    for _ in range(FENCED_ATTEMPTS_MAX):
        recorded = await fences.recorded_since_keys_lost(shard, fence, submissions)
        fresh = [s for s in submissions if (s.terminal_id, s.counter) not in recorded]
        try:
            outcomes = iter(await _append_fenced(capture, fences, shard, now_ms, fresh, fence) if fresh else ())
            break
        except _KeysLost as e:  # re-fenced onto a store that lost idempotency keys: ask the ledger first
            fence = e.fence
    else:
        raise NotFenced(f"shard {shard}: the capture store kept losing its keys while being fenced", 2)
    results: list[Accepted | DocumentConflict] = []
    for sub in submissions:
        known = recorded.get((sub.terminal_id, sub.counter))
        if known is not None:  # recorded before the store lost its idempotency keys
            results.append(_recorded_answer(keys, shard, sub, known))
            continue
        out = next(outcomes)
        if out.status == CONFLICT:
            results.append(
                DocumentConflict(
                    "counter",
                    f"terminal {sub.terminal_id} already used counter {sub.counter} for another "
                    f"document (accepted at {utc_iso_ms(out.accepted_at_ms)})",
                )
            )
            continue
        code = make_code(keys.code, shard, out.seq, sub.document_hash)
        sign = fiscal_sign(keys.fiscal, code, sub.document_hash, out.accepted_at_ms)
        results.append(Accepted(code, shard, out.seq, out.accepted_at_ms, sign, out.status == SAME))
    return results


def _recorded_answer(keys: OperatorKeys, shard: int, sub: Submission, known) -> Accepted | DocumentConflict:
    """A resend of a recorded document gets its first answer again; another document, a conflict."""
    if document_hash(record_document(known.record)) != sub.document_hash:
        return DocumentConflict(
            "counter", f"terminal {sub.terminal_id} already used counter {sub.counter} for another "
                       f"document (accepted at {utc_iso_ms(known.accepted_at_ms)})")
    code = record_code(keys.code, shard, known.seq, known.record)
    sign = fiscal_sign(keys.fiscal, code, sub.document_hash, known.accepted_at_ms)
    return Accepted(code, shard, known.seq, known.accepted_at_ms, sign, True)


class _KeysLost(Exception):
    """A re-fence found the store without idempotency keys it held: check the ledger, then call again."""

    def __init__(self, fence: Fence):
        super().__init__(fence)
        self.fence = fence


async def _append_fenced(
    capture: CaptureLog, fences: ShardFences, shard: int, now_ms: int, submissions: list[Submission],
    fence: Fence,
) -> list[Appended]:
    for _ in range(FENCED_ATTEMPTS_MAX):
        try:
            outcome = await capture.append(shard, now_ms, submissions, fence)
        except NotFenced as e:
            if isinstance(e, StoreRestarted):  # every shard's fence is suspect, not only this one
                fences.suspect_all()
            checked = fence
            fence = await fences.refence(shard, fence, str(e))
            if fence.keys_lost_at_ms != checked.keys_lost_at_ms:
                raise _KeysLost(fence) from None
            continue
        if isinstance(outcome, int):  # the reservation is used up: extend it, call again
            fence = await fences.extend(shard, fence, outcome + len(submissions))
            continue
        new = [o.seq for o in outcome if o.status == NEW]
        if new and not fences.issued(shard, fence, new[0], new[-1]):
            await fences.refence(shard, fence, "the store reissued sequences", reissued_from=new[0])
            raise NotFenced(f"shard {shard}: the capture store handed out sequences {new[0]}..{new[-1]} "
                            "a second time (rewound behind posray's back); not acknowledged, retry", 1)
        return outcome
    raise NotFenced(f"shard {shard}: the capture store could not be fenced against the ledger", 2)
