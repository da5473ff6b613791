"""Use case `audit_shard`: recompute every hash of one shard's ledger and report the first divergence.

One pass over the shard in sequence order, in bounded pages, with O(log n) state: each row's
leaf hash is recomputed from its stored record bytes and the record is checked against the row
(shard, seq, receipt code, indexed columns); batch headers must cover the rows contiguously,
carry the Merkle root of their leaves and their own hash, and chain from the genesis hash; the
shard's transparency-log tree is grown leaf by leaf as a compact frontier (the roots of its
perfect subtrees), so every stored log node is compared when the leaf that completes it passes,
and every checkpoint when the stream reaches its tree size: its note must carry the operator's
signature and the shard's origin, and its root must equal the recomputed root.

Consistency between successive checkpoints is not checked with consistency proofs: it holds by
construction, because every checkpoint's root is compared with the root of one and the same
recomputed tree at that checkpoint's size, and a tree that only grows is consistent with each of
its prefixes. Rows, batches, log nodes or checkpoints left over when the rows end (documents
without a batch, batches without documents, a truncated tail) are divergences too.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from typing import Awaitable, Callable, NoReturn, Protocol

from posray.adapters.pg_audit import AuditBatch, AuditCheckpoint, AuditRow
from posray.domain.chain import GENESIS_HASH, BatchHeader
from posray.domain.chain import record_code
from posray.domain.codes import CodeKey
from posray.domain.merkle import leaf_hash
from posray.domain.chain import parse_chain_extension
from posray.domain.note import NoteError, NoteVerifier, open_checkpoint
from posray.domain.frontier import Frontier
from posray.domain.tlog import STRIDE
from posray.domain.errors import AuditDivergence
from posray.services.audit_archive import ArchivedRows
from posray.services.audit_records import differing_columns, is_canonical, parse_record

PAGE_ROWS_DEFAULT = 5000
SIDE_PAGE_ROWS = 1000  # batches, log nodes and checkpoints are fewer than rows
_KEY_MIN = -(1 << 63)  # cursors start below any stored key, so rows with keys < 1 are seen too


class LedgerReader(Protocol):
    """What the audit reads (posray.adapters.pg_audit.PgAuditSnapshot)."""

    async def rows(self, shard: int, after_seq: int, rows_max: int) -> list[AuditRow]: ...
    async def batches(self, shard: int, after_batch_no: int, rows_max: int) -> list[AuditBatch]: ...
    async def nodes(self, shard: int, level: int, after_idx: int, rows_max: int) -> list[tuple[int, bytes]]: ...
    async def stray_node(self, shard: int, leaves: int, stride: int) -> tuple[int, int] | None: ...
    async def checkpoints(self, shard: int, after_size: int, rows_max: int) -> list[AuditCheckpoint]: ...


@dataclass(frozen=True, slots=True)
class Divergence:
    """Where the stored ledger first contradicts itself: a kind for programs, a sentence for people."""

    shard: int
    kind: str
    what: str
    seq: int | None = None
    batch_no: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ShardAudit:
    """What the audit of one shard checked, and its first divergence (None: all verified)."""

    shard: int
    documents: int
    batches: int
    checkpoints: int
    nodes: int
    first_divergence: Divergence | None
    archived: int = 0  # documents of detached days, verified from the tiles archive
    archived_days: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.first_divergence is None

    def to_json(self) -> dict:
        out = asdict(self)
        out["first_divergence"] = self.first_divergence.to_json() if self.first_divergence else None
        return out


class _Diverged(Exception):
    def __init__(self, divergence: Divergence):
        super().__init__(divergence.what)
        self.divergence = divergence


class _Cursor:
    """Keyset pages of one ordered stream, `page_rows` at a time."""

    def __init__(self, fetch: Callable[[int, int], Awaitable[list]], key: Callable, page_rows: int):
        self._fetch, self._key, self._page_rows = fetch, key, page_rows
        self._page: list = []
        self._at = 0
        self._after = _KEY_MIN
        self._done = False

    async def peek(self):
        if self._at == len(self._page) and not self._done:
            self._page, self._at = await self._fetch(self._after, self._page_rows), 0
            self._done = len(self._page) < self._page_rows
            if self._page:
                self._after = self._key(self._page[-1])
        return self._page[self._at] if self._at < len(self._page) else None

    async def next(self):
        item = await self.peek()
        if item is not None:
            self._at += 1
        return item


async def audit_shard(
    reader: LedgerReader, shard: int, verifier: NoteVerifier, origin: str,
    code_key: CodeKey | None = None, page_rows: int = PAGE_ROWS_DEFAULT,
    progress: Callable[[int], None] | None = None,
) -> ShardAudit:
    """Audit one shard; stop at its first divergence.

    Args:
        reader: paged reads of one consistent snapshot of the ledger.
        shard: the shard to audit.
        verifier: the operator's checkpoint key.
        origin: the origin line the shard's checkpoints must carry (Settings.log_origin).
        code_key: when given, each record's receipt code is recomputed too.
        page_rows: rows per read; memory stays bounded by it.
        progress: called with the documents checked so far after each page.

    Returns:
        The counts of what was verified and the first divergence, if any.
    """
    archived = reader if isinstance(reader, ArchivedRows) else None
    auditor = _ShardAuditor(reader, shard, verifier, origin, code_key, page_rows)
    try:
        await auditor.run(progress)
        divergence = None
    except _Diverged as e:
        divergence = e.divergence
    except AuditDivergence as e:  # the tiles archive lacks a detached day's records
        divergence = Divergence(shard, "tiles_archive", str(e), auditor.tree.size + 1)
    if archived is not None and divergence is not None and (day := archived.day_of(shard, divergence.seq)):
        divergence = replace(divergence, what=f"{divergence.what} (seq {divergence.seq} is in detached day {day}, "
                                              "read from the tiles archive)")
    return ShardAudit(shard, auditor.tree.size, auditor.batches, auditor.checkpoints, auditor.nodes, divergence,
                      archived.archived_up_to(shard, auditor.tree.size) if archived else 0,
                      tuple(str(d) for d in archived.days) if archived else ())


class _ShardAuditor:
    """The state of one pass: the open batch, the two frontiers and the side cursors."""

    def __init__(self, reader, shard, verifier, origin, code_key, page_rows):
        self._reader, self._shard, self._page_rows = reader, shard, page_rows
        self._verifier, self._origin, self._code_key = verifier, origin, code_key
        self._batches = _Cursor(functools.partial(reader.batches, shard), lambda b: b.batch_no, SIDE_PAGE_ROWS)
        self._checkpoints = _Cursor(functools.partial(reader.checkpoints, shard), lambda c: c.tree_size,
                                    SIDE_PAGE_ROWS)
        self._node_cursors: dict[int, _Cursor] = {}
        self.tree = Frontier()
        self._batch: AuditBatch | None = None
        self._batch_tree = Frontier()
        self._prev_hash = GENESIS_HASH
        self.batches = self.checkpoints = self.nodes = 0

    def _diverge(self, kind: str, what: str, seq: int | None = None, batch_no: int | None = None) -> NoReturn:
        raise _Diverged(Divergence(self._shard, kind, what, seq, batch_no))

    async def run(self, progress) -> None:
        await self._pass_checkpoints()  # a checkpoint of the empty tree, if any
        after = _KEY_MIN
        # Until an empty page: a short one may end a detached day read from the archive.
        while page := await self._reader.rows(self._shard, after, self._page_rows):
            for row in page:
                await self._row(row)
            after = page[-1].seq
            if progress:
                progress(self.tree.size)
        await self._finish()

    async def _row(self, row: AuditRow) -> None:
        expected = self.tree.size + 1
        if row.seq < expected:
            self._diverge("sequence_out_of_range", f"row seq {row.seq} is not a sequence (they start at 1)",
                          row.seq)
        if row.seq != expected:
            self._diverge("sequence_missing", f"sequence {expected} missing (the next stored row is seq "
                          f"{row.seq})", expected, self._batch.batch_no if self._batch else None)
        batch = await self._batch_of(row)
        self._check_record(row)
        self._batch_tree.append(row.leaf_hash)
        for level, index, value in self.tree.append(row.leaf_hash):
            if level % STRIDE == 0:
                await self._check_node(level, index, value)
        if row.seq == batch.last_seq:
            self._close_batch(batch)
        await self._pass_checkpoints()

    async def _batch_of(self, row: AuditRow) -> AuditBatch:
        if self._batch is None:
            batch = await self._batches.next()
            if batch is None:
                self._diverge("document_without_batch", f"document seq {row.seq} has no batch (the batches "
                              f"end at seq {self.tree.size})", row.seq)
            self._open_batch(batch)
        batch = self._batch
        if row.batch_no != batch.batch_no or row.leaf_index != row.seq - batch.first_seq:
            self._diverge("batch_membership", f"seq {row.seq} is stored as batch {row.batch_no} leaf "
                          f"{row.leaf_index}, but batch {batch.batch_no} covers seqs {batch.first_seq}.."
                          f"{batch.last_seq}", row.seq, batch.batch_no)
        return batch

    def _open_batch(self, batch: AuditBatch) -> None:
        number, first = self.batches, self.tree.size + 1
        if batch.batch_no != number:
            self._diverge("batch_missing", f"batch {number} missing (the next stored batch is "
                          f"{batch.batch_no})", first, number)
        if batch.first_seq != first or batch.last_seq < batch.first_seq:
            self._diverge("batch_range", f"batch {number} covers seqs {batch.first_seq}..{batch.last_seq}, "
                          f"but the next sequence is {first}", first, number)
        header = BatchHeader(self._shard, batch.batch_no, batch.first_seq, batch.last_seq,
                             batch.merkle_root, batch.prev_hash, batch.recorded_at_ms)
        if header.hash() != batch.header_hash:
            self._diverge("batch_header_hash", f"batch {number} header_hash does not match its header",
                          first, number)
        if batch.prev_hash != self._prev_hash:
            previous = f"batch {number - 1}'s header hash" if number else "the genesis hash"
            self._diverge("batch_prev_hash", f"batch {number} prev_hash does not match {previous}", first, number)
        self._batch = batch

    def _close_batch(self, batch: AuditBatch) -> None:
        if self._batch_tree.root() != batch.merkle_root:
            self._diverge("batch_merkle_root", f"batch {batch.batch_no} merkle_root does not match the "
                          f"root of its {batch.last_seq - batch.first_seq + 1} leaves", batch.last_seq,
                          batch.batch_no)
        self.batches += 1
        self._prev_hash = batch.header_hash
        self._batch, self._batch_tree = None, Frontier()

    def _check_record(self, row: AuditRow) -> None:
        seq = row.seq
        if leaf_hash(row.record) != row.leaf_hash:
            self._diverge("leaf_hash", f"leaf hash of seq {seq} does not match its record", seq, row.batch_no)
        record = parse_record(row.record)
        if record is None:
            self._diverge("record_unparsable", f"record of seq {seq} does not parse", seq, row.batch_no)
        if not is_canonical(record, row.record):
            self._diverge("record_not_canonical", f"record of seq {seq} is not canonical JSON", seq, row.batch_no)
        if record["shard"] != self._shard or record["seq"] != seq:
            self._diverge("record_position", f"record of seq {seq} names shard {record['shard']} seq "
                          f"{record['seq']}", seq, row.batch_no)
        if self._code_key is not None and record["code"] != record_code(self._code_key, self._shard, seq, row.record):
            self._diverge("record_code", f"record of seq {seq} carries code {record['code']}, not the code "
                          f"issued for its document at shard {self._shard} seq {seq}", seq, row.batch_no)
        differing = differing_columns(row, record)
        if differing:
            self._diverge("row_columns", f"ledger row columns ({'/'.join(differing)}) of seq {seq} differ "
                          "from the record", seq, row.batch_no)

    async def _check_node(self, level: int, index: int, value: bytes) -> None:
        cursor = self._node_cursors.get(level)
        if cursor is None:
            fetch = functools.partial(self._reader.nodes, self._shard, level)
            cursor = self._node_cursors[level] = _Cursor(fetch, lambda n: n[0], SIDE_PAGE_ROWS)
        stored = await cursor.next()
        seq = self.tree.size
        if stored is None or stored[0] != index:
            self._diverge("tlog_node_missing", f"tlog node (level {level}, index {index}) missing", seq)
        if stored[1] != value:
            self._diverge("tlog_node", f"tlog node (level {level}, index {index}) differs from the "
                          "recomputed subtree hash", seq)
        self.nodes += 1

    async def _pass_checkpoints(self) -> None:
        size = self.tree.size
        while (checkpoint := await self._checkpoints.peek()) is not None and checkpoint.tree_size <= size:
            await self._checkpoints.next()
            self._check_checkpoint(checkpoint)
            self.checkpoints += 1

    def _check_checkpoint(self, checkpoint: AuditCheckpoint) -> None:
        size, seq = checkpoint.tree_size, self.tree.size or None
        try:
            signed = open_checkpoint(self._verifier, checkpoint.note, self._origin)
        except NoteError as e:
            self._diverge("checkpoint_note", f"checkpoint at size {size}: {e}", seq)
        if signed.tree_size != size:
            self._diverge("checkpoint_row", f"checkpoint at size {size}: its signed note is for size "
                          f"{signed.tree_size}", seq)
        if signed.root_hash != self.tree.root():
            self._diverge("checkpoint_root", f"checkpoint at size {size}: root differs from the recomputed "
                          "tree", seq)
        if checkpoint.root_hash != signed.root_hash:
            self._diverge("checkpoint_row", f"checkpoint at size {size}: the stored root_hash differs from "
                          "its signed note", seq)
        chain = parse_chain_extension(signed.extensions)
        if chain is None:
            self._diverge("checkpoint_chain", f"checkpoint at size {size}: no posray-chain line binds the "
                          "batch-header chain", seq)
        if chain != (self.batches - 1, self._prev_hash):
            self._diverge("checkpoint_chain", f"checkpoint at size {size}: signed chain head is batch "
                          f"{chain[0]}, the recomputed chain ends at batch {self.batches - 1} with another "
                          "header hash" if chain[0] == self.batches - 1 else f"checkpoint at size {size}: "
                          f"signed chain head is batch {chain[0]}, recomputed batch {self.batches - 1}", seq)

    async def _finish(self) -> None:
        size = self.tree.size
        if self._batch is not None:
            b = self._batch
            self._diverge("sequence_missing", f"sequence {size + 1} missing: batch {b.batch_no} covers seqs "
                          f"{b.first_seq}..{b.last_seq} but the rows end at seq {size}", size + 1, b.batch_no)
        batch = await self._batches.next()
        if batch is not None:
            self._diverge("batch_without_documents", f"batch {batch.batch_no} (seqs {batch.first_seq}.."
                          f"{batch.last_seq}) has no documents: the rows end at seq {size}",
                          size + 1, batch.batch_no)
        stray = await self._reader.stray_node(self._shard, size, STRIDE)
        if stray is not None:
            self._diverge("tlog_node_stray", f"tlog node (level {stray[0]}, index {stray[1]}) is not part "
                          f"of the {size}-leaf tree (the rows end at seq {size})", size + 1)
        checkpoint = await self._checkpoints.next()
        if checkpoint is not None:
            self._diverge("checkpoint_beyond_log", f"checkpoint at size {checkpoint.tree_size} claims "
                          f"{checkpoint.tree_size} leaves, the log holds only {size} (tail truncated)",
                          size + 1)
