"""Recording into the PostgreSQL ledger: exactly once, hash-chained, crash-safe (real servers)."""

from __future__ import annotations

import asyncio

import pytest

from posray import leaf_hash, root_hash
from posray.adapters.redis_keys import stream_key
from posray.adapters.redis_stream import RedisShardStream
from posray.domain.chain import GENESIS_HASH, BatchHeader, record_bytes
from posray.domain.codes import make_code
from posray.domain.transaction import document_hash
from posray.domain.errors import LedgerCorrupted
from posray.domain.keys import terminal_key
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms


class SimulatedCrash(Exception):
    """The process died between the ledger commit and the stream acknowledgement."""


class CrashBeforeAck(RedisShardStream):
    """The real stream adapter, except that the process 'dies' when it would acknowledge."""

    async def acknowledge(self, shard, entry_ids, recorded_height):
        raise SimulatedCrash()


async def capture(b, keys, terminal_id: str, shard: int, counters, call_size: int = 50) -> dict[int, bytes]:
    """Capture documents in calls of `call_size` (one stream entry each); return canonical bytes by seq."""
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in counters]
    by_seq = {}
    for i in range(0, len(subs), call_size):
        calls = subs[i:i + call_size]
        for sub, out in zip(calls, await b.append(shard, now_ms(), calls)):
            by_seq[out.seq] = sub.canonical
    return by_seq


def assert_chained_ledger(entries, batches, shard: int, keys, canonical_by_seq: dict[int, bytes]):
    """Every captured seq once, batches chained from genesis, roots and leaves recomputed."""
    assert [e["seq"] for e in entries] == sorted(canonical_by_seq) == list(
        range(1, len(canonical_by_seq) + 1)
    )
    prev, next_seq = GENESIS_HASH, 1
    for number, batch in enumerate(batches):
        header = BatchHeader(
            shard=shard,
            batch_no=batch["batch_no"],
            first_seq=batch["first_seq"],
            last_seq=batch["last_seq"],
            merkle_root=bytes(batch["merkle_root"]),
            prev_hash=bytes(batch["prev_hash"]),
            recorded_at_ms=round(batch["recorded_at"].timestamp() * 1000),
        )
        assert header.batch_no == number
        assert (header.first_seq, header.prev_hash) == (next_seq, prev)
        assert bytes(batch["header_hash"]) == header.hash()
        rows = [e for e in entries if e["batch_no"] == number]
        assert [e["seq"] for e in rows] == list(range(header.first_seq, header.last_seq + 1))
        assert [e["leaf_index"] for e in rows] == list(range(len(rows)))
        for e in rows:
            expected = record_bytes(
                shard, e["seq"], make_code(keys.code, shard, e["seq"], document_hash(canonical_by_seq[e["seq"]])),
                round(e["accepted_at"].timestamp() * 1000), canonical_by_seq[e["seq"]],
            )
            assert bytes(e["record"]) == expected
            assert bytes(e["leaf_hash"]) == leaf_hash(expected)
        assert header.merkle_root == root_hash([bytes(e["leaf_hash"]) for e in rows])
        prev, next_seq = header.hash(), header.last_seq + 1
    assert next_seq == len(canonical_by_seq) + 1


