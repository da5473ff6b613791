"""The ShardStream port (the ledger's consumer group): RedisShardStream and MemoryShardStream alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from posray.domain.errors import NotFenced
from tests.contract.support import fenced, subs
from tests.integration.support import fresh_terminal


async def _captured(s, terminal_id: str, shard: int, calls: list[range], at_ms: int = 1_000):
    """Capture one call per range of counters (one stream entry each); return the fence."""
    fence = await fenced(s.capture, shard)
    for i, counters in enumerate(calls):
        await s.capture.append(shard, at_ms + i, subs(terminal_id, counters), fence)
    return fence


class TestRead:
    def test_each_capture_call_is_one_entry_named_by_its_first_seq(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 6))

        async def main():
            async with stores() as s:
                await s.stream.ensure_group(shard)
                await s.stream.ensure_group(shard)  # again: no harm
                await _captured(s, terminal_id, shard, [range(1, 4), range(4, 6)])
                return await s.stream.read(shard, 10, None, pending=False)

        entries = asyncio.run(main())
        assert [(e.entry_id, e.first_seq, e.accepted_at_ms) for e in entries] == [(b"1-0", 1, 1_000), (b"4-0", 4, 1_001)]
        assert [e.documents for e in entries] == [tuple(d.canonical for d in docs[:3]), tuple(d.canonical for d in docs[3:])]
        assert [(c.seq, c.accepted_at_ms, c.canonical) for c in entries[1].captured()] == [
            (4, 1_001, docs[3].canonical), (5, 1_001, docs[4].canonical)]

    def test_new_reads_deliver_each_entry_once_and_at_most_count(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.stream.ensure_group(shard)
                await _captured(s, terminal_id, shard, [range(c, c + 1) for c in range(1, 6)])
                first = await s.stream.read(shard, 2, None, pending=False)
                rest = await s.stream.read(shard, 10, None, pending=False)
                return first, rest, await s.stream.read(shard, 10, None, pending=False)

        first, rest, none = asyncio.run(main())
        assert [e.first_seq for e in first] == [1, 2]
        assert [e.first_seq for e in rest] == [3, 4, 5]
        assert none == []

    def test_delivered_unacknowledged_entries_are_read_again_as_pending_after_an_id(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.stream.ensure_group(shard)
                await _captured(s, terminal_id, shard, [range(1, 3), range(3, 4), range(4, 6)])
                await s.stream.read(shard, 10, None, pending=False)
                again = await s.stream.read(shard, 10, None, pending=True)
                after = await s.stream.read(shard, 1, None, pending=True, after=b"1-0")
                return again, after

        again, after = asyncio.run(main())
        assert [e.first_seq for e in again] == [1, 3, 4]
        assert [e.first_seq for e in after] == [3]

    def test_a_blocking_read_waits_then_returns_nothing(self, stores):
        _, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.stream.ensure_group(shard)
                started = time.monotonic()
                entries = await s.stream.read(shard, 1, 100, pending=False)
                return entries, time.monotonic() - started

        entries, waited_s = asyncio.run(main())
        assert entries == [] and 0.08 <= waited_s < 2

    def test_a_blocking_read_returns_an_entry_captured_while_it_waits(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.stream.ensure_group(shard)
                fence = await fenced(s.capture, shard)

                async def later():
                    await asyncio.sleep(0.05)
                    await s.capture.append(shard, 1_000, subs(terminal_id, [1]), fence)

                task = asyncio.create_task(later())
                entries = await s.stream.read(shard, 1, 2_000, pending=False)
                await task
                return entries

        assert [e.first_seq for e in asyncio.run(main())] == [1]

    def test_a_read_without_the_group_creates_it_and_returns_nothing(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                nothing = await s.stream.read(shard, 10, None, pending=False)
                await _captured(s, terminal_id, shard, [range(1, 3)])
                return nothing, await s.stream.read(shard, 10, None, pending=False)

        nothing, entries = asyncio.run(main())
        assert nothing == []
        assert [e.first_seq for e in entries] == [1]


class TestAcknowledge:
    def test_acknowledged_entries_leave_pending_and_the_stream_and_the_backlog_shrinks(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await s.stream.ensure_group(shard)
                await _captured(s, terminal_id, shard, [range(1, 3), range(3, 6)])
                entries = await s.stream.read(shard, 10, None, pending=False)
                before = await s.stream.backlog(shard), await s.stream.oldest_accepted_ms(shard)
                await s.stream.acknowledge(shard, [entries[0].entry_id], 2)
                middle = (await s.stream.backlog(shard), await s.stream.oldest_accepted_ms(shard),
                          await s.capture.pending(shard, 1), await s.stream.read(shard, 10, None, pending=True))
                await s.stream.acknowledge(shard, [entries[1].entry_id], 5)
                after = (await s.stream.backlog(shard), await s.stream.oldest_accepted_ms(shard),
                         await s.stream.read(shard, 10, None, pending=True), await s.stream.captured_height(shard))
                return before, middle, after

        before, middle, after = asyncio.run(main())
        assert before == (5, 1_000)
        backlog, oldest, pending, redelivered = middle
        assert (backlog, oldest, pending) == (3, 1_001, None)
        assert [e.first_seq for e in redelivered] == [3]
        assert after == (0, None, [], 5)

    def test_the_recorded_height_is_only_ever_raised_and_bounds_each_shards_backlog(self, stores):
        terminal_id, shard = fresh_terminal()
        other = fresh_terminal()[1]

        async def main():
            async with stores() as s:
                await _captured(s, terminal_id, shard, [range(1, 11)])
                await s.stream.report_recorded(shard, 6)
                await s.stream.report_recorded(shard, 2)
                await s.stream.acknowledge(shard, [], 4)
                return await s.stream.backlogs([shard, other])

        assert asyncio.run(main()) == {shard: 4, other: 0}


class TestUnfence:
    def test_an_unfenced_store_refuses_capture_until_fenced_again(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                fence = await _captured(s, terminal_id, shard, [range(1, 2)])
                await s.stream.unfence(shard)
                with pytest.raises(NotFenced):
                    await s.capture.append(shard, 2_000, subs(terminal_id, [2]), fence)
                state = await s.capture.state(shard)
                again = await fenced(s.capture, shard, epoch=2)
                return state, await s.capture.append(shard, 3_000, subs(terminal_id, [2]), again)

        state, appended = asyncio.run(main())
        assert (state.counter, state.epoch, state.reserved) == (1, None, None)
        assert [a.seq for a in appended] == [2]

    def test_ping_answers(self, stores):
        async def main():
            async with stores() as s:
                await s.stream.ping()

        asyncio.run(main())
