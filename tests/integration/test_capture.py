"""Capture into Redis: sequences, idempotency, conflicts, backpressure (real Redis)."""

from __future__ import annotations

import asyncio

import pytest

from deployments.api.errors import status_of
from posray.adapters.redis_capture import CONFLICT, NEW, SAME
from posray.domain.codes import make_code
from posray.domain.errors import DocumentConflict, Overloaded, Unavailable
from posray.domain.keys import fiscal_sign, terminal_key
from posray.services import hop
from posray.services.capture import Accepted, append_batch, capture_owned
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms


def _docs(keys, terminal_id: str, counters, **kwargs) -> list[dict]:
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    return [make_document(terminal_id, c, key, **kwargs) for c in counters]


def _subs(docs: list[dict]):
    return [submission_of(d, SHARD_COUNT) for d in docs]


class TestAppendNewDocuments:
    def test_n_new_documents_get_consecutive_seqs_from_one_and_one_accepted_at(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                at = now_ms()
                first = await b.append(shard, at, _subs(_docs(keys, terminal_id, range(1, 8))))
                second = await b.append(shard, at + 5, _subs(_docs(keys, terminal_id, range(8, 11))))
                return first, second, await b.xlen(shard), await b.seq_counter(shard), at

        first, second, xlen, counter, at = asyncio.run(main())
        assert [a.status for a in first + second] == [NEW] * 10
        assert [a.seq for a in first + second] == list(range(1, 11))
        assert {a.accepted_at_ms for a in first} == {at}
        assert {a.accepted_at_ms for a in second} == {at + 5}
        assert (xlen, counter) == (10, 10)


class TestIdempotency:
    def test_the_same_document_again_returns_its_seq_and_first_accepted_at(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        subs = _subs(_docs(keys, terminal_id, range(1, 4)))

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                first = await b.append(shard, 1_000, subs)
                again = await b.append(shard, 2_000, [subs[1], subs[0]])
                return first, again, await b.xlen(shard)

        first, again, xlen = asyncio.run(main())
        assert [a.status for a in again] == [SAME, SAME]
        assert [(a.seq, a.accepted_at_ms) for a in again] == [(2, 1_000), (1, 1_000)]
        assert xlen == 3

    def test_append_batch_returns_the_same_code_and_fiscal_sign_flagged_duplicate(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        subs = _subs(_docs(keys, terminal_id, range(1, 3)))

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                first = await append_batch(b.capture, b.fences, keys, shard, subs)
                await asyncio.sleep(0.01)  # a retry comes later: its accepted_at must not move
                again = await append_batch(b.capture, b.fences, keys, shard, subs)
                return first, again, await b.xlen(shard)

        first, again, xlen = asyncio.run(main())
        assert all(isinstance(r, Accepted) for r in first + again)
        assert [r.duplicate for r in first] == [False, False]
        assert [r.duplicate for r in again] == [True, True]
        for one, two, sub in zip(first, again, subs):
            assert (two.code, two.seq, two.accepted_at_ms, two.fiscal_sign) == (
                one.code, one.seq, one.accepted_at_ms, one.fiscal_sign,
            )
            assert one.code == make_code(keys.code, shard, one.seq, sub.document_hash)
            assert one.fiscal_sign == fiscal_sign(
                keys.fiscal, one.code, sub.document_hash, one.accepted_at_ms
            )
        assert xlen == 2

    def test_a_different_document_under_the_same_counter_is_a_conflict_and_writes_nothing(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        original = _subs(_docs(keys, terminal_id, [1]))
        other = _subs(_docs(keys, terminal_id, [1], seed="another sale"))
        assert other[0].document_hash != original[0].document_hash

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                first = await b.append(shard, 1_000, original)
                before = (await b.xlen(shard), await b.seq_counter(shard))
                raw = await b.append(shard, 2_000, other)
                results = await append_batch(b.capture, b.fences, keys, shard, other)
                after = (await b.xlen(shard), await b.seq_counter(shard))
                return first, raw, results, before, after

        first, raw, results, before, after = asyncio.run(main())
        assert raw[0].status == CONFLICT
        assert (raw[0].seq, raw[0].accepted_at_ms) == (first[0].seq, 1_000)
        assert isinstance(results[0], DocumentConflict)
        assert status_of(results[0]) == 409
        assert results[0].field == "counter"
        assert before == after == (1, 1)

    def test_duplicates_and_conflicts_within_one_batch(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id, shard = fresh_terminal()
        a, c = _subs(_docs(keys, terminal_id, [1, 2]))
        b_conflict = _subs(_docs(keys, terminal_id, [1], seed="not a"))[0]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                out = await b.append(shard, 7_000, [a, a, b_conflict, c, c])
                return out, await b.xlen(shard)

        out, xlen = asyncio.run(main())
        assert [(o.status, o.seq) for o in out] == [
            (NEW, 1), (SAME, 1), (CONFLICT, 1), (NEW, 2), (SAME, 2),
        ]
        assert {o.accepted_at_ms for o in out} == {7_000}
        assert xlen == 2


class TestBackpressure:
    def test_a_full_backlog_answers_overloaded_and_writes_nothing(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        subs = _subs(_docs(keys, terminal_id, range(1, 6)))

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix, backlog_max=3) as b:
                await b.append(shard, 1_000, subs[:2])
                with pytest.raises(Overloaded) as raw:
                    await b.append(shard, 2_000, subs[2:4])
                with pytest.raises(Overloaded):
                    await append_batch(b.capture, b.fences, keys, shard, subs[2:4])
                state = (
                    await b.xlen(shard),
                    await b.seq_counter(shard),
                    await b.capture.seq_of(shard, terminal_id, 3),
                )
                last = await b.append(shard, 3_000, subs[2:3])
                return raw.value, state, last

        error, state, last = asyncio.run(main())
        assert status_of(error) == 503 and error.retry_after_s >= 1
        assert state == (2, 2, None)
        # Exactly at the maximum is still accepted, and the refused call burnt no sequence.
        assert [(o.status, o.seq) for o in last] == [(NEW, 3)]


class TestReadsOfCapturedDocuments:
    def test_pending_returns_the_captured_document_until_it_is_recorded(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        subs = _subs(_docs(keys, terminal_id, range(1, 4)))

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                out = await b.append(shard, 4_242, subs)
                before = [await b.capture.pending(shard, o.seq) for o in out]
                unknown = await b.capture.pending(shard, 99)
                await b.record_all(shard, keys.code)
                after = [await b.capture.pending(shard, o.seq) for o in out]
                return before, unknown, after

        before, unknown, after = asyncio.run(main())
        assert before == [(4_242, s.canonical) for s in subs]
        assert unknown is None
        assert after == [None, None, None]

    def test_seq_of_names_the_sequence_of_a_terminal_counter(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        subs = _subs(_docs(keys, terminal_id, [5, 3, 9]))

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await b.append(shard, 1_000, subs)
                return [await b.capture.seq_of(shard, terminal_id, c) for c in (3, 5, 9, 4)]

        assert asyncio.run(main()) == [2, 1, 3, None]


class TestCaptureOwned:
    def test_documents_of_several_shards_are_answered_in_order_and_unowned_shards_fail_alone(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        (t1, s1), (t2, s2), (t3, s3) = fresh_terminal(), fresh_terminal(), fresh_terminal()
        subs = _subs(_docs(keys, t1, [1, 2]) + _docs(keys, t2, [1]) + _docs(keys, t3, [1]))
        wire = hop.receive_submissions(hop.send_submissions([subs[0], subs[2], subs[3], subs[1]]))

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                first = await capture_owned(b.capture, b.fences, keys, {s1, s2}, wire)
                again = await capture_owned(b.capture, b.fences, keys, {s1, s2}, wire)
                return first, again, await b.xlen(s1), await b.xlen(s2), await b.xlen(s3)

        first, again, *lengths = asyncio.run(main())
        accepted = first[:2] + [first[3]]
        assert [(a.shard, a.seq, a.duplicate) for a in accepted] == [(s1, 1, False), (s2, 1, False), (s1, 2, False)]
        assert all(a.code == make_code(keys.code, a.shard, a.seq, s.document_hash)
                   for a, s in zip(accepted, (subs[0], subs[2], subs[1])))
        assert isinstance(first[2], Unavailable) and status_of(first[2]) == 503
        assert [again[i].duplicate for i in (0, 1, 3)] == [True, True, True]
        assert [again[i].code for i in (0, 1, 3)] == [a.code for a in accepted]
        assert hop.receive_results(hop.send_results(first))[:2] == first[:2], "the Ray hop keeps every field"
        assert lengths == [2, 1, 0]
