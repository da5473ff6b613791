"""Per-shard micro-batching: fewer calls than items, one result per item, bounded queues."""

from __future__ import annotations

import asyncio

import pytest

from posray.domain.errors import NotFound, Overloaded, PosrayError, Unavailable
from posray.services.batcher import ShardBatcher


class RecordingSend:
    """A `send` function that answers each item with ("ok", shard, item) and records calls."""

    def __init__(self, failure: Exception | None = None):
        self.calls: list[tuple[int, list]] = []
        self.failure = failure

    async def __call__(self, shard: int, items: list) -> list:
        self.calls.append((shard, list(items)))
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        return [("ok", shard, item) for item in items]


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=5))


class TestBatching:
    def test_concurrent_submissions_to_one_shard_share_few_calls_and_get_their_own_results(self):
        send = RecordingSend()

        async def client(batcher, n):
            await asyncio.sleep(0.001 * (n % 4))
            items = [f"{n}.{k}" for k in range(3)]
            return items, await asyncio.gather(*batcher.submit_many(4, items))

        async def scenario():
            batcher = ShardBatcher(send, batch_max=1000, wait_ms=2, queue_max=10_000)
            return await asyncio.gather(*(client(batcher, n) for n in range(60)))

        for items, results in run(scenario()):
            assert results == [("ok", 4, item) for item in items]
        delivered = [item for _, batch in send.calls for item in batch]
        assert sorted(delivered) == sorted(f"{n}.{k}" for n in range(60) for k in range(3))
        assert len(send.calls) < len(delivered) / 10
        assert {shard for shard, _ in send.calls} == {4}

    def test_no_batch_exceeds_batch_max_and_items_keep_their_order(self):
        send = RecordingSend()

        async def scenario():
            batcher = ShardBatcher(send, batch_max=7, wait_ms=1, queue_max=1000)
            futures = batcher.submit_many(0, list(range(100)))
            return await asyncio.gather(*futures)

        assert run(scenario()) == [("ok", 0, n) for n in range(100)]
        assert all(1 <= len(batch) <= 7 for _, batch in send.calls)
        assert [item for _, batch in send.calls for item in batch] == list(range(100))
        assert len(send.calls) == 15

    def test_each_shard_is_sent_separately(self):
        send = RecordingSend()

        async def scenario():
            batcher = ShardBatcher(send, batch_max=100, wait_ms=1, queue_max=100)
            first = batcher.submit_many(1, ["a", "b"])
            second = batcher.submit_many(2, ["c"])
            return await asyncio.gather(*first, *second)

        assert run(scenario()) == [("ok", 1, "a"), ("ok", 1, "b"), ("ok", 2, "c")]
        assert sorted(send.calls) == [(1, ["a", "b"]), (2, ["c"])]

    def test_an_item_arriving_within_the_wait_joins_the_open_batch(self):
        send = RecordingSend()

        async def scenario():
            batcher = ShardBatcher(send, batch_max=100, wait_ms=200, queue_max=100)
            first = batcher.submit_many(0, ["early"])
            await asyncio.sleep(0.01)
            second = batcher.submit_many(0, ["late"])
            return await asyncio.gather(*first, *second)

        assert run(scenario()) == [("ok", 0, "early"), ("ok", 0, "late")]
        assert send.calls == [(0, ["early", "late"])]

    def test_a_cancelled_waiter_is_not_sent(self):
        send = RecordingSend()

        async def scenario():
            batcher = ShardBatcher(send, batch_max=100, wait_ms=1, queue_max=100)
            gone, kept = batcher.submit_many(0, ["gone", "kept"])
            gone.cancel()
            return await kept

        assert run(scenario()) == ("ok", 0, "kept")
        assert send.calls == [(0, ["kept"])]


class TestBackpressure:
    def test_a_full_queue_answers_overloaded_at_once(self):
        async def scenario():
            batcher = ShardBatcher(RecordingSend(), batch_max=100, wait_ms=1, queue_max=10)
            accepted = batcher.submit_many(3, list(range(10)))
            with pytest.raises(Overloaded) as caught:
                batcher.submit_many(3, ["one too many"])
            depth = batcher.depth()
            await asyncio.gather(*accepted)
            return caught.value, depth

        error, depth = run(scenario())
        assert (error.status, error.retry_after_s) == (503, 1)
        assert depth == {3: 10}

    def test_a_request_larger_than_the_room_left_queues_nothing(self):
        async def scenario():
            batcher = ShardBatcher(RecordingSend(), batch_max=100, wait_ms=1, queue_max=10)
            with pytest.raises(Overloaded):
                batcher.submit_many(0, list(range(11)))
            return batcher.depth()

        assert run(scenario()) == {0: 0}

    def test_the_queue_has_room_again_once_it_drains(self):
        async def scenario():
            batcher = ShardBatcher(RecordingSend(), batch_max=100, wait_ms=1, queue_max=5)
            await asyncio.gather(*batcher.submit_many(0, list(range(5))))
            return await asyncio.gather(*batcher.submit_many(0, ["again"]))

        assert run(scenario()) == [("ok", 0, "again")]


class TestFailedSends:
    def test_a_posray_error_from_send_is_every_items_result(self):
        failure = NotFound("no such shard")
        send = RecordingSend(failure)

        async def scenario():
            batcher = ShardBatcher(send, batch_max=100, wait_ms=1, queue_max=100)
            return await asyncio.gather(*batcher.submit_many(0, ["a", "b", "c"]))

        assert run(scenario()) == [failure] * 3

    def test_an_unexpected_error_from_send_becomes_unavailable_for_every_item(self):
        send = RecordingSend(RuntimeError("actor died"))

        async def scenario():
            batcher = ShardBatcher(send, batch_max=100, wait_ms=1, queue_max=100)
            return await asyncio.gather(*batcher.submit_many(6, ["a", "b", "c"]))

        results = run(scenario())
        assert len(results) == 3
        assert all(isinstance(r, Unavailable) and r.status == 503 for r in results)
        assert all(isinstance(r, PosrayError) for r in results)

    def test_the_batcher_keeps_serving_after_a_failed_send(self):
        send = RecordingSend(RuntimeError("actor died"))

        async def scenario():
            batcher = ShardBatcher(send, batch_max=100, wait_ms=1, queue_max=100)
            first = await asyncio.gather(*batcher.submit_many(0, ["a"]))
            send.failure = None
            second = await asyncio.gather(*batcher.submit_many(0, ["b"]))
            return first, second

        first, second = run(scenario())
        assert isinstance(first[0], Unavailable)
        assert second == [("ok", 0, "b")]
