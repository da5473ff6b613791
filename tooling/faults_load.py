"""The terminals of `posray faults`: the bench's load engine, also noting Retry-After and answer times."""

from __future__ import annotations

import asyncio
import collections
import re
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing import get_context

import orjson

from tooling.bench import loadgen
from tooling.bench.workload import AckRecorder, RequestBuilder

READY_TIMEOUT_S = 120
RETRY_ROUNDS = 10
RETRY_CONNECTIONS = 8
BODY_SHOWN = 80
_DIGITS = re.compile(r"\d+")


@dataclass
class Stream:
    """One open-loop stream of requests (single documents or batches) and what it got back."""

    plan: loadgen.LoadPlan
    builder: RequestBuilder
    requests: int
    result: loadgen.LoadResult | None = None
    acks: tuple = ()
    doc_errors: collections.Counter = field(default_factory=collections.Counter)
    retry_after: array = field(default_factory=lambda: array("B"))  # per answer, as result.status
    wait_s: array = field(default_factory=lambda: array("d"))  # per answer: from send to answer
    batch_rejects: collections.Counter = field(default_factory=collections.Counter)  # inside 200 answers
    error_bodies: collections.Counter = field(default_factory=collections.Counter)  # (status, body start)


class _Connection(loadgen._Connection):
    """A bench connection that also notes whether the answer carried Retry-After."""

    retry_after = False

    def _parse(self):
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                self.retry_after = b"\r\nretry-after:" in bytes(self.buf[:end]).lower()
        return super()._parse()


class _Engine(loadgen._Engine):
    """The bench engine, keeping Retry-After and the send-to-answer time of every answer."""

    def __init__(self, *args):
        super().__init__(*args)
        self.retry_after, self.wait_s, self._extra = array("B"), array("d"), (0, 0.0)
        self.batch_rejects: collections.Counter = collections.Counter()
        self.error_bodies: collections.Counter = collections.Counter()

    async def open_all(self) -> None:
        self.conns = [_Connection(self) for _ in range(self.plan.connections)]
        await asyncio.gather(*(c.open() for c in self.conns))

    def answered(self, conn, status: int, body: bytes) -> None:
        self._extra = (int(conn.retry_after), time.monotonic() - conn.sent_at)
        if status == 200 and b'"rejected"' in body:
            self._count_rejects(body)
        elif status >= 500:  # who answered and why: posray's JSON reason or a proxy's text
            self.error_bodies[(status, _why(body))] += 1
        super().answered(conn, status, body)

    def _count_rejects(self, body: bytes) -> None:
        """Documents refused inside a batch answer: by status, and whether they say when to retry."""
        for r in orjson.loads(body).get("results", ()):
            if r.get("status") == "rejected":
                code = r.get("status_code")
                hint = "" if code != 503 else (
                    " + retry_after_s" if "retry_after_s" in r else " without retry_after_s")
                self.batch_rejects[f"in-batch {code}{hint}"] += 1
                self.error_bodies[(f"in-batch {code}", _DIGITS.sub("N", str(r.get("reason"))))] += 1

    def failed(self, conn, kind: str) -> None:
        self._extra = (0, time.monotonic() - conn.sent_at)
        super().failed(conn, kind)

    def _record(self, due: float, latency: float, status: int, accepted: int) -> None:
        super()._record(due, latency, status, accepted)
        self.retry_after.append(self._extra[0])
        self.wait_s.append(self._extra[1])


def _why(body: bytes) -> str:
    """posray's error and reason (numbers folded, so that shards group), else the body's start."""
    try:
        parsed = orjson.loads(body)
        return f"{parsed['error']}: {_DIGITS.sub('N', str(parsed.get('reason')))}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body[:BODY_SHOWN].decode(errors="replace")


