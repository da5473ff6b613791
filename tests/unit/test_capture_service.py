"""Use cases append_batch and capture_owned on the in-memory capture store and ledger (no servers)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from posray.domain.codes import make_code
from posray.domain.errors import DocumentConflict, NotFenced, Overloaded, Unavailable
from posray.domain.keys import fiscal_sign
from posray.services.capture import Accepted, append_batch, capture_owned
from tests.unit.memory_world import IDEMPOTENCY_TTL_S, KEYS, World, doc, docs, now_ms

TERMINAL = "T-unit"


def _shard() -> int:
    return doc(TERMINAL, 1).shard


class TestAppendBatch:
    def test_new_documents_get_consecutive_seqs_codes_and_fiscal_signs(self):
        w, subs = World(), docs(TERMINAL, range(1, 4))

        async def main():
            return await append_batch(w.capture, w.fences, KEYS, _shard(), subs)

        out = asyncio.run(main())
        assert [r.seq for r in out] == [1, 2, 3]
        assert len({r.accepted_at_ms for r in out}) == 1
        for r, sub in zip(out, subs):
            assert isinstance(r, Accepted) and not r.duplicate
            assert r.code == make_code(KEYS.code, _shard(), r.seq, sub.document_hash)
            assert r.fiscal_sign == fiscal_sign(KEYS.fiscal, r.code, sub.document_hash, r.accepted_at_ms)
        assert w.store.documents(_shard()) == 3

    def test_a_resend_gets_the_same_answer_flagged_duplicate_and_writes_nothing(self):
        w, subs = World(), docs(TERMINAL, range(1, 3))

        async def main():
            first = await append_batch(w.capture, w.fences, KEYS, _shard(), subs)
            await asyncio.sleep(0.002)
            return first, await append_batch(w.capture, w.fences, KEYS, _shard(), subs[::-1])

        first, again = asyncio.run(main())
        assert [r.duplicate for r in again] == [True, True]
        assert [(r.code, r.seq, r.accepted_at_ms, r.fiscal_sign) for r in again] == [
            (r.code, r.seq, r.accepted_at_ms, r.fiscal_sign) for r in first[::-1]]
        assert w.store.documents(_shard()) == 2

    def test_another_document_under_a_used_counter_is_a_conflict(self):
        w = World()

        async def main():
            await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 1)])
            return await append_batch(w.capture, w.fences, KEYS, _shard(),
                                      [doc(TERMINAL, 1, seed="another"), doc(TERMINAL, 2)])

        conflict, accepted = asyncio.run(main())
        assert isinstance(conflict, DocumentConflict) and conflict.field == "counter"
        assert isinstance(accepted, Accepted) and accepted.seq == 2

    def test_a_full_backlog_is_overloaded_and_writes_nothing(self):
        w = World(backlog_max=2)

        async def main():
            await append_batch(w.capture, w.fences, KEYS, _shard(), docs(TERMINAL, [1, 2]))
            with pytest.raises(Overloaded):
                await append_batch(w.capture, w.fences, KEYS, _shard(), docs(TERMINAL, [3]))

        asyncio.run(main())
        assert w.store.documents(_shard()) == 2

    def test_capture_owned_answers_per_submission_and_refuses_shards_it_does_not_own(self):
        w, mine = World(), doc(TERMINAL, 1)
        foreign = next(doc(f"T-{i}", 1) for i in range(100) if doc(f"T-{i}", 1).shard != mine.shard)

        async def main():
            return await capture_owned(w.capture, w.fences, KEYS, {mine.shard}, [foreign, mine])

        refused, accepted = asyncio.run(main())
        assert isinstance(refused, Unavailable)
        assert isinstance(accepted, Accepted) and accepted.seq == 1


class TestFencing:
    def test_the_first_capture_fences_the_shard_once(self):
        w = World()

        async def main():
            for c in range(1, 4):
                await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, c)])
            return await w.fence_ledger.latest_epoch(_shard())

        assert asyncio.run(main()) == 1
        assert w.fences.refences == 1

    def test_a_store_that_lost_its_fence_and_data_is_refenced_above_the_ledger_and_the_loss_recorded(self):
        w = World()

        async def main():
            recorded = await append_batch(w.capture, w.fences, KEYS, _shard(), docs(TERMINAL, [1, 2]))
            await w.record_all(_shard())
            lost = await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 3)])
            w.store.lose_shard(_shard())
            after = await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 4)])
            return recorded, lost, after, await w.fence_ledger.losses(_shard()), w.fences.current(_shard())

        recorded, lost, after, losses, fence = asyncio.run(main())
        assert [r.seq for r in recorded + lost] == [1, 2, 3]
        assert after[0].seq == 3, "the first sequence above the ledger (2); 3 is reported lost"
        assert [(x.lost_from, x.lost_to, x.exact) for x in losses] == [(3, 3, True)]
        assert (fence.epoch, fence.floor) == (2, 2)
        assert fence.keys_lost_at_ms is not None
        assert w.fences.refences == 2

    def test_a_store_restarted_without_its_scripts_has_every_shard_refenced_without_a_loss(self):
        w, mine = World(), doc(TERMINAL, 1)
        other = next(doc(f"T-{i}", 1) for i in range(100) if doc(f"T-{i}", 1).shard != mine.shard)

        async def main():
            await append_batch(w.capture, w.fences, KEYS, mine.shard, [mine])
            await append_batch(w.capture, w.fences, KEYS, other.shard, [other])
            w.store.restart()
            again = await append_batch(w.capture, w.fences, KEYS, mine.shard, [doc(TERMINAL, 2)])
            suspect = w.fences.refences
            await append_batch(w.capture, w.fences, KEYS, other.shard, [doc(other.terminal_id, 2)])
            return again, suspect, [await w.fence_ledger.latest_epoch(s) for s in (mine.shard, other.shard)]

        again, suspect, epochs = asyncio.run(main())
        assert again[0].seq == 2
        assert suspect == 3 and w.fences.refences == 4, "the other shard is fenced again before its next capture"
        assert epochs == [2, 2]
        assert w.db.fences and all(not f.plan.lost_from for fs in w.db.fences.values() for f in fs.values())

    def test_a_used_up_reservation_is_extended_under_the_same_fence(self):
        w = World(reservation=4)

        async def main():
            big = await append_batch(w.capture, w.fences, KEYS, _shard(), docs(TERMINAL, range(1, 11)))
            small = [await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, c)]) for c in range(11, 16)]
            await asyncio.sleep(0)  # let an extension ahead of use finish
            return big, small, (await w.fence_ledger.latest([_shard()]))[_shard()]

        big, small, state = asyncio.run(main())
        assert [r.seq for r in big] + [r[0].seq for r in small] == list(range(1, 16))
        assert w.fences.refences == 1 and state.epoch == 1
        assert state.reserved >= 15 and w.fences.current(_shard()).reserved == state.reserved

    def test_sequences_a_rewound_store_hands_out_again_are_not_acknowledged(self):
        w = World()

        async def main():
            await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 1)])
            old = w.store.snapshot()
            await append_batch(w.capture, w.fences, KEYS, _shard(), docs(TERMINAL, [2, 3]))
            w.store.rewind(old)  # behind posray's back: same fence, counter back at 1
            with pytest.raises(NotFenced, match="a second time"):
                await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 4)])
            retry = await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 4)])
            return retry, await w.fence_ledger.losses(_shard()), w.fences.current(_shard())

        retry, losses, fence = asyncio.run(main())
        assert [(x.lost_from, x.lost_to) for x in losses] == [(2, 3)]
        assert fence.epoch == 2
        # The retry finds its document where the rewound store put it, under the new fence.
        assert (retry[0].seq, retry[0].duplicate) == (2, True)


class TestKeysLost:
    def test_a_resend_after_the_store_lost_its_keys_gets_its_first_answer_from_the_ledger(self):
        w = World()
        before = now_ms() - 60_000
        recorded_doc, pending_doc = doc(TERMINAL, 1, before), doc(TERMINAL, 2, before)

        async def main():
            first = await append_batch(w.capture, w.fences, KEYS, _shard(), [recorded_doc])
            assert await w.record_all(_shard()) == 1
            lost = await append_batch(w.capture, w.fences, KEYS, _shard(), [pending_doc])
            w.store.lose_shard(_shard())
            again = await append_batch(w.capture, w.fences, KEYS, _shard(), [recorded_doc, pending_doc])
            other = await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 1, before, seed="x")])
            return first, lost, again, other, await w.record_all(_shard())

        first, lost, (resent, recaptured), other, recorded = asyncio.run(main())
        assert resent.duplicate and (resent.code, resent.seq, resent.accepted_at_ms, resent.fiscal_sign) == (
            first[0].code, first[0].seq, first[0].accepted_at_ms, first[0].fiscal_sign)
        assert not recaptured.duplicate and (recaptured.seq, recaptured.code) == (lost[0].seq, lost[0].code)
        assert isinstance(other[0], DocumentConflict)
        assert recorded == 1, "only the recaptured document; the resend is not recorded twice"

    def test_the_ledger_is_asked_only_about_documents_issued_before_the_loss_and_within_the_keys_lifetime(self):
        w = World()
        asked: list = []
        recorded = w.fence_ledger.recorded

        async def counting(shard, counters):
            asked.append(list(counters))
            return await recorded(shard, counters)

        w.fence_ledger.recorded = counting
        early, late = doc(TERMINAL, 1, now_ms() - 60_000), doc(TERMINAL, 2, now_ms() + 7_200_000)

        async def main():
            await append_batch(w.capture, w.fences, KEYS, _shard(), [doc(TERMINAL, 9)])
            steady = list(asked)
            w.store.lose_shard(_shard())
            await append_batch(w.capture, w.fences, KEYS, _shard(), [early, late])
            fence = w.fences.current(_shard())
            asked_after_loss = list(asked)
            long_ago = dataclasses.replace(fence, keys_lost_at_ms=now_ms() - 2 * IDEMPOTENCY_TTL_S * 1000)
            return steady, fence, asked_after_loss, await w.fences.recorded_since_keys_lost(_shard(), long_ago, [early])

        steady, fence, asked_after_loss, after_ttl = asyncio.run(main())
        assert steady == [], "a store that lost nothing: the ledger is not asked"
        assert fence.keys_lost_at_ms is not None
        assert asked_after_loss == [[(TERMINAL, 1)]], "the sale issued two hours after the loss is not asked about"
        assert after_ttl == {} and asked == asked_after_loss, "keys lost longer ago than their lifetime: not asked"
