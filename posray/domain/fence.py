"""Fencing between the capture store and the ledger: where new sequences may start, and what was lost.

A capture store (Redis) hands out a shard's sequences; the ledger (PostgreSQL) records them.
Before a store may capture, a fence is set from the ledger: a new epoch, a floor above every
sequence the ledger holds or the store already handed out, and a reservation (the highest
sequence the store may hand out before asking the ledger for more). The store checks the epoch
and the reservation on every capture call. Pure decisions, no I/O: `plan_fence` says what the
new fence is and which acknowledged sequences the replaced store lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from posray.domain.errors import PosrayError


@dataclass(frozen=True, slots=True)
class StoreState:
    """What a capture store holds for one shard when it is (re)fenced."""

    counter: int            # the last sequence it handed out (its counter key; 0 when missing)
    stream_last: int        # the last sequence still in its stream (0 when empty)
    epoch: int | None       # the fence epoch it carries (None: no fence key, e.g. flushed)
    reserved: int | None    # the reservation it carries


@dataclass(frozen=True, slots=True)
class PriorFence:
    """The shard's latest fence in the ledger, with its highest reservation."""

    epoch: int
    store: str
    reserved: int


@dataclass(frozen=True, slots=True)
class Fence:
    """An established fence: capture may assign sequences floor+1 .. reserved under `epoch`."""

    shard: int
    epoch: int
    floor: int
    reserved: int
    # When a fence of this shard last found the store without idempotency keys it had held
    # (flushed, rewound, replaced): until that is older than the keys' lifetime, a resend may
    # no longer be recognised by the store, so capture asks the ledger (epoch ms; None: never).
    keys_lost_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FencePlan:
    """The next fence of a shard and the loss it records (lost_from None: nothing lost)."""

    epoch: int
    floor: int
    reserved: int
    lost_from: int | None
    lost_to: int | None
    lost_exact: bool
    reason: str
    keys_lost: bool = False  # the store lacks idempotency keys it (or its predecessor) held


class StoreMismatch(PosrayError, ValueError):
    """The ledger's shard is captured by another store; refusing to take it over silently."""


def plan_fence(ledger_seq: int, store: StoreState, prior: PriorFence | None, store_id: str,
               issued_max: int | None, reservation: int, rebind: bool = False,
               reissued_from: int | None = None) -> FencePlan:
    """Decide the next fence of a shard.

    Args:
        ledger_seq: the last sequence the ledger holds.
        store: the capture store's state for the shard.
        prior: the latest fence the ledger knows (None: never fenced).
        store_id: the identity of the store asking to be fenced.
        issued_max: the highest sequence the asking process itself handed out under the prior
            fence (None: it does not know, e.g. it just started).
        reservation: how many sequences to reserve beyond the floor.
        rebind: allow a store other than the prior fence's to take the shard over.
        reissued_from: the first sequence the store handed out a second time (it was rewound
            while running), if the asking process saw that.

    Raises:
        StoreMismatch: the prior fence belongs to another store and `rebind` is false.
    """
    if prior is not None and prior.store != store_id and not rebind:
        raise StoreMismatch(
            f"the ledger's shard is captured by {prior.store}, not by {store_id}: two capture "
            "stores on one ledger would hand out the same sequences (run `posray capture rebind` "
            "if the capture store really moved)")
    # Never below what the ledger holds, nor below what the store already handed out.
    floor = max(ledger_seq, store.counter, store.stream_last)
    lost_from = lost_to = None
    exact = False
    reason = "first fence" if prior is None else "re-fenced"
    if prior is not None and issued_max is not None and reissued_from is not None:
        # The store was rewound and reissued sequences: the documents first acknowledged under
        # them are lost, and so is whatever it had acknowledged above its rewound counter.
        lost_from, lost_to = reissued_from, max(issued_max, reissued_from)
        reason = f"the store reissued sequences from {reissued_from} (rewound while running)"
    elif prior is not None and issued_max is not None and issued_max > floor:
        # This process acknowledged sequences the store no longer has: exactly these are lost.
        lost_from, lost_to, exact = floor + 1, issued_max, True
        reason = f"the store lost sequences {floor + 1}..{issued_max} it had acknowledged"
    elif prior is not None and issued_max is None and _store_lost_data(ledger_seq, store, prior):
        if prior.reserved > floor:
            # Nobody knows how far the lost store got: everything it was allowed to hand out.
            lost_from, lost_to = floor + 1, prior.reserved
        reason = "the store lost data (" + _loss_evidence(ledger_seq, store, prior) + ")"
    keys_lost = _keys_lost(ledger_seq, store, prior, store_id, lost_from is not None)
    return FencePlan((prior.epoch if prior else 0) + 1, floor, floor + reservation,
                     lost_from, lost_to, exact, reason, keys_lost)


def _keys_lost(ledger_seq: int, store: StoreState, prior: PriorFence | None, store_id: str, lost: bool) -> bool:
    """Whether the store may lack idempotency keys of documents the ledger holds or was sent.

    Any data loss, a store taking over from another one, or a never-fenced store that is
    behind a ledger it did not fill (keys live with the store that captured the documents).
    """
    if prior is None:
        return max(store.counter, store.stream_last) < ledger_seq
    return lost or prior.store != store_id or _store_lost_data(ledger_seq, store, prior)


def _store_lost_data(ledger_seq: int, store: StoreState, prior: PriorFence) -> bool:
    return bool(_loss_evidence(ledger_seq, store, prior))


def _loss_evidence(ledger_seq: int, store: StoreState, prior: PriorFence) -> str:
    if store.epoch is None:
        return "its fence is gone: flushed, replaced or restored from before it was fenced"
    if store.epoch != prior.epoch:
        return f"it carries epoch {store.epoch}, the ledger's latest is {prior.epoch}"
    if store.reserved is not None and store.reserved < prior.reserved:
        return f"its reservation {store.reserved} is older than the ledger's {prior.reserved}"
    if max(store.counter, store.stream_last) < ledger_seq:
        return f"its counter {store.counter} is below the ledger's height {ledger_seq}"
    return ""


class IssuedRanges:
    """The sequences one process handed out under its current fence, as disjoint ranges.

    Capture replies may be processed out of order, so holes can exist briefly; a new range that
    overlaps an issued one means the store reissued sequences (rewound behind our back).
    """

    RANGES_MAX = 4096

    def __init__(self, floor: int):
        self.floor = floor
        self._ranges: list[list[int]] = []  # sorted [first, last]

    @property
    def highest(self) -> int | None:
        return self._ranges[-1][1] if self._ranges else None

    def add(self, first: int, last: int) -> bool:
        """Record first..last; False (and nothing recorded) if any of it was issued already or is at or below the floor."""
        if first <= self.floor:
            return False
        ranges = self._ranges
        i = len(ranges)
        while i > 0 and ranges[i - 1][0] > last:
            i -= 1
        if i > 0 and ranges[i - 1][1] >= first:
            return False
        ranges.insert(i, [first, last])
        if i + 1 < len(ranges) and ranges[i + 1][0] == last + 1:
            ranges[i][1] = ranges.pop(i + 1)[1]
        if i > 0 and ranges[i - 1][1] + 1 == first:
            ranges[i - 1][1] = ranges.pop(i)[1]
        if len(ranges) > self.RANGES_MAX:  # holes that never fill: forget the oldest detail
            ranges[0:2] = [[ranges[0][0], ranges[1][1]]]
        return True
