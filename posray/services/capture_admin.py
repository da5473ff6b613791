"""Use cases of `posray capture`: what the fences say, releasing conflicts, rebinding shards.

The operator's side of fencing (posray.services.fencing). `capture_status` reads the ledger's
fences, losses and conflicts per shard; `release` lets a stopped shard's ledger writer go on
(the released documents stay recorded as lost, and their codes keep answering 410);
`rebind` lets this deployment's capture store take over shards the ledger's fences give to
another store, writing the new fence in the ledger and in the store, so that the running
IngestShard fences itself above it on its next capture call.
"""

from __future__ import annotations

from dataclasses import dataclass

from posray.domain.fence import Fence
from posray.services.fencing import ShardFences
from posray.services.ports import FenceLedger, FenceState, FenceStore, Ledger, Loss


@dataclass(frozen=True, slots=True)
class ShardCapture:
    """One shard's fence and what the ledger recorded as lost or conflicting there."""

    shard: int
    ledger_seq: int
    fence: FenceState | None
    losses: tuple[Loss, ...]
    conflicts_unreleased: tuple[int, ...]  # sequences: the shard's recording is stopped
    conflicts_released: tuple[int, ...]    # sequences: acknowledged as lost

    @property
    def lost_sequences(self) -> int:
        """Sequences recorded as lost (an upper bound where a loss is not exact)."""
        return sum(loss.lost_to - loss.lost_from + 1 for loss in self.losses)

    def to_json(self) -> dict:
        f = self.fence
        return {
            "shard": self.shard,
            "ledger_seq": self.ledger_seq,
            "fence": None if f is None else {
                "epoch": f.epoch, "store": f.store, "floor": f.floor, "reserved": f.reserved,
                "ledger_seq": f.ledger_seq, "reason": f.reason, "created_at": f.created_at.isoformat()},
            "losses": [{"epoch": x.epoch, "from": x.lost_from, "to": x.lost_to, "exact": x.exact,
                        "reason": x.reason, "detected_at": x.detected_at.isoformat()} for x in self.losses],
            "lost_sequences": self.lost_sequences,
            "conflicts_unreleased": list(self.conflicts_unreleased),
            "conflicts_released": list(self.conflicts_released),
        }


async def capture_status(fences: FenceLedger, ledger: Ledger, shards: list[int]) -> list[ShardCapture]:
    """Per shard of `shards` (and any other shard the fencing tables name): fence, losses, conflicts.

    Raises:
        Unavailable: PostgreSQL is unreachable.
    """
    latest = await fences.latest()
    heights = await ledger.heights()
    losses: dict[int, list[Loss]] = {}
    for loss in await fences.losses():
        losses.setdefault(loss.shard, []).append(loss)
    open_: dict[int, list[int]] = {}
    released: dict[int, list[int]] = {}
    for conflict in await fences.conflicts():
        (released if conflict.released else open_).setdefault(conflict.shard, []).append(conflict.seq)
    named = set(shards) | set(latest) | set(losses) | set(open_) | set(released)
    return [ShardCapture(shard, heights.get(shard, (0, 0))[1], latest.get(shard),
                         tuple(losses.get(shard, ())), tuple(open_.get(shard, ())),
                         tuple(released.get(shard, ())))
            for shard in sorted(named)]


async def release(fences: FenceLedger, shard: int, by: str) -> list[tuple[int, bytes]]:
    """Release the shard's unreleased conflicts: its ledger writer acknowledges them as lost.

    The writer retries a stopped shard on its own (actors/ledger_writer.py), so recording resumes
    within its back-off without a restart; lookups of the released codes keep answering 410.

    Returns:
        The (seq, document hash) of each conflict released now (empty: nothing was unreleased).

    Raises:
        Unavailable: PostgreSQL is unreachable.
    """
    return await fences.release_conflicts(shard, by)


@dataclass(frozen=True, slots=True)
class Rebound:
    """What `rebind` did with one shard."""

    shard: int
    outcome: str                 # "rebound", "already this store's", "not fenced yet"
    previous_store: str | None
    fence: Fence | None          # the new fence, when rebound
    lost_from: int | None = None  # what the previous store may have acknowledged and lost
    lost_to: int | None = None

    def to_json(self) -> dict:
        return {"shard": self.shard, "outcome": self.outcome, "previous_store": self.previous_store,
                "epoch": self.fence.epoch if self.fence else None,
                "floor": self.fence.floor if self.fence else None,
                "lost_from": self.lost_from, "lost_to": self.lost_to}


async def rebind(store: FenceStore, fences: FenceLedger, store_id: str, reservation: int,
                 shards: list[int]) -> list[Rebound]:
    """Fence `shards` held by another store for `store_id` instead, in the ledger and in `store`.

    The fence is installed in the store too: the IngestShard's next capture call then fences
    the shard again without finding a missing fence, so nothing is recorded as lost twice.
    What the previous store acknowledged above the floor and this store does not hold is
    recorded as lost (an upper bound: the previous store's reservation), as for any store that
    lost its data.

    Raises:
        NotFenced: this store kept changing while being fenced (it is capturing: retry).
        Unavailable: Redis or PostgreSQL is unreachable.
    """
    current = await fences.latest(shards)
    taker = ShardFences(store, fences, store_id, reservation, rebind=True)
    out: list[Rebound] = []
    for shard in shards:
        prior = current.get(shard)
        if prior is None:
            # Never fenced: the first capture call fences it for whichever store asks first.
            out.append(Rebound(shard, "not fenced yet", None, None))
            continue
        if prior.store == store_id:
            out.append(Rebound(shard, "already this store's", prior.store, None))
            continue
        fence = await taker.refence(shard, None, f"rebound from {prior.store} by `posray capture rebind`")
        plan = next((p for s, p in taker.losses if s == shard), None)
        out.append(Rebound(shard, "rebound", prior.store, fence,
                           plan.lost_from if plan else None, plan.lost_to if plan else None))
    return out
