"""The ports of the use cases: what capture, fencing, recording and lookup need of their stores.

Each Protocol names what the services call on one store; the Redis and PostgreSQL adapters
(posray.adapters.redis_*, pg_*) and the in-memory ones (posray.adapters.memory_*) implement
them structurally, and tests/contract runs the same assertions against both. The values that
cross a port (Appended, StreamEntry, EntryRow, ...) are defined by the adapters and exported
here, so a service imports its ports and their values from this one module.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Callable, Protocol

from posray.adapters.pg_fences import Conflict, FenceState, Loss, Recorded
from posray.adapters.pg_ledger import EntryRow, RecordedEntry
from posray.adapters.redis_capture import CONFLICT, NEW, SAME, Appended
from posray.adapters.redis_stream import Captured, StreamEntry
from posray.domain.chain import BatchHeader, ChainHead
from posray.domain.fence import Fence, FencePlan, PriorFence, StoreState
from posray.domain.retention import DayPartition
from posray.domain.transaction import Submission
from posray.domain.witness import LogState

__all__ = [
    "CONFLICT", "NEW", "SAME", "Appended", "CaptureLog", "Captured", "Conflict", "EntryRow", "FenceLedger",
    "FenceState", "FenceStore", "Ledger", "Loss", "Plan", "ReceiptIndex", "Recorded", "RecordedEntry", "ShardStream",
    "StreamEntry", "TileSink", "TileSource", "WitnessClient", "WitnessState",
]

Plan = Callable[[int, PriorFence | None], FencePlan]  # (ledger height, prior fence) -> the next fence


class FenceStore(Protocol):
    """The capture store's side of fencing (posray.services.fencing)."""

    async def state(self, shard: int) -> StoreState:
        """The shard's counter, last stream sequence and fence, as the store holds them now."""

    async def install(self, shard: int, seen_counter: int, fence: Fence, ledger_seq: int) -> bool:
        """Install `fence` (counter raised to its floor) unless the counter moved since it was read."""

    async def extend(self, shard: int, epoch: int, reserved: int) -> bool:
        """Raise the reservation of `epoch`; False when the store carries another fence."""


class CaptureLog(FenceStore, Protocol):
    """The capture store: one atomic, fenced, idempotent append per batch of a shard (capture.lua)."""

    async def append(self, shard: int, accepted_at_ms: int, submissions: list[Submission],
                     fence: Fence) -> list[Appended] | int:
        """One Appended per submission, or the reserved sequence the new documents would pass.

        Raises:
            Overloaded: the backlog would exceed its maximum (nothing written).
            NotFenced: the store does not carry `fence` (nothing written); StoreRestarted when
                its scripts are gone (every shard's fence is suspect).
            Unavailable: the store is unreachable or did not replicate the write in time.
        """

    async def pending(self, shard: int, seq: int) -> tuple[int, bytes] | None:
        """(accepted_at_ms, canonical document) of a captured sequence still in the stream."""

    async def seq_of(self, shard: int, terminal_id: str, counter: int) -> int | None:
        """The sequence captured for (terminal, counter) within the idempotency window."""

    async def durability(self) -> str:
        """"always" when every acknowledged write is fsynced, else why not."""


class ShardStream(Protocol):
    """The ledger's side of the capture store: a consumer group per shard stream."""

    async def ensure_group(self, shard: int) -> None:
        """Create the ledger's consumer group (and the stream) if missing."""

    async def read(self, shard: int, count: int, block_ms: int | None, pending: bool,
                   after: bytes | None = None) -> list[StreamEntry]:
        """Up to `count` entries: this consumer's delivered, unacknowledged ones, or new ones."""

    async def acknowledge(self, shard: int, entry_ids: list[bytes], recorded_height: int) -> None:
        """Acknowledge and delete recorded entries and raise the recorded height, atomically."""

    async def report_recorded(self, shard: int, recorded_height: int) -> None:
        """Raise the recorded height the store knows (it bounds the backlog)."""

    async def unfence(self, shard: int) -> None:
        """Remove the shard's capture fence: capture refuses until it is fenced again."""

    async def backlog(self, shard: int) -> int:
        """Documents captured and not yet recorded."""

    async def backlogs(self, shards: list[int]) -> dict[int, int]:
        """Documents captured and not yet recorded, per shard."""

    async def oldest_accepted_ms(self, shard: int) -> int | None:
        """When the oldest unrecorded document was acknowledged (None: none left)."""

    async def captured_height(self, shard: int) -> int:
        """The last sequence assigned in this shard (0 when none)."""

    async def ping(self) -> None:
        """Raises Unavailable unless the store answers."""


