"""The CaptureLog port (capture.lua): RedisCapture and MemoryCaptureLog under the same assertions."""

from __future__ import annotations

import asyncio

import pytest

from posray.domain.errors import NotFenced, Overloaded
from posray.domain.fence import Fence, StoreState
from posray.services.ports import CONFLICT, NEW, SAME
from tests.contract.support import fenced, subs
from tests.integration.support import fresh_terminal


class TestAppend:
    def test_new_documents_get_consecutive_seqs_above_the_floor_and_one_accepted_at(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 6))

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard)
                first = await s.capture.append(shard, 1_000, docs[:3], fence)
                second = await s.capture.append(shard, 2_000, docs[3:], fence)
                return first, second, await s.capture.state(shard), [await s.capture.pending(shard, q)
                                                                      for q in range(0, 7)]

        first, second, state, pending = asyncio.run(main())
        assert [(a.status, a.seq, a.accepted_at_ms) for a in first + second] == [
            (NEW, 1, 1_000), (NEW, 2, 1_000), (NEW, 3, 1_000), (NEW, 4, 2_000), (NEW, 5, 2_000)]
        assert state == StoreState(5, 5, 1, 1000)
        assert pending == [None] + [(1_000 if q <= 3 else 2_000, docs[q - 1].canonical) for q in range(1, 6)] + [None]

    def test_seq_of_names_the_sequence_of_a_terminal_counter(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard)
                await s.capture.append(shard, 1_000, subs(terminal_id, [7, 9]), fence)
                return [await s.capture.seq_of(shard, terminal_id, c) for c in (7, 8, 9)]

        assert asyncio.run(main()) == [1, None, 2]

    def test_durability_is_described(self, stores):
        async def main():
            async with stores() as s:
                return await s.capture.durability()

        assert isinstance(asyncio.run(main()), str)


class TestIdempotency:
    def test_the_same_document_again_returns_its_first_seq_and_accepted_at_and_writes_nothing(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, [1, 2])

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard)
                await s.capture.append(shard, 1_000, docs, fence)
                again = await s.capture.append(shard, 2_000, [docs[1], docs[0]], fence)
                return again, await s.capture.state(shard)

        again, state = asyncio.run(main())
        assert [(a.status, a.seq, a.accepted_at_ms) for a in again] == [(SAME, 2, 1_000), (SAME, 1, 1_000)]
        assert (state.counter, state.stream_last) == (2, 2)

    def test_another_document_under_a_used_counter_is_a_conflict_naming_the_first(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard)
                await s.capture.append(shard, 1_000, subs(terminal_id, [1]), fence)
                other = await s.capture.append(shard, 2_000, subs(terminal_id, [1], seed="another"), fence)
                return other, await s.capture.state(shard), await s.capture.pending(shard, 1)

        other, state, pending = asyncio.run(main())
        assert [(a.status, a.seq, a.accepted_at_ms) for a in other] == [(CONFLICT, 1, 1_000)]
        assert state.counter == 1
        assert pending == (1_000, subs(terminal_id, [1])[0].canonical)

    def test_duplicates_and_conflicts_within_one_call(self, stores):
        terminal_id, shard = fresh_terminal()
        a, c = subs(terminal_id, [1, 2])
        not_a = subs(terminal_id, [1], seed="not a")[0]

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard)
                return await s.capture.append(shard, 7_000, [a, a, not_a, c, c], fence), await s.capture.state(shard)

        out, state = asyncio.run(main())
        assert [(o.status, o.seq, o.accepted_at_ms) for o in out] == [
            (NEW, 1, 7_000), (SAME, 1, 7_000), (CONFLICT, 1, 7_000), (NEW, 2, 7_000), (SAME, 2, 7_000)]
        assert state.counter == 2

    def test_after_the_idempotency_window_a_resend_is_captured_anew(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, [1])

        async def main():
            async with stores(ttl_s=1) as s:
                fence = await fenced(s.capture, shard)
                await s.capture.append(shard, 1_000, docs, fence)
                await asyncio.sleep(1.2)
                forgotten = await s.capture.seq_of(shard, terminal_id, 1)
                return forgotten, await s.capture.append(shard, 3_000, docs, fence)

        forgotten, again = asyncio.run(main())
        assert forgotten is None
        assert [(a.status, a.seq) for a in again] == [(NEW, 2)]


