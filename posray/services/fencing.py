"""Use case `fence`: keep a capture store fenced against the ledger, shard by shard.

An IngestShard holds one ShardFences. Before its first capture of a shard, after the store
refused its epoch (flushed, restored, restarted, failed over, fenced by another writer) and
whenever a reply shows the store reissued a sequence, the shard is fenced again: a new epoch in
the ledger, a floor above everything the ledger holds and the store handed out, and what the
store lost recorded with the fence. Reservations are extended ahead of use, one ledger round
trip per `reservation` sequences, so a capture call never waits for PostgreSQL in the steady state.
"""

from __future__ import annotations

import asyncio
import logging
import time
import orjson

from posray.domain.errors import NotFenced, Unavailable
from posray.domain.transaction import issued_at_ms
from posray.domain.fence import Fence, FencePlan, IssuedRanges, PriorFence, StoreMismatch, plan_fence
from posray.services.ports import FenceLedger, FenceStore

log = logging.getLogger(__name__)
INSTALL_ATTEMPTS_MAX = 5
# Terminal clocks may run ahead (the edge admits 5 minutes): a sale issued up to an hour after the
# store lost its keys is still checked against the ledger.
ISSUED_MARGIN_MS = 3_600_000


class ShardFences:
    """The fences of the shards one process captures, and the sequences it issued under them."""

    def __init__(self, store: FenceStore, ledger: FenceLedger, store_id: str, reservation: int,
                 rebind: bool = False, keys_ttl_s: int | None = None):
        self._store = store
        # How long the store keeps idempotency keys: after it lost them, that long capture also
        # asks the ledger whether a document was recorded (None: never ask).
        self._keys_ttl_s = keys_ttl_s
        # Only `posray capture rebind` takes shards over from another store (posray.services.capture_admin).
        self._rebind = rebind
        self._ledger = ledger
        self._store_id = store_id
        self._reservation = reservation
        self._fences: dict[int, Fence] = {}
        self._issued: dict[int, IssuedRanges] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._extending: dict[int, asyncio.Task] = {}
        self._suspect: set[int] = set()  # shards to fence again before their next capture
        self.refences = 0
        self.losses: list[tuple[int, FencePlan]] = []  # (shard, plan) found by re-fencing, for metrics

    def current(self, shard: int) -> Fence | None:
        return self._fences.get(shard)

    async def recorded_since_keys_lost(self, shard: int, fence: Fence, submissions) -> dict:
        """The ledger's documents for the submissions' (terminal, counter) that the store may no
        longer recognise: it lost its idempotency keys less than their lifetime ago, and the
        document was issued before that (a sale issued later cannot have been captured before).
        {} otherwise, without a query: the steady state costs nothing."""
        lost_at = fence.keys_lost_at_ms
        if lost_at is None or self._keys_ttl_s is None or time.time() * 1000 - lost_at > self._keys_ttl_s * 1000:
            return {}
        older = [(s.terminal_id, s.counter) for s in submissions
                 if issued_at_ms(orjson.loads(s.canonical)["issued_at"]) <= lost_at + ISSUED_MARGIN_MS]
        return await self._ledger.recorded(shard, older) if older else {}

    async def ensure(self, shard: int) -> Fence:
        """The shard's fence, set first if this process has none or the store is suspect."""
        fence = self._fences.get(shard)
        if fence is None:
            return await self.refence(shard, None, "first capture")
        if shard in self._suspect:
            return await self.refence(shard, fence, "the capture store restarted or failed over")
        return fence

    def suspect_all(self) -> None:
        """The store restarted or failed over: fence every shard again before its next capture.

        A promoted replica that carries the shard's fence would otherwise go on capturing under
        it; fencing again compares what it holds with what this process acknowledged, so what
        it lacks is recorded as lost at once instead of when a sequence is reissued.
        """
        self._suspect.update(self._fences)

    async def refence(self, shard: int, stale: Fence | None, why: str,
                      reissued_from: int | None = None) -> Fence:
        """Fence the shard again, unless another task already replaced `stale` meanwhile.

        Raises:
            NotFenced: the ledger refused (another store holds the shard) or the store kept moving.
            Unavailable: Redis or PostgreSQL is unreachable.
        """
        lock = self._locks.setdefault(shard, asyncio.Lock())
        async with lock:
            fence = self._fences.get(shard)
            if fence is not None and (stale is None or fence.epoch != stale.epoch):
                return fence
            issued = self._issued.get(shard)
            issued_max = issued.highest if issued is not None else None
            for _ in range(INSTALL_ATTEMPTS_MAX):
                fence = await self._try_fence(shard, issued_max, reissued_from)
                if fence is not None:
                    break
            else:
                raise NotFenced(f"shard {shard}: the capture store kept changing while being fenced", 1)
            self._fences[shard] = fence
            self._suspect.discard(shard)
            self._issued[shard] = IssuedRanges(fence.floor)
            self.refences += 1
            log.warning("shard %d fenced: epoch %d, floor %d (%s)", shard, fence.epoch, fence.floor, why)
            return fence

    async def _try_fence(self, shard: int, issued_max: int | None, reissued_from: int | None) -> Fence | None:
        state = await self._store.state(shard)
        decided: list[FencePlan] = []
        seen: list[int] = []

        def plan(ledger_seq: int, prior: PriorFence | None) -> FencePlan:
            # Remember prior's epoch: our own issued sequences count only under the fence we held.
            held = self._fences.get(shard)
            own = issued_max if held is not None and prior is not None and prior.epoch == held.epoch else None
            decided.append(plan_fence(ledger_seq, state, prior, self._store_id, own, self._reservation,
                                      rebind=self._rebind,
                                      reissued_from=reissued_from if own is not None else None))
            seen.append(ledger_seq)
            return decided[-1]

        try:
            fence = await self._ledger.establish(shard, self._store_id, state.counter, plan)
        except StoreMismatch as e:
            raise NotFenced(f"shard {shard}: {e}", 30) from None
        if not await self._store.install(shard, state.counter, fence, seen[0]):
            return None
        if decided[0].lost_from is not None:
            self.losses.append((shard, decided[0]))
            log.error("shard %d: the capture store lost acknowledged sequences %d..%d (%s): %s",
                      shard, decided[0].lost_from, decided[0].lost_to,
                      "exact" if decided[0].lost_exact else "upper bound", decided[0].reason)
        return fence

    def issued(self, shard: int, fence: Fence, first: int, last: int) -> bool:
        """Record sequences a capture call just assigned; False when the store reissued any
        (it was rewound behind this process's back: the caller must not acknowledge them)."""
        current = self._fences.get(shard)
        if current is None or current.epoch != fence.epoch:
            return True  # a newer fence replaced this call's: its ranges start afresh
        ok = self._issued[shard].add(first, last)
        if ok and fence.reserved - last < self._reservation // 2:
            self._extend_soon(shard, fence, last)
        return ok

    async def extend(self, shard: int, fence: Fence, needed: int) -> Fence:
        """Reserve at least up to `needed` (a call found the reservation used up); return the fence to use."""
        target = max(needed, fence.reserved) + self._reservation
        if not await self._ledger.reserve(shard, fence.epoch, target):
            return await self.refence(shard, fence, "another writer fenced the shard")
        if not await self._store.extend(shard, fence.epoch, target):
            return await self.refence(shard, fence, "the store lost its fence")
        current = self._fences.get(shard)
        if current is not None and current.epoch == fence.epoch:
            current = Fence(shard, fence.epoch, fence.floor, max(target, current.reserved))
            self._fences[shard] = current
        return current or fence

    def _extend_soon(self, shard: int, fence: Fence, last: int) -> None:
        task = self._extending.get(shard)
        if task is not None and not task.done():
            return

        async def run() -> None:
            try:
                await self.extend(shard, fence, last)
            except (Unavailable, NotFenced) as e:  # the next call that needs it extends again
                log.warning("shard %d: reservation not extended ahead: %s", shard, e)

        self._extending[shard] = asyncio.get_running_loop().create_task(run())