class TestRecordBacklog:
    def test_a_backlog_is_recorded_once_in_chained_batches_and_the_stream_is_emptied(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                captured = await capture(b, keys, terminal_id, shard, range(1, 301))
                recorder = b.recorder(shard, keys.code, batch_max=64)
                steps = []
                while await b.stream.backlog(shard) and len(steps) < 50:
                    steps.append(await recorder.step())
                return (captured, steps, recorder.head, await b.ledger_rows(shard),
                        await b.batch_rows(shard), await b.xlen(shard), await b.xpending(shard))

        captured, steps, head, entries, batches, xlen, xpending = asyncio.run(main())
        assert sum(steps) == 300 and max(steps) <= 64
        assert len(batches) >= 5
        assert_chained_ledger(entries, batches, shard, keys, captured)
        assert {e["terminal_id"] for e in entries} == {terminal_id}
        assert [e["counter"] for e in entries] == list(range(1, 301))
        assert (head.last_seq, head.batch_no, head.header_hash) == (
            300, len(batches) - 1, bytes(batches[-1]["header_hash"]),
        )
        assert (xlen, xpending) == (0, 0)

    def test_a_new_recorder_continues_the_chain_of_an_earlier_one(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                captured = await capture(b, keys, terminal_id, shard, range(1, 31))
                await b.record_all(shard, keys.code)
                captured |= await capture(b, keys, terminal_id, shard, range(31, 61))
                await b.record_all(shard, keys.code)
                return captured, await b.ledger_rows(shard), await b.batch_rows(shard)

        captured, entries, batches = asyncio.run(main())
        assert len(batches) == 2
        assert_chained_ledger(entries, batches, shard, keys, captured)


class TestCrashSafety:
    def test_a_crash_between_commit_and_ack_neither_rewrites_nor_loses_entries(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                captured = await capture(b, keys, terminal_id, shard, range(1, 51))
                doomed = b.recorder(shard, keys.code, stream=CrashBeforeAck(b.redis, b.prefix))
                with pytest.raises(SimulatedCrash):
                    await doomed.step()
                committed = len(await b.ledger_rows(shard))
                left = (await b.xlen(shard), await b.xpending(shard))
                captured |= await capture(b, keys, terminal_id, shard, range(51, 71))
                survivor = b.recorder(shard, keys.code)  # a restarted writer: resyncs from PG
                first_step = await survivor.step()
                after_first = (len(await b.ledger_rows(shard)), await b.xpending(shard))
                while await b.stream.backlog(shard):
                    await survivor.step()
                return (captured, committed, left, first_step, after_first,
                        await b.ledger_rows(shard), await b.batch_rows(shard),
                        await b.xlen(shard), await b.xpending(shard))

        (captured, committed, left, first_step, after_first, entries, batches, xlen,
         xpending) = asyncio.run(main())
        assert committed == 50
        assert left == (50, 1)  # 50 documents in one pending entry (one capture call)
        # The redelivered 50 are only acknowledged: nothing new is written for them.
        assert first_step == 0
        assert after_first == (50, 0)
        assert [(b["first_seq"], b["last_seq"]) for b in batches] == [(1, 50), (51, 70)]
        assert_chained_ledger(entries, batches, shard, keys, captured)
        assert (xlen, xpending) == (0, 0)

    def test_a_writer_whose_ack_failed_resyncs_and_only_acknowledges_the_batch(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                captured = await capture(b, keys, terminal_id, shard, range(1, 21))
                flaky = CrashBeforeAck(b.redis, b.prefix)
                recorder = b.recorder(shard, keys.code, stream=flaky)
                with pytest.raises(SimulatedCrash):
                    await recorder.step()
                recorder._stream = b.stream  # Redis is back; the actor loop resyncs first
                await recorder.resync()
                assert await recorder.step() == 0
                captured |= await capture(b, keys, terminal_id, shard, range(21, 26))
                assert await recorder.step() == 5
                return (captured, await b.ledger_rows(shard), await b.batch_rows(shard),
                        await b.xlen(shard), await b.xpending(shard))

        captured, entries, batches, xlen, xpending = asyncio.run(main())
        assert [(b["first_seq"], b["last_seq"]) for b in batches] == [(1, 20), (21, 25)]
        assert_chained_ledger(entries, batches, shard, keys, captured)
        assert (xlen, xpending) == (0, 0)

    def test_entries_delivered_to_a_writer_that_died_are_recorded_once_by_the_next(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                captured = await capture(b, keys, terminal_id, shard, range(1, 41))
                doomed = b.recorder(shard, keys.code)
                await doomed.resync()
                delivered = await doomed._read()  # read, then the writer dies before recording
                del doomed
                pending = await b.xpending(shard)
                await b.record_all(shard, keys.code)
                return (captured, sum(len(e.documents) for e in delivered), pending, await b.ledger_rows(shard),
                        await b.batch_rows(shard), await b.xlen(shard), await b.xpending(shard))

        captured, delivered, pending, entries, batches, xlen, xpending = asyncio.run(main())
        assert delivered == 40 and pending == 1  # one entry: the capture call of 40
        assert_chained_ledger(entries, batches, shard, keys, captured)
        assert (xlen, xpending) == (0, 0)


class TestGapDetection:
    def test_a_missing_sequence_stops_recording_before_the_gap(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await capture(b, keys, terminal_id, shard, range(1, 31), call_size=1)
                assert await b.redis.xdel(stream_key(b.prefix, shard), "12-0") == 1
                recorder = b.recorder(shard, keys.code, batch_max=5)
                assert await recorder.step() == 5
                assert await recorder.step() == 5
                with pytest.raises(LedgerCorrupted, match="sequence 12 is missing"):
                    await recorder.step()
                with pytest.raises(LedgerCorrupted):
                    await recorder.step()  # still stuck: it never skips the hole
                restarted = b.recorder(shard, keys.code, batch_max=100)
                with pytest.raises(LedgerCorrupted):
                    while await restarted.step():
                        pass
                return await b.ledger_rows(shard)

        entries = asyncio.run(main())
        assert [e["seq"] for e in entries] == list(range(1, 11))