async def run_stream(stream: Stream, start: float, indexes=None) -> Stream:
    """Run one stream from `start` (time.monotonic()) and fill in its results."""
    builder = stream.builder
    recorder = AckRecorder(builder.first_doc, builder.batch_size)
    engine = _Engine(stream.plan, builder, iter(indexes or range(stream.requests)), recorder)
    await engine.open_all()
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    ticker = asyncio.ensure_future(engine.tick(None))
    try:
        await engine.drive(start)
    finally:
        ticker.cancel()
        engine.close()
    stream.result, stream.acks, stream.doc_errors = engine.result, recorder.acks(), recorder.doc_errors
    stream.retry_after, stream.wait_s = engine.retry_after, engine.wait_s
    stream.batch_rejects, stream.error_bodies = engine.batch_rejects, engine.error_bodies
    return stream


def _worker(pipe, streams: list[Stream]) -> None:
    """The load process: open every stream's documents, wait for the common start, run them."""
    for stream in streams:
        stream.builder.open()

    async def main() -> list[Stream]:
        pipe.send("ready")
        start = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        return await asyncio.gather(*(run_stream(s, start) for s in streams))

    pipe.send(asyncio.run(main()))


class LoadProcess:
    """The streams run in a separate process, so that fault injection never slows the terminals."""

    def __init__(self, streams: list[Stream]):
        ctx = get_context("spawn")
        self._pipe, there = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, args=(there, streams), name="posray-faults-load",
                                 daemon=True)
        self._proc.start()
        there.close()

    async def start(self, delay_s: float = 0.2) -> float:
        """Wait until the process is ready, then start the load; return the start time."""
        if await self._receive(READY_TIMEOUT_S) != "ready":
            raise RuntimeError("the load process did not start")
        start = time.monotonic() + delay_s
        self._pipe.send(start)
        return start

    async def results(self, timeout_s: float) -> list[Stream]:
        """The finished streams (waits at most `timeout_s`)."""
        try:
            return await self._receive(timeout_s)
        finally:
            self._proc.join(timeout=5)
            if self._proc.is_alive():
                self._proc.kill()

    def close(self) -> None:
        """Stop the load process if it still runs (a scenario failed half-way)."""
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(timeout=5)

    async def _receive(self, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while not self._pipe.poll():
            if not self._proc.is_alive() and not self._pipe.poll():
                raise RuntimeError(f"the load process exited with code {self._proc.exitcode}")
            if time.monotonic() > deadline:
                self._proc.kill()
                raise RuntimeError(f"the load process did not answer in {timeout_s} s")
            await asyncio.sleep(0.05)
        return self._pipe.recv()


def unacknowledged(streams: list[Stream]) -> list[int]:
    """Documents sent in the streams that got no acknowledgement (refused, timed out, unanswered)."""
    sent: set[int] = set()
    for s in streams:
        first, size = s.builder.first_doc, s.builder.batch_size
        sent.update(range(first, first + (s.result.last_index + 1) * size))
    for s in streams:
        sent.difference_update(s.acks[0])
    return sorted(sent)


async def resend(series, host: str, port: int, docs: list[int], timeout_s: float, say) -> list[Stream]:
    """What a terminal does after a 503 or no answer: send the same documents again, one by one.

    Rounds of a closed loop over the still unacknowledged documents, 2 s apart (the Retry-After
    posray sends), until every one is acknowledged or RETRY_ROUNDS pass.
    """
    rounds: list[Stream] = []
    for _ in range(RETRY_ROUNDS):
        if not docs:
            break
        plan = loadgen.LoadPlan(host, port, min(RETRY_CONNECTIONS, len(docs)), duration_s=3600,
                                timeout_s=timeout_s, drain_s=timeout_s + 2)
        builder = RequestBuilder(series, f"{host}:{port}", 0, 1).open()
        stream = await run_stream(Stream(plan, builder, len(docs)), time.monotonic(), docs)
        rounds.append(stream)
        acked = set(stream.acks[0])
        docs = [j for j in docs if j not in acked]
        say(f"  resent: {len(acked):,} acknowledged, {len(docs):,} still unacknowledged")
        if docs:
            await asyncio.sleep(2)
    return rounds
