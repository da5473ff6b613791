"""Micro-batching per ingest actor: fewer calls than requests, one result per item, bounded queues."""

from __future__ import annotations

import asyncio

import pytest

from deployments.api.errors import status_of
from posray.domain.errors import NotFound, Overloaded, PosrayError, Unavailable
from posray.services.batcher import IngestBatcher


class RecordingSend:
    """A `send` answering each item with ("ok", route, item); records calls; can block or fail."""

    def __init__(self, failure: Exception | None = None, delay_s: float = 0.0):
        self.calls: list[tuple[int, list]] = []
        self.failure = failure
        self.delay_s = delay_s
        self.in_flight = self.in_flight_max = 0

    async def __call__(self, route: int, items: list) -> list:
        self.calls.append((route, list(items)))
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight, self.in_flight_max)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        if self.failure is not None:
            raise self.failure
        return [("ok", route, item) for item in items]


def route_of(item) -> int:
    """Items are "route.name" strings or ints (route 0)."""
    return int(item.split(".")[0]) if isinstance(item, str) else 0


def batcher_for(send, batch_max=1000, wait_ms=0.0, queue_max=10_000, in_flight_max=2) -> IngestBatcher:
    return IngestBatcher(send, route_of, batch_max, wait_ms, queue_max, in_flight_max)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, timeout=5))


class TestBatching:
    def test_concurrent_requests_share_few_calls_and_get_their_own_results(self):
        send = RecordingSend(delay_s=0.005)

        async def client(batcher, n):
            await asyncio.sleep(0.001 * (n % 4))
            items = [f"4.{n}.{k}" for k in range(3)]
            return items, await batcher.submit(items)

        async def scenario():
            batcher = batcher_for(send)
            return await asyncio.gather(*(client(batcher, n) for n in range(60)))

        for items, results in run(scenario()):
            assert results == [("ok", 4, item) for item in items]
        delivered = [item for _, batch in send.calls for item in batch]
        assert sorted(delivered) == sorted(f"4.{n}.{k}" for n in range(60) for k in range(3))
        assert len(send.calls) < 60 / 4
        assert {route for route, _ in send.calls} == {4}

    def test_a_lone_request_goes_out_at_once_without_waiting(self):
        send = RecordingSend()

        async def scenario():
            batcher = batcher_for(send, wait_ms=0)
            started = asyncio.get_running_loop().time()
            result = await batcher.submit(["1.a"])
            return result, asyncio.get_running_loop().time() - started

        result, elapsed_s = run(scenario())
        assert result == [("ok", 1, "1.a")]
        assert elapsed_s < 0.05

    def test_no_more_calls_than_in_flight_max_run_at_once(self):
        send = RecordingSend(delay_s=0.01)

        async def client(batcher, n):
            await asyncio.sleep(0.001 * n)
            return await batcher.submit([f"0.{n}"])

        async def scenario():
            batcher = batcher_for(send, in_flight_max=2)
            return await asyncio.gather(*(client(batcher, n) for n in range(40)))

        results = run(scenario())
        assert results == [[("ok", 0, f"0.{n}")] for n in range(40)]
        assert send.in_flight_max == 2
        assert len(send.calls) < 40

    def test_no_batch_exceeds_batch_max_and_chunks_keep_their_order(self):
        send = RecordingSend(delay_s=0.002)

        async def scenario():
            batcher = batcher_for(send, batch_max=7, in_flight_max=1)
            return await asyncio.gather(*(batcher.submit([f"0.{n}.{k}" for k in range(3)]) for n in range(30)))

        results = run(scenario())
        assert results == [[("ok", 0, f"0.{n}.{k}") for k in range(3)] for n in range(30)]
        assert all(1 <= len(batch) <= 7 for _, batch in send.calls)
        assert [item for _, batch in send.calls for item in batch] == [
            f"0.{n}.{k}" for n in range(30) for k in range(3)]

    def test_a_chunk_bigger_than_batch_max_travels_alone(self):
        send = RecordingSend()
        assert run(batcher_for(send, batch_max=5).submit(list(range(12)))) == [("ok", 0, n) for n in range(12)]
        assert send.calls == [(0, list(range(12)))]

    def test_one_request_is_split_by_route_and_answered_in_its_order(self):
        send = RecordingSend()

        async def scenario():
            return await batcher_for(send).submit(["1.a", "2.c", "1.b"])

        assert run(scenario()) == [("ok", 1, "1.a"), ("ok", 2, "2.c"), ("ok", 1, "1.b")]
        assert sorted(send.calls) == [(1, ["1.a", "1.b"]), (2, ["2.c"])]

    def test_with_a_linger_an_item_arriving_within_the_wait_joins_the_open_batch(self):
        send = RecordingSend()

        async def scenario():
            batcher = batcher_for(send, wait_ms=200)
            first = asyncio.ensure_future(batcher.submit(["0.early"]))
            await asyncio.sleep(0.01)
            second = await batcher.submit(["0.late"])
            return await first, second

        assert run(scenario()) == ([("ok", 0, "0.early")], [("ok", 0, "0.late")])
        assert send.calls == [(0, ["0.early", "0.late"])]

    def test_a_cancelled_request_is_not_sent(self):
        send = RecordingSend(delay_s=0.01)

        async def scenario():
            batcher = batcher_for(send, in_flight_max=1)
            busy = asyncio.ensure_future(batcher.submit(["0.first"]))
            await asyncio.sleep(0)
            gone = asyncio.ensure_future(batcher.submit(["0.gone"]))
            kept = asyncio.ensure_future(batcher.submit(["0.kept"]))
            await asyncio.sleep(0)
            gone.cancel()
            return await busy, await kept

        assert run(scenario()) == ([("ok", 0, "0.first")], [("ok", 0, "0.kept")])
        assert [batch for _, batch in send.calls] == [["0.first"], ["0.kept"]]


