"""A capture store that lost its idempotency keys never records a terminal's resend twice (real servers).

The store of one shard is emptied (what FLUSHALL, a restore or a replacement does to it); the
IngestShard's capture service re-fences the shard, the fence remembers that the keys are gone,
and for documents issued before that, capture asks the ledger before handing out a sequence.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

from posray.adapters.redis_keys import shard_tag
from posray.domain.errors import DocumentConflict
from posray.domain.keys import terminal_key
from posray.services.capture import Accepted, append_batch
from posray.services.lookup import by_code
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal


def _doc(keys, terminal_id: str, counter: int, issued_at: str | None = None, seed=None):
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    return submission_of(make_document(terminal_id, counter, key, issued_at=issued_at, seed=seed), SHARD_COUNT)


async def _lose_store(b, shard: int) -> int:
    """Delete every key of the shard in the capture store, as a flush or a replacement would."""
    names = [k async for k in b.redis.scan_iter(match=f"{shard_tag(b.prefix, shard)}:*", count=1000)]
    return await b.redis.delete(*names) if names else 0


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_a_resend_after_the_store_lost_its_keys_gets_its_first_answer_and_is_recorded_once(
        redis_url, schema_dsn, key_prefix, keys):
    terminal_id, shard = fresh_terminal()
    before = _iso(int(time.time() * 1000) - 60_000)

    async def main():
        async with backends(redis_url, schema_dsn, key_prefix) as b:
            recorded_doc, pending_doc = _doc(keys, terminal_id, 1, before), _doc(keys, terminal_id, 2, before)
            first = await append_batch(b.capture, b.fences, keys, shard, [recorded_doc])
            assert await b.record_all(shard, keys.code) == 1
            lost = await append_batch(b.capture, b.fences, keys, shard, [pending_doc])  # acknowledged, not recorded
            assert await _lose_store(b, shard) > 0

            again = await append_batch(b.capture, b.fences, keys, shard, [recorded_doc, pending_doc])
            other = await append_batch(b.capture, b.fences, keys, shard,
                                       [_doc(keys, terminal_id, 1, before, seed="another sale")])
            new_sale = await append_batch(b.capture, b.fences, keys, shard, [_doc(keys, terminal_id, 3)])
            recorded = await b.record_all(shard, keys.code)
            rows = await b.ledger_rows(shard)
            resolved = [await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, a.code)
                        for a in (first[0], lost[0], again[1], new_sale[0])]
            return first, lost, again, other, new_sale, recorded, rows, resolved

    first, lost, again, other, new_sale, recorded, rows, resolved = asyncio.run(main())
    resent, recaptured = again
    assert isinstance(resent, Accepted) and resent.duplicate
    assert (resent.code, resent.seq, resent.accepted_at_ms) == (first[0].code, first[0].seq, first[0].accepted_at_ms)
    # The lost document comes back under the first free sequence, which is its old one: its old
    # code (bound to the same document there) resolves again.
    assert isinstance(recaptured, Accepted) and not recaptured.duplicate
    assert (recaptured.seq, recaptured.code) == (lost[0].seq, lost[0].code)
    assert isinstance(other[0], DocumentConflict) and other[0].field == "counter"
    assert recorded == 2, "the recaptured document and the new sale; the resend is not recorded again"
    assert sorted((r["terminal_id"], r["counter"]) for r in rows) == [(terminal_id, 1), (terminal_id, 2), (terminal_id, 3)]
    assert [r["status"] for r in resolved] == ["recorded"] * 4
    assert [r["counter"] for r in resolved] == [1, 2, 2, 3]


def test_a_store_that_lost_nothing_asks_the_ledger_nothing(redis_url, schema_dsn, key_prefix, keys):
    terminal_id, shard = fresh_terminal()

    async def main():
        async with backends(redis_url, schema_dsn, key_prefix) as b:
            await append_batch(b.capture, b.fences, keys, shard, [_doc(keys, terminal_id, 1)])
            assert await b.record_all(shard, keys.code) == 1
            fence = b.fences.current(shard)
            asked = await b.fences.recorded_since_keys_lost(shard, fence, [_doc(keys, terminal_id, 1)])
            await _lose_store(b, shard)
            await append_batch(b.capture, b.fences, keys, shard, [_doc(keys, terminal_id, 2)])
            after = b.fences.current(shard)
            late = await b.fences.recorded_since_keys_lost(shard, after, [_doc(keys, terminal_id, 1)])
            return fence, asked, after, late

    fence, asked, after, late = asyncio.run(main())
    assert fence.keys_lost_at_ms is None and asked == {}
    assert after.keys_lost_at_ms is not None and after.epoch > fence.epoch
    assert list(late) == [(terminal_id, 1)], "issued before the loss: the ledger is asked, and holds it"


def test_reconcile_lists_a_sale_recorded_twice_after_the_keys_were_lost(redis_url, schema_dsn, key_prefix, keys):
    """The race left open: the store lost its keys while a sale was on its way; it got recorded twice."""
    from posray.adapters.redis_idempotency import RedisIdempotencyKeys
    from posray.services.reconcile import reconcile

    terminal_id, shard = fresh_terminal()

    async def main():
        async with backends(redis_url, schema_dsn, key_prefix) as b:
            sale = _doc(keys, terminal_id, 1)
            await append_batch(b.capture, b.fences, keys, shard, [sale])
            assert await b.record_all(shard, keys.code) == 1
            clean = await reconcile(RedisIdempotencyKeys(b.redis, b.prefix), b.ledger, b.fence_ledger, {shard})
            await _lose_store(b, shard)
            await append_batch(b.capture, b.fences, keys, shard, [_doc(keys, terminal_id, 2)])  # re-fenced
            await b.append(shard, int(time.time() * 1000), [sale])  # the race: captured past the check
            assert await b.record_all(shard, keys.code) == 2
            return clean, await reconcile(RedisIdempotencyKeys(b.redis, b.prefix), b.ledger, b.fence_ledger, {shard})

    clean, found = asyncio.run(main())
    assert clean.ok and clean.recorded_twice == []
    assert not found.ok
    assert found.recorded_twice == [(shard, terminal_id, 1, (1, 3))]
