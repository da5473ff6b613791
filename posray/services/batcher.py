"""Micro-batching per route: many concurrent requests become one call per ingest actor.

A route is whatever one call goes to (the IngestShard actor owning the documents' shards).
Each route has a bounded queue of chunks (one chunk per request and route) and one flusher
that keeps at most `in_flight_max` calls running. While every call slot is busy, arriving
chunks pile up and leave together in the next call, up to `batch_max` documents: a lone
request goes out at once, and under load batches grow by themselves. A positive `wait_ms`
additionally lets a batch linger that long to fill up. A full queue answers Overloaded at
once (backpressure) instead of growing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Awaitable, Callable, Hashable

from posray.domain.errors import Overloaded, PosrayError, Unavailable

log = logging.getLogger(__name__)
Send = Callable[[Hashable, list], Awaitable[list]]


class _Route:
    """One route's queue: chunks of (items, future) and how many items they hold."""

    __slots__ = ("chunks", "size", "in_flight", "wake", "flusher", "calls")

    def __init__(self):
        self.chunks: collections.deque[tuple[list, asyncio.Future]] = collections.deque()
        self.size = 0
        self.in_flight = 0
        self.wake = asyncio.Event()
        self.flusher: asyncio.Task | None = None
        self.calls: set[asyncio.Task] = set()  # strong references to the calls in flight


class IngestBatcher:
    """Groups items per route and sends each group with one `send(route, items)`."""

    def __init__(self, send: Send, route_of: Callable[[object], Hashable], batch_max: int,
                 wait_ms: float, queue_max: int, in_flight_max: int = 2):
        self._send = send
        self._route_of = route_of
        self._batch_max = batch_max
        self._wait_s = wait_ms / 1000
        self._queue_max = queue_max
        self._in_flight_max = in_flight_max
        self._routes: dict[Hashable, _Route] = {}

    async def submit(self, items: list) -> list:
        """Send `items` (grouped by route, batched with other requests); one result per item.

        A route whose queue is full answers Overloaded for its items; the others go ahead.
        """
        groups: dict[Hashable, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(self._route_of(item), []).append(i)
        results: list = [None] * len(items)
        waiting = []
        for route, indexes in groups.items():
            try:
                waiting.append((indexes, self._enqueue(route, [items[i] for i in indexes])))
            except PosrayError as e:
                for i in indexes:
                    results[i] = e
        for indexes, future in waiting:
            for i, result in zip(indexes, await future):
                results[i] = result
        return results

    def _enqueue(self, route: Hashable, items: list) -> asyncio.Future:
        r = self._routes.get(route)
        if r is None:
            r = self._routes[route] = _Route()
        if r.size + len(items) > self._queue_max:
            raise Overloaded(f"ingest queue for {route} is full", retry_after_s=1)
        future = asyncio.get_running_loop().create_future()
        r.chunks.append((items, future))
        r.size += len(items)
        r.wake.set()
        if r.flusher is None or r.flusher.done():
            r.flusher = asyncio.get_running_loop().create_task(self._flush(route, r))
        return future

    async def _flush(self, route: Hashable, r: _Route) -> None:
        while True:
            while not r.chunks or r.in_flight >= self._in_flight_max:
                r.wake.clear()
                await r.wake.wait()
            if self._wait_s and r.size < self._batch_max:
                await self._linger(r)
            batch = self._take(r)
            r.in_flight += 1
            call = asyncio.get_running_loop().create_task(self._deliver(route, r, batch))
            r.calls.add(call)
            call.add_done_callback(r.calls.discard)

    async def _linger(self, r: _Route) -> None:
        deadline = asyncio.get_running_loop().time() + self._wait_s
        while r.size < self._batch_max:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            r.wake.clear()
            try:
                await asyncio.wait_for(r.wake.wait(), left)
            except asyncio.TimeoutError:
                return

    def _take(self, r: _Route) -> list[tuple[list, asyncio.Future]]:
        """Chunks totalling at most batch_max items (a bigger chunk travels alone)."""
        batch = [r.chunks.popleft()]
        size = len(batch[0][0])
        while r.chunks and size + len(r.chunks[0][0]) <= self._batch_max:
            chunk = r.chunks.popleft()
            batch.append(chunk)
            size += len(chunk[0])
        r.size -= size
        return batch

    async def _deliver(self, route: Hashable, r: _Route, batch: list) -> None:
        try:
            live = [(items, future) for items, future in batch if not future.done()]
            if live:
                await self._answer(route, live)
        finally:
            r.in_flight -= 1
            r.wake.set()

    async def _answer(self, route: Hashable, live: list) -> None:
        items = [item for chunk, _ in live for item in chunk]
        try:
            results = await self._send(route, items)
        except PosrayError as e:
            results = [e] * len(items)
        except Exception as e:  # an actor died or a call failed: the terminal retries
            log.warning("ingest call to %s failed: %s", route, type(e).__name__)
            results = [Unavailable(f"ingest {route} is unavailable, retry")] * len(items)
        start = 0
        for chunk, future in live:
            if not future.done():
                future.set_result(results[start:start + len(chunk)])
            start += len(chunk)

    def depth(self) -> dict[Hashable, int]:
        """Items waiting per route (not counting calls in flight)."""
        return {route: r.size for route, r in self._routes.items()}