class TestRefusals:
    def test_a_store_without_a_fence_refuses_and_writes_nothing(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                with pytest.raises(NotFenced, match="missing"):
                    await s.capture.append(shard, 1_000, subs(terminal_id, [1]), Fence(shard, 1, 0, 1000))
                return await s.capture.state(shard), await s.capture.seq_of(shard, terminal_id, 1)

        assert asyncio.run(main()) == (StoreState(0, 0, None, None), None)

    def test_a_store_fenced_with_another_epoch_refuses_and_writes_nothing(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await fenced(s.capture, shard, epoch=2)
                with pytest.raises(NotFenced, match="epoch 2"):
                    await s.capture.append(shard, 1_000, subs(terminal_id, [1]), Fence(shard, 1, 0, 1000))
                return await s.capture.state(shard), await s.capture.seq_of(shard, terminal_id, 1)

        assert asyncio.run(main()) == (StoreState(0, 0, 2, 1000), None)

    def test_a_full_backlog_answers_overloaded_and_writes_nothing(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 6))

        async def main():
            async with stores(backlog_max=3) as s:
                fence = await fenced(s.capture, shard)
                await s.capture.append(shard, 1_000, docs[:2], fence)
                with pytest.raises(Overloaded, match=r"backlog is full \(2 documents\)"):
                    await s.capture.append(shard, 2_000, docs[2:4], fence)
                state = await s.capture.state(shard)
                await s.stream.report_recorded(shard, 2)  # the ledger caught up: room again
                return state, await s.capture.append(shard, 3_000, docs[2:5], fence)

        state, later = asyncio.run(main())
        assert (state.counter, state.stream_last) == (2, 2)
        assert [a.seq for a in later] == [3, 4, 5]

    def test_a_used_up_reservation_returns_it_and_writes_nothing_until_extended(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 5))

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard, reserved=3)
                await s.capture.append(shard, 1_000, docs[:2], fence)
                used = await s.capture.append(shard, 2_000, docs[2:4], fence)
                state = await s.capture.state(shard)
                assert await s.capture.extend(shard, fence.epoch, 10)
                return used, state, await s.capture.append(shard, 3_000, docs[2:4], fence)

        used, state, later = asyncio.run(main())
        assert used == 3
        assert state == StoreState(2, 2, 1, 3)
        assert [(a.status, a.seq) for a in later] == [(NEW, 3), (NEW, 4)]

    def test_the_backlog_bound_is_checked_before_the_reservation(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores(backlog_max=1) as s:
                fence = await fenced(s.capture, shard, reserved=1)
                with pytest.raises(Overloaded):
                    await s.capture.append(shard, 1_000, subs(terminal_id, [1, 2]), fence)

        asyncio.run(main())


class TestFencingTheStore:
    def test_install_raises_the_counter_to_the_floor_and_the_recorded_height(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                assert await s.capture.install(shard, 0, Fence(shard, 1, 40, 100), 35)
                appended = await s.capture.append(shard, 1_000, subs(terminal_id, [1]), Fence(shard, 1, 40, 100))
                return appended, await s.capture.state(shard), await s.stream.backlog(shard)

        appended, state, backlog = asyncio.run(main())
        assert appended[0].seq == 41
        assert state == StoreState(41, 41, 1, 100)
        assert backlog == 6  # 41 captured, 35 recorded

    def test_install_refuses_when_the_counter_moved_since_it_was_read(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                fence = await fenced(s.capture, shard)
                await s.capture.append(shard, 1_000, subs(terminal_id, [1]), fence)
                refused = await s.capture.install(shard, 0, Fence(shard, 2, 5, 100), 0)
                return refused, await s.capture.state(shard)

        refused, state = asyncio.run(main())
        assert refused is False
        assert state == StoreState(1, 1, 1, 1000)

    def test_extend_raises_the_reservation_of_the_same_epoch_only_and_never_lowers_it(self, stores):
        _, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                missing = await s.capture.extend(shard, 1, 50)
                await fenced(s.capture, shard, epoch=3, reserved=100)
                other = await s.capture.extend(shard, 2, 500)
                lower = await s.capture.extend(shard, 3, 50)
                after_lower = (await s.capture.state(shard)).reserved
                higher = await s.capture.extend(shard, 3, 200)
                return missing, other, lower, after_lower, higher, (await s.capture.state(shard)).reserved

        assert asyncio.run(main()) == (False, False, True, 100, True, 200)