class Ledger(Protocol):
    """The hash-chained ledger: batches, their entries, log hashes and signed checkpoints."""

    async def head(self, shard: int) -> ChainHead:
        """The chain head of `shard` (genesis when empty)."""

    async def append_batch(self, header: BatchHeader, rows: list[EntryRow], leaves: list[bytes],
                           nodes: dict[tuple[int, int], bytes] | None = None) -> None:
        """Write a batch header, its rows and the log subtrees it completes, all or nothing.

        Raises:
            LedgerRace: the batch number or a sequence is already recorded (nothing written).
        """

    async def stored_hashes(self, shard: int, keys: set[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Log hashes by (level, index) of those of `keys` that are stored."""

    async def hash_range(self, shard: int, level: int, start: int, count: int) -> list[bytes]:
        """Stored log hashes at `level` with indexes start, start + 1, ... (at most `count`), in
        order, up to the first one not stored (level 0: leaf hashes)."""

    async def record_range(self, shard: int, first_seq: int, count: int) -> list[bytes]:
        """Records of sequences first_seq, first_seq + 1, ... (at most `count`), in order, up to
        the first one not recorded."""

    async def add_checkpoint(self, shard: int, tree_size: int, root: bytes, note: str, created_ms: int) -> None:
        """Store a signed checkpoint (the same size twice is ignored)."""

    async def checkpoint(self, shard: int, tree_size: int | None = None,
                         cosigned_min: int = 0) -> tuple[int, bytes, str] | None:
        """(tree_size, root, note) of the latest checkpoint with at least `cosigned_min` witness
        cosignatures stored, or of the one at `tree_size` (the note as the log signed it)."""

    async def add_cosignature(self, shard: int, tree_size: int, witness: str, line: str, created_ms: int) -> None:
        """Store a witness's cosignature line of the checkpoint at `tree_size` (once per witness and size)."""

    async def cosignatures(self, shard: int, tree_size: int) -> list[str]:
        """The stored cosignature lines of the checkpoint at `tree_size`, by witness."""

    async def cosigned_size(self, shard: int, witness: str) -> int:
        """The largest checkpoint size `witness` cosigned for this log (0: none)."""

    async def latest_checkpoints(self, shards: list[int]) -> dict[int, tuple[int, int | None]]:
        """Per shard: (size of its latest checkpoint, when signed; never signed: first batch's time)."""

    async def entry(self, shard: int, seq: int) -> RecordedEntry | None:
        """The recorded document at (shard, seq) with its batch header."""

    async def records(self, shard: int, seqs: list[int]) -> dict[int, bytes]:
        """The records of those of `seqs` that are recorded."""

    async def batch_leaves(self, shard: int, batch_no: int) -> list[bytes]:
        """Leaf hashes of one batch in leaf order."""

    async def find_by_fields(self, terminal_id: str, counter: int,
                             since: date | None = None) -> list[tuple[int, int, int, datetime]]:
        """(shard, seq, total_minor, issued_at) of recorded documents of a terminal counter
        (recorded on UTC day `since` or later, when given)."""

    async def archived_batch(self, shard: int, seq: int) -> tuple[BatchHeader, bytes] | None:
        """(header, header hash) of the batch holding (shard, seq) when its day was detached
        (retention): its rows left the ledger, its header and log nodes stayed."""

    async def heights(self) -> dict[int, tuple[int, int]]:
        """Per recorded shard: (batches, last recorded sequence)."""

    async def ping(self) -> None:
        """Raises Unavailable unless the ledger answers."""


class FenceLedger(Protocol):
    """The ledger's side of fencing: epochs, reservations, losses and conflicts."""

    async def establish(self, shard: int, store: str, store_seq: int, plan: Plan) -> Fence:
        """Set the next fence as `plan` decides from the ledger's height and the prior fence,
        under the shard's lock (StoreMismatch from `plan` passes through, nothing written)."""

    async def reserve(self, shard: int, epoch: int, reserved_seq: int) -> bool:
        """Extend the reservation of `epoch`; False when a newer epoch fenced it out."""

    async def recorded(self, shard: int, counters: list[tuple[str, int]]) -> dict[tuple[str, int], Recorded]:
        """The first recorded document of each of these (terminal, counter) in `shard`."""

    async def latest_epoch(self, shard: int) -> int | None:
        """The shard's latest fence epoch (None: never fenced)."""

    async def latest(self, shards: list[int] | None = None) -> dict[int, FenceState]:
        """Each fenced shard's latest fence (of `shards` when given)."""

    async def losses(self, shard: int | None = None, seq: int | None = None) -> list[Loss]:
        """Recorded losses, of one shard and covering one sequence when given."""

    async def recorded_twice(self) -> list[tuple[int, str, int, tuple[int, ...]]]:
        """(shard, terminal, counter, seqs) of counters recorded more than once since keys were lost."""

    async def add_conflicts(self, shard: int, found: list[tuple[int, bytes, bytes, int]]) -> None:
        """Write (seq, document hash, document, accepted_at_ms) of conflicting documents."""

    async def conflicts(self, shard: int | None = None, seq: int | None = None) -> list[Conflict]:
        """Conflicts found by the ledger writers, with whether each was released."""

    async def release_conflicts(self, shard: int, by: str) -> list[tuple[int, bytes]]:
        """Release the shard's unreleased conflicts; (seq, document hash) of each, by sequence."""

    def offline(self, shards: list[int]) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the fence locks of `shards` while an offline load writes a never-fenced ledger."""



class TileSource(Protocol):
    """Where a reader finds a log's C2SP tiles: a directory, a static server, posray's /tlog/."""

    def get(self, path: str) -> bytes | None:
        """The resource at `path` below the tiles' base (`<shard>/checkpoint`, `<shard>/tile/...`),
        None when there is none.

        Raises:
            Unavailable: the source could not answer.
        """


class ReceiptIndex(Protocol):
    """An index of recorded receipts that survives retention (the Parquet snapshot)."""

    def find(self, terminal_id: str, counter: int) -> list[tuple[int, int]]:
        """(shard, seq) of the recorded documents of a terminal counter.

        Raises:
            Unavailable: the index could not be read.
        """


class TileSink(TileSource, Protocol):
    """Where `posray tiles export` writes: files that appear whole or not at all."""

    def exists(self, path: str) -> bool:
        """A resource is at `path`."""

    def put(self, path: str, data: bytes) -> None:
        """Write `data` at `path`, replacing what was there, atomically."""


class LedgerPartitions(Protocol):
    """The ledger's daily partitions (posray.adapters.pg_partitions)."""

    async def attached(self, before: date) -> list[DayPartition]:
        """Attached partitions of days before `before`, with each shard's last sequence."""

    async def detach(self, part: DayPartition, archives: dict[str, dict[int, int]]) -> None:
        """Detach one partition and record what the archives held."""

    async def batches(self, day: date) -> list[BatchHeader]:
        """The batch headers recorded on `day`, by shard and batch number."""

class WitnessState(Protocol):
    """A witness's memory: per log origin, the latest checkpoint it cosigned (posray.services.witness)."""

    def load(self) -> dict[str, LogState]:
        """The state as last saved."""

    def save(self, logs: dict[str, LogState]) -> None:
        """Replace the state durably and atomically: after a crash, the old state or this one."""


class WitnessClient(Protocol):
    """How a log reaches a witness's add-checkpoint (posray.services.witnessing)."""

    async def add_checkpoint(self, url: str, body: bytes) -> tuple[int, bytes]:
        """POST `body` to `<url>/add-checkpoint`; (status, response body).

        Raises:
            Unavailable: the witness could not be reached or did not answer in time.
        """