class TestBackpressure:
    def test_a_full_queue_answers_overloaded_at_once_for_that_route_only(self):
        send = RecordingSend(delay_s=0.05)

        async def scenario():
            batcher = batcher_for(send, queue_max=10, in_flight_max=1)
            busy = asyncio.ensure_future(batcher.submit(["3.busy"]))
            await asyncio.sleep(0.01)  # the call is in flight: what follows waits in the queue
            queued = asyncio.ensure_future(batcher.submit([f"3.{n}" for n in range(10)]))
            await asyncio.sleep(0)
            depth = batcher.depth()
            refused = await batcher.submit(["3.one too many", "5.elsewhere"])
            await asyncio.gather(busy, queued)
            return refused, depth

        refused, depth = run(scenario())
        assert isinstance(refused[0], Overloaded)
        assert (status_of(refused[0]), refused[0].retry_after_s) == (503, 1)
        assert refused[1] == ("ok", 5, "5.elsewhere")
        assert depth[3] == 10

    def test_a_request_larger_than_the_room_left_queues_nothing(self):
        async def scenario():
            batcher = batcher_for(RecordingSend(), queue_max=10)
            results = await batcher.submit(list(range(11)))
            return results, batcher.depth()

        results, depth = run(scenario())
        assert all(isinstance(r, Overloaded) for r in results)
        assert depth.get(0, 0) == 0

    def test_the_queue_has_room_again_once_it_drains(self):
        async def scenario():
            batcher = batcher_for(RecordingSend(), queue_max=5)
            await batcher.submit(list(range(5)))
            return await batcher.submit([99])

        assert run(scenario()) == [("ok", 0, 99)]


class TestFailedSends:
    def test_a_posray_error_from_send_is_every_items_result(self):
        failure = NotFound("no such shard")
        assert run(batcher_for(RecordingSend(failure)).submit(["0.a", "0.b", "0.c"])) == [failure] * 3

    def test_an_unexpected_error_from_send_becomes_unavailable_for_every_item(self):
        results = run(batcher_for(RecordingSend(RuntimeError("actor died"))).submit(["6.a", "6.b", "6.c"]))
        assert len(results) == 3
        assert all(isinstance(r, Unavailable) and status_of(r) == 503 for r in results)
        assert all(isinstance(r, PosrayError) for r in results)

    def test_the_batcher_keeps_serving_after_a_failed_send(self):
        send = RecordingSend(RuntimeError("actor died"))

        async def scenario():
            batcher = batcher_for(send)
            first = await batcher.submit(["0.a"])
            send.failure = None
            return first, await batcher.submit(["0.b"])

        first, second = run(scenario())
        assert isinstance(first[0], Unavailable)
        assert second == [("ok", 0, "0.b")]


@pytest.mark.parametrize("in_flight_max", [1, 3])
def test_every_item_of_many_concurrent_requests_is_answered_exactly_once(in_flight_max):
    send = RecordingSend(delay_s=0.001)

    async def scenario():
        batcher = batcher_for(send, batch_max=50, in_flight_max=in_flight_max)
        return await asyncio.gather(*(batcher.submit([f"{n % 3}.{n}.{k}" for k in range(n % 5 + 1)])
                                      for n in range(200)))

    results = run(scenario())
    for n, got in enumerate(results):
        assert got == [("ok", n % 3, f"{n % 3}.{n}.{k}") for k in range(n % 5 + 1)]
    sent = [item for _, batch in send.calls for item in batch]
    assert len(sent) == len(set(sent)) == sum(n % 5 + 1 for n in range(200))
