"""Capture calls per second with and without replication (WAIT + WAITAOF), on private Valkeys.

Starts a primary and one replica (AOF, appendfsync always, no sentinels), fences one shard by
hand (no PostgreSQL needed) and times RedisCapture.append with replicas_min 0 and 1, for
single documents and batches, one call at a time and with several calls in flight.

    .venv/bin/python scripts/bench_replicated_capture.py --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import time

from posray.adapters.redis_capture import RedisCapture, connect
from posray.domain.fence import Fence
from posray.domain.transaction import Submission
from tooling.embedded.redis_set import ReplicatedRedis

_counter = itertools.count(1)


def _batch(shard: int, size: int) -> list[Submission]:
    out = []
    for _ in range(size):
        n = next(_counter)
        body = b'{"terminal_id":"T-bench","counter":%d,"items":[{"sku":"A","qty":1}],"total":100}' % n
        out.append(Submission("T-bench", n, shard, hashlib.sha256(body).digest(), body))
    return out


async def _run(url: str, replicas_min: int, size: int, in_flight: int, seconds: float) -> tuple[float, float]:
    client = connect(url)
    shard = next(_counter)
    capture = RedisCapture(client, f"bench{shard}", 3600, 10**9, replicas_min, 1000)
    fence = Fence(shard, 1, 0, 10**12)
    await capture.install(shard, 0, fence, 0)
    calls = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal calls
        while time.perf_counter() < deadline:
            await capture.append(shard, int(time.time() * 1000), _batch(shard, size), fence)
            calls += 1

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    await client.aclose()
    return calls / elapsed, (time.process_time() - cpu) / max(calls, 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with ReplicatedRedis(replicas=1, sentinels=0) as rs:
        url = f"redis://127.0.0.1:{rs.primary_port()}/0"
        print(f"load average before: {os.getloadavg()}")
        print(f"{'docs/call':>9} {'in flight':>9} {'replicas':>8} {'calls/s':>9} {'docs/s':>9} {'client µs/call':>15}")
        for size, in_flight in ((1, 1), (1, 8), (100, 1), (100, 8)):
            for replicas_min in (0, 1):
                rate, cpu_us = asyncio.run(_run(url, replicas_min, size, in_flight, args.seconds))
                print(f"{size:>9} {in_flight:>9} {replicas_min:>8} {rate:>9.0f} {rate * size:>9.0f} {cpu_us:>15.0f}")
        print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
