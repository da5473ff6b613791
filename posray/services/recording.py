"""Use case `record`: move a shard's captured documents into the hash-chained ledger.

Runs inside a LedgerWriter actor, one ShardRecorder per shard. Exactly-once: the ledger's
chain head (last recorded sequence) is read from PostgreSQL, a batch is written in one
transaction before its entries are acknowledged, and an entry at or below the head is only
acknowledged once the ledger is seen to hold the very same document there (a redelivery).
Anything else at a recorded place is a conflict: the shard stops, the documents are written to
capture_conflicts, the capture store's fence is removed (capture re-fences above the ledger),
and recording goes on only after an operator released them (`posray capture release`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

import orjson

from posray.domain import tlog
from posray.domain.chain import ChainHead, advance, chain_extension, record_bytes, record_document, seal_batch
from posray.domain.codes import CodeKey, make_code
from posray.domain.errors import AuditDivergence, LedgerConflict, LedgerRace, RetryLater, StreamGap
from posray.domain.transaction import document_hash, issued_at_ms
from posray.services.health import checkpoint_age_s
from posray.services.ports import Captured, EntryRow, FenceLedger, Ledger, ShardStream, StreamEntry

log = logging.getLogger(__name__)
# Entries per XREADGROUP: each holds up to one capture call's documents (<= 1,000).
ENTRIES_PER_READ_MAX = 64
# (tree size, root hash, extension lines) -> signed checkpoint note
Sign = Callable[[int, bytes, tuple[str, ...]], str]


@dataclass(frozen=True, slots=True)
class BatchRecorded:
    """A committed batch, for whoever watches the ledger (metrics)."""

    shard: int
    documents: int
    lag_ms_max: int  # from the oldest document's acknowledgement to the commit


Observe = Callable[[BatchRecorded], None]  # called after the commit; must not raise


class ShardRecorder:
    """Records one shard: reads its stream in bounded batches and appends them to the ledger."""

    def __init__(
        self, shard: int, stream: ShardStream, ledger: Ledger, code_key: CodeKey,
        batch_max: int, wait_ms: int, sign: Sign | None = None, checkpoint_interval_s: float = 1.0,
        observe: Observe | None = None, fences: FenceLedger | None = None,
    ):
        self.shard = shard
        self._stream = stream
        self._ledger = ledger
        self._code_key = code_key
        self._batch_max = batch_max
        self._wait_ms = wait_ms
        self._head: ChainHead | None = None
        self._pending = True
        self.recorded = 0
        self.last_batch_ms: int | None = None
        self._sign = sign
        self._checkpoint_interval_s = checkpoint_interval_s
        self._checkpointed = 0
        self._checkpointed_at = 0.0
        # When the latest checkpoint was signed (never signed: when the first batch was recorded).
        self._checkpointed_ms: int | None = None
        self._observe = observe
        self._fences = fences

    @property
    def head(self) -> ChainHead | None:
        return self._head

    async def resync(self) -> None:
        """Reload the chain head from PostgreSQL and re-read pending entries first.

        Called at start and after any failure, because a failed commit reply does not prove
        the commit did not happen.
        """
        await self._stream.ensure_group(self.shard)
        self._head = await self._ledger.head(self.shard)
        # Tell Redis what is recorded (a new Redis, or an ack lost in a crash): the backlog bound.
        await self._stream.report_recorded(self.shard, self._head.last_seq)
        self._checkpointed, self._checkpointed_ms = (
            await self._ledger.latest_checkpoints([self.shard])
        ).get(self.shard, (0, None))
        self._pending = True

    async def step(self) -> int:
        """Read one bounded batch and record it; return the number of documents recorded."""
        if self._head is None:
            await self.resync()
        entries = await self._read()
        recorded = await self.record(entries) if entries else 0
        await self.checkpoint_if_due()
        return recorded

    async def checkpoint_if_due(self, force: bool = False) -> bool:
        """Sign and store a checkpoint of the log if it grew and the interval has passed.

        Bounds the time from recording to a signed tree head to about the interval plus one
        read wait, whether or not more documents arrive.
        """
        size = self._head.last_seq if self._head else 0
        if self._sign is None or size == 0 or size <= self._checkpointed:
            return False
        if not force and time.monotonic() - self._checkpointed_at < self._checkpoint_interval_s:
            return False
        root = tlog.range_hash(0, size, await self._ledger.stored_hashes(self.shard, tlog.range_keys(0, size)))
        now_ms = int(time.time() * 1000)
        note = self._sign(size, root, (chain_extension(self._head.batch_no, self._head.header_hash),))
        await self._ledger.add_checkpoint(self.shard, size, root, note, now_ms)
        self._checkpointed, self._checkpointed_at = size, time.monotonic()
        self._checkpointed_ms = now_ms
        return True

    def checkpoint_age_s(self, now_ms: int) -> float:
        """Seconds since the last signed checkpoint while the log has unsigned leaves, else 0."""
        size = self._head.last_seq if self._head else 0
        return checkpoint_age_s(size, self._checkpointed, self._checkpointed_ms, now_ms)

    async def _read(self) -> list[StreamEntry]:
        """Entries holding about `batch_max` documents: more only while they seem to fit.

        A batch exceeds `batch_max` only when an entry is bigger than the average of the
        entries read before it (an entry holds at most one capture call, <= 1,000 documents).
        """
        if self._pending:
            entries = await self._stream.read(self.shard, 1, None, pending=True)
            if entries:
                return await self._more(entries, True, time.monotonic())
            self._pending = False
        entries = await self._stream.read(self.shard, 1, self._wait_ms, pending=False)
        return await self._more(entries, False, time.monotonic() + self._wait_ms / 1000)

    async def _more(self, entries: list[StreamEntry], pending: bool, deadline: float) -> list[StreamEntry]:
        documents = sum(len(e.documents) for e in entries)
        while entries:
            count = min(ENTRIES_PER_READ_MAX, (self._batch_max - documents) // (documents // len(entries)))
            left_ms = int((deadline - time.monotonic()) * 1000)
            if count <= 0 or (left_ms <= 0 and not pending):
                break
            more = await self._stream.read(self.shard, count, max(1, left_ms), pending, entries[-1].entry_id)
            if not more:
                break
            entries.extend(more)
            documents += sum(len(e.documents) for e in more)
        return entries

    async def record(self, entries: list[StreamEntry]) -> int:
        """Record the documents of `entries` as one batch; acknowledge the entries afterwards.

        Raises:
            StreamGap: the documents do not continue the chain without a gap.
            LedgerConflict: an entry names a recorded place that holds another document.
        """
        head = self._head
        captured = [c for e in entries for c in e.captured()]
        await self._check_redelivered([c for c in captured if c.seq <= head.last_seq])
        fresh = sorted((c for c in captured if c.seq > head.last_seq), key=lambda c: c.seq)
        for expected, doc in enumerate(fresh, start=head.last_seq + 1):
            if doc.seq != expected:
                raise StreamGap(
                    f"shard {self.shard}: sequence {expected} is missing from the stream "
                    f"(next captured is {doc.seq}); recording stops here"
                )
        if fresh:
            await self._append(head, fresh)
        await self._stream.acknowledge(self.shard, [e.entry_id for e in entries], self._head.last_seq)
        return len(fresh)

    async def _check_redelivered(self, old: list[Captured]) -> None:
        """Entries at recorded places must hold the recorded documents, or be released conflicts."""
        if not old:
            return
        stored = await self._ledger.records(self.shard, [c.seq for c in old])
        differing = [c for c in old if c.seq not in stored or record_document(stored[c.seq]) != c.canonical]
        if not differing:
            return
        found = [(c.seq, document_hash(c.canonical), c.canonical, c.accepted_at_ms) for c in differing]
        new, released = found, set()
        if self._fences is not None:
            known = {(x.seq, x.document_hash): x.released for x in await self._fences.conflicts(self.shard)}
            new = [f for f in found if (f[0], f[1]) not in known]
            released = {place for place, done in known.items() if done}
        blocking = [f for f in found if (f[0], f[1]) not in released]
        if not blocking:
            log.warning("shard %d: %d released conflicting entries acknowledged as lost", self.shard, len(found))
            return
        if new:
            # The capture store handed out recorded sequences: stop it until it is fenced again.
            # Only for conflicts not recorded yet: the writer retries a stopped shard every few
            # seconds, and unfencing each time would make capture re-fence each time.
            await self._stream.unfence(self.shard)
            if self._fences is not None:
                await self._fences.add_conflicts(self.shard, new)
        seqs = tuple(f[0] for f in blocking)
        raise LedgerConflict(
            f"shard {self.shard}: captured sequence(s) {_ranges(seqs)} are recorded with other documents "
            f"(the capture store reissued them); recording of this shard stopped. See "
            f"`posray audit --reconcile`; release with `posray capture release {self.shard}`",
            self.shard, seqs)

    async def _append(self, head: ChainHead, fresh: list[Captured]) -> None:
        rows = [self._row(c) for c in fresh]
        header, leaves = seal_batch(head, fresh[0].seq, [r.record for r in rows], int(time.time() * 1000))
        old_size = head.last_seq
        older = await self._ledger.stored_hashes(self.shard, tlog.append_keys(old_size, old_size + len(leaves)))
        nodes = tlog.appended_nodes(old_size, leaves, older)
        await self._ledger.append_batch(header, rows, leaves, nodes)
        self._head = advance(head, header)
        self.recorded += len(fresh)
        self.last_batch_ms = header.recorded_at_ms
        if self._checkpointed_ms is None:  # never signed: unsigned leaves wait from now on
            self._checkpointed_ms = header.recorded_at_ms
        if self._observe is not None:
            lag_ms = int(time.time() * 1000) - min(c.accepted_at_ms for c in fresh)
            self._observe(BatchRecorded(self.shard, len(fresh), max(0, lag_ms)))

    def _row(self, entry: Captured) -> EntryRow:
        doc = orjson.loads(entry.canonical)
        code = make_code(self._code_key, self.shard, entry.seq, document_hash(entry.canonical))
        return EntryRow(
            seq=entry.seq,
            terminal_id=doc["terminal_id"],
            counter=doc["counter"],
            issued_at_ms=issued_at_ms(doc["issued_at"]),
            accepted_at_ms=entry.accepted_at_ms,
            total_minor=doc["total_minor"],
            record=record_bytes(self.shard, entry.seq, code, entry.accepted_at_ms, entry.canonical),
        )


def _ranges(seqs: tuple[int, ...]) -> str:
    """1, 2, 3, 7 -> "1..3, 7" (at most a few ranges, then a count)."""
    parts: list[str] = []
    start = prev = seqs[0]
    for seq in (*seqs[1:], None):
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if seq is not None:
            start = prev = seq
    return ", ".join(parts[:5]) + (f" and {len(parts) - 5} more ranges" if len(parts) > 5 else "")


# How the recording loop answers failures (keep_recording).
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
UNEXPECTED_RETRY_S = 30.0

Report = Callable[[int, "str | None", int], None]  # (shard, error or None, unreleased conflicts)


async def keep_recording(recorder: ShardRecorder, report: Report, sleep=None) -> None:
    """Record a shard for as long as that is safe: the LedgerWriter's loop, one per shard.

    Transient failures (Redis or PostgreSQL away, a writer racing for the same batch, a stream
    gap a failover can leave until pending entries are re-read) are retried with back-off, the
    chain head re-read first. A conflict stops the shard until an operator releases it
    (checked every BACKOFF_MAX_S). Stored bytes that contradict their hashes (AuditDivergence)
    stop it for good. Anything else is unexpected (a bug, or a driver error nobody classified):
    never silent — logged with its traceback every time and reported as the shard's error — and
    retried every UNEXPECTED_RETRY_S, because the capture store keeps the entries and a
    transient oddity must not stop the ledger for good. `report` hears every change of state.
    """
    sleep = sleep or asyncio.sleep
    backoff_s, resync = BACKOFF_FIRST_S, False
    while True:
        try:
            if resync:  # a failed commit reply does not prove the commit did not happen
                await recorder.resync()
                resync = False
            await recorder.step()
            report(recorder.shard, None, 0)
            backoff_s = BACKOFF_FIRST_S
            continue
        except LedgerConflict as e:  # stopped until an operator releases the conflicts
            log.error("ledger shard %d: %s", recorder.shard, e)
            report(recorder.shard, str(e), len(e.seqs))
            wait_s = BACKOFF_MAX_S
        except (RetryLater, LedgerRace, StreamGap) as e:
            if isinstance(e, StreamGap):
                log.error("ledger shard %d: %s", recorder.shard, e)
            report(recorder.shard, f"{type(e).__name__}: {e}", 0)
            wait_s, backoff_s = backoff_s, min(backoff_s * 2, BACKOFF_MAX_S)
        except AuditDivergence as e:  # the stored ledger contradicts itself: no retry mends that
            log.error("ledger shard %d: recording STOPPED: %s", recorder.shard, e)
            report(recorder.shard, f"recording stopped: {e} (run `posray audit`)", 0)
            return
        except Exception as e:  # unexpected: loud, and retried slowly
            log.exception("ledger shard %d: unexpected error, retrying in %s s", recorder.shard, UNEXPECTED_RETRY_S)
            report(recorder.shard, f"unexpected {type(e).__name__}: {e} (retrying every {UNEXPECTED_RETRY_S:g} s; "
                                   "see the LedgerWriter's log)", 0)
            wait_s = UNEXPECTED_RETRY_S
        resync = True
        await sleep(wait_s)
