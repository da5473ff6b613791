"""Micro-batching per shard: many concurrent requests become one call per shard batch.

Each shard has a bounded queue; a single flusher per shard takes up to `batch_max` items,
waiting at most `wait_ms` for more once the first arrives, and sends them in one call. A full
queue answers Overloaded at once (backpressure) instead of growing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from posray.domain.errors import Overloaded, PosrayError, Unavailable

log = logging.getLogger(__name__)
Send = Callable[[int, list], Awaitable[list]]


class ShardBatcher:
    """Groups submissions per shard and sends each group with one `send(shard, items)`."""

    def __init__(self, send: Send, batch_max: int, wait_ms: float, queue_max: int):
        self._send = send
        self._batch_max = batch_max
        self._wait_s = wait_ms / 1000
        self._queue_max = queue_max
        self._queues: dict[int, asyncio.Queue] = {}
        self._flushers: dict[int, asyncio.Task] = {}

    def submit_many(self, shard: int, items: list) -> list[asyncio.Future]:
        """Queue `items` for `shard`; return one future per item, resolved with its result.

        Raises:
            Overloaded: the shard's queue has no room for all the items.
        """
        queue = self._queue(shard)
        if queue.qsize() + len(items) > self._queue_max:
            raise Overloaded(f"shard {shard} intake queue is full", retry_after_s=1)
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            future = loop.create_future()
            queue.put_nowait((item, future))
            futures.append(future)
        return futures

    def _queue(self, shard: int) -> asyncio.Queue:
        queue = self._queues.get(shard)
        if queue is None:
            queue = self._queues[shard] = asyncio.Queue()
        flusher = self._flushers.get(shard)
        if flusher is None or flusher.done():
            self._flushers[shard] = asyncio.get_running_loop().create_task(self._flush(shard, queue))
        return queue

    async def _flush(self, shard: int, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._wait_s
            while len(batch) < self._batch_max:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except asyncio.TimeoutError:
                    break
            await self._deliver(shard, batch)

    async def _deliver(self, shard: int, batch: list) -> None:
        live = [(item, future) for item, future in batch if not future.done()]
        if not live:
            return
        try:
            results = await self._send(shard, [item for item, _ in live])
        except PosrayError as e:
            results = [e] * len(live)
        except Exception as e:  # an actor died or a call failed: the terminal retries
            log.warning("shard %d call failed: %s", shard, type(e).__name__)
            results = [Unavailable(f"shard {shard} is unavailable, retry")] * len(live)
        for (_, future), result in zip(live, results):
            if not future.done():
                future.set_result(result)

    def depth(self) -> dict[int, int]:
        return {shard: q.qsize() for shard, q in self._queues.items()}
