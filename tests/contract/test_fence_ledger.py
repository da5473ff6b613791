"""The FenceLedger port: PgFences and MemoryFences under the same assertions."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest

from posray.domain.chain import advance
from posray.domain.errors import LedgerLive
from posray.domain.fence import Fence, PriorFence, StoreMismatch
from posray.services.ports import Recorded
from tests.contract.support import append, planner, subs
from tests.integration.support import fresh_terminal

T0 = 1_700_000_000_000


class TestEstablish:
    def test_the_first_fence_is_planned_from_the_ledgers_height_with_no_prior(self, stores):
        terminal_id, shard = fresh_terminal()
        seen: list = []

        async def main():
            async with stores() as s:
                await append(s.ledger, await s.ledger.head(shard), subs(terminal_id, range(1, 4)), T0)
                fence = await s.fences.establish(shard, "store-a", 2, planner(seen))
                return fence, await s.fences.latest_epoch(shard), (await s.fences.latest([shard]))[shard]

        fence, epoch, state = asyncio.run(main())
        assert seen == [(3, None)]
        assert fence == Fence(shard, 1, 3, 103, None)
        assert epoch == 1
        assert (state.shard, state.epoch, state.store, state.floor, state.reserved, state.ledger_seq,
                state.reason) == (shard, 1, "store-a", 3, 103, 3, "contract")
        assert abs(state.created_at.timestamp() - time.time()) < 60

    def test_the_next_plan_sees_the_prior_fence_with_its_highest_reservation(self, stores):
        _, shard = fresh_terminal()
        seen: list = []

        async def main():
            async with stores() as s:
                first = await s.fences.establish(shard, "store-a", 0, planner(seen))
                extended = await s.fences.reserve(shard, first.epoch, 500)
                lower = await s.fences.reserve(shard, first.epoch, 200)
                second = await s.fences.establish(shard, "store-a", 0, planner(seen))
                stale = await s.fences.reserve(shard, first.epoch, 900)
                return extended, lower, second, stale, await s.fences.latest([shard])

        extended, lower, second, stale, latest = asyncio.run(main())
        assert (extended, lower, stale) == (True, True, False)
        assert seen[1] == (0, PriorFence(1, "store-a", 500))
        assert second.epoch == 2
        assert latest[shard].reserved == 100

    def test_a_plan_that_refuses_writes_nothing(self, stores):
        _, shard = fresh_terminal()

        def refuse(ledger_seq, prior):
            raise StoreMismatch("another store holds the shard")

        async def main():
            async with stores() as s:
                await s.fences.establish(shard, "store-a", 0, planner([]))
                with pytest.raises(StoreMismatch):
                    await s.fences.establish(shard, "store-b", 0, refuse)
                return await s.fences.latest_epoch(shard), (await s.fences.latest([shard]))[shard].store

        assert asyncio.run(main()) == (1, "store-a")

    def test_a_fence_that_found_the_keys_lost_is_remembered_by_every_later_fence(self, stores):
        _, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                kept = await s.fences.establish(shard, "store-a", 0, planner([]))
                lost = await s.fences.establish(shard, "store-a", 0, planner([], keys_lost=True))
                later = await s.fences.establish(shard, "store-a", 0, planner([]))
                return kept, lost, later

        kept, lost, later = asyncio.run(main())
        assert kept.keys_lost_at_ms is None
        assert abs(lost.keys_lost_at_ms - time.time() * 1000) < 60_000
        assert later.keys_lost_at_ms == lost.keys_lost_at_ms

    def test_fences_run_one_at_a_time_per_shard(self, stores):
        _, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                return await asyncio.gather(*(s.fences.establish(shard, "store-a", 0, planner([])) for _ in range(4)))

        assert sorted(f.epoch for f in asyncio.run(main())) == [1, 2, 3, 4]

    def test_an_offline_load_is_refused_once_a_store_was_fenced(self, stores):
        _, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.fences.establish(shard, "store-a", 0, planner([]))
                with pytest.raises(LedgerLive, match="store-a"):
                    async with s.fences.offline([shard]):
                        pass

        asyncio.run(main())


class TestLosses:
    def test_losses_are_listed_by_shard_and_by_the_sequence_they_cover(self, stores):
        _, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.fences.establish(shard, "store-a", 0, planner([]))
                await s.fences.establish(shard, "store-a", 0, planner([], lost=(5, 9)))
                every = [x for x in await s.fences.losses() if x.shard == shard]
                return (every, await s.fences.losses(shard), await s.fences.losses(shard, 9),
                        await s.fences.losses(shard, 10))

        every, of_shard, covering, outside = asyncio.run(main())
        assert [(x.shard, x.epoch, x.lost_from, x.lost_to, x.exact, x.reason) for x in every] == [
            (shard, 2, 5, 9, True, "contract")]
        assert of_shard == covering == every
        assert outside == []


class TestConflicts:
    def test_conflicts_are_written_once_and_released_once(self, stores):
        _, shard = fresh_terminal()
        found = [(7, b"h" * 32, b"{doc 7}", T0), (4, b"g" * 32, b"{doc 4}", T0 + 1)]

        async def main():
            async with stores() as s:
                await s.fences.add_conflicts(shard, found)
                await s.fences.add_conflicts(shard, found[:1])
                listed = await s.fences.conflicts(shard)
                one = await s.fences.conflicts(shard, 7)
                everywhere = [c for c in await s.fences.conflicts() if c.shard == shard]
                released = await s.fences.release_conflicts(shard, "operator")
                again = await s.fences.release_conflicts(shard, "operator")
                return listed, one, everywhere, released, again, await s.fences.conflicts(shard)

        listed, one, everywhere, released, again, after = asyncio.run(main())
        assert [(c.shard, c.seq, c.document_hash, c.document, c.accepted_at, c.released) for c in listed] == [
            (shard, 4, b"g" * 32, b"{doc 4}", datetime.fromtimestamp((T0 + 1) / 1000, tz=timezone.utc), False),
            (shard, 7, b"h" * 32, b"{doc 7}", datetime.fromtimestamp(T0 / 1000, tz=timezone.utc), False)]
        assert [c.seq for c in one] == [7]
        assert everywhere == listed
        assert released == [(4, b"g" * 32), (7, b"h" * 32)]
        assert again == []
        assert [c.released for c in after] == [True, True]


class TestRecorded:
    def test_recorded_finds_the_first_recording_of_each_counter(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, [1, 2, 1])

        async def main():
            async with stores() as s:
                _, rows, _ = await append(s.ledger, await s.ledger.head(shard), docs, T0, accepted_at_ms=T0 - 5)
                return rows, await s.fences.recorded(shard, [(terminal_id, 1), (terminal_id, 3), ("other", 2)])

        rows, found = asyncio.run(main())
        assert found == {(terminal_id, 1): Recorded(1, rows[0].record, T0 - 5)}

    def test_counters_recorded_twice_after_the_keys_were_lost_are_listed(self, stores):
        terminal_id, shard = fresh_terminal()
        sale, other = subs(terminal_id, [1, 2])

        async def main():
            async with stores() as s:
                head = await s.ledger.head(shard)
                first, _, _ = await append(s.ledger, head, [sale], T0)
                await s.fences.establish(shard, "store-a", 1, planner([], keys_lost=True))  # floor 1
                await append(s.ledger, advance(head, first), [other, sale], T0 + 1)
                return [d for d in await s.fences.recorded_twice() if d[0] == shard]

        assert asyncio.run(main()) == [(shard, terminal_id, 1, (1, 3))]
