"""The bench's load driver: worker processes running the load generator, progress every second.

Shared by `posray bench` (tooling/bench/cli.py) and the baselines it compares against
(tooling/bench/baselines.py).
"""

from __future__ import annotations

import asyncio
import collections
import time
from array import array
from multiprocessing import get_context

from tooling.bench.loadgen import LoadPlan, run_load
from tooling.bench.workload import AckRecorder, RequestBuilder

_READY_TIMEOUT_S = 120


async def drive(options, builder: RequestBuilder, host: str, port: int, monitor, say,
                recorder=AckRecorder):
    """Run the load in worker processes; sample the backlog and print progress every second.

    Args:
        recorder: the class of each worker's on_response, built as recorder(first_doc, batch_size).
    """
    from tooling.bench.report import merge

    ctx = get_context("spawn")
    count = min(options.processes, options.connections)
    progress = ctx.Array("q", 3 * count, lock=False)
    workers = []
    for w in range(count):
        plan = LoadPlan(host, port, options.connections // count + (w < options.connections % count),
                        options.duration_s,
                        None if options.rate is None else options.rate / options.batch_size / count,
                        options.timeout_s)
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, name=f"posray-bench-{w}", daemon=True,
                           args=(there, progress, w, plan, builder, (w, builder.request_count, count), recorder))
        proc.start()
        there.close()
        workers.append((proc, here))
    try:
        for proc, pipe in workers:
            if await _receive(proc, pipe, _READY_TIMEOUT_S) != "ready":
                raise RuntimeError("a bench worker failed to start")
        start = time.monotonic() + 0.1
        wall_start_ms = int((time.time() + 0.1) * 1000)
        for _, pipe in workers:
            pipe.send(start)
        samples, results = await _watch(workers, progress, start, monitor, options, say)
    finally:
        for proc, _ in workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    acks = (array("q"), array("q"), array("q"))
    for _, worker_acks, _ in results:
        for mine, theirs in zip(acks, worker_acks):
            mine.extend(theirs)
    doc_errors = sum((r[2] for r in results), collections.Counter())
    return merge([r[0] for r in results]), acks, doc_errors, samples, (start, wall_start_ms)


async def _watch(workers, progress, start: float, monitor, options, say):
    samples, results, last_accepted = [], [None] * len(workers), 0
    while any(r is None for r in results):
        await asyncio.sleep(max(0.0, start + len(samples) + 1 - time.monotonic()))
        backlog, captured = await monitor.sample()
        t = time.monotonic() - start
        samples.append((t, backlog, captured))
        accepted, errors = sum(progress[1::3]), sum(progress[2::3])
        say(f"{t:5.0f}s  accepted {accepted:>11,} docs  {accepted - last_accepted:>8,}/s  "
            f"errors {errors:,}  backlog {backlog:,}")
        last_accepted = accepted
        for w, (proc, pipe) in enumerate(workers):
            if results[w] is None and (pipe.poll() or not proc.is_alive()):
                results[w] = await _receive(proc, pipe, 30)
        if t > options.duration_s + options.timeout_s + 60:
            raise RuntimeError("bench workers did not finish")
    return samples, results


async def _receive(proc, pipe, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while not pipe.poll():
        if not proc.is_alive() and not pipe.poll():
            raise RuntimeError(f"bench worker {proc.name} exited with code {proc.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench worker {proc.name} did not answer in {timeout_s} s")
        await asyncio.sleep(0.05)
    return pipe.recv()


def _worker(pipe, progress, slot: int, plan: LoadPlan, builder: RequestBuilder, span: tuple,
            recorder_class=AckRecorder) -> None:
    """One load generator process: connect, wait for the common start, run, send results back."""
    builder.open()
    recorder = recorder_class(builder.first_doc, builder.batch_size)

    async def ready() -> float:
        pipe.send("ready")
        return await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    def tick(answers: int, accepted: int, errors: int) -> None:
        progress[3 * slot : 3 * slot + 3] = [answers, accepted, errors]

    try:
        import uvloop  # comes with uvicorn[standard] (Ray Serve); less CPU per request

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    result = runner(run_load(plan, builder, range(*span), recorder, ready=ready, progress=tick))
    pipe.send((result, recorder.acks(), recorder.doc_errors))
