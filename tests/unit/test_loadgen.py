"""The load generator against a tiny asyncio HTTP server written here (no Ray, no posray)."""

from __future__ import annotations

import asyncio
import re
import statistics

import pytest

from tooling.bench.loadgen import LoadPlan, encode_request, run_load

_LENGTH = re.compile(rb"content-length: *(\d+)")


class EchoServer:
    """Answers `{"ok":<body>}`; 503 for bodies starting with "fail"; no answer to "hang".

    Args:
        delay_s: service time per request.
        serial: serve one request at a time (a server whose capacity is 1 / delay_s).
        chunked: frame answers with Transfer-Encoding: chunked instead of Content-Length.
        close_every: answer every n-th request with "Connection: close" and close.
    """

    def __init__(self, delay_s=0.0, serial=False, chunked=False, close_every=0):
        self.delay_s, self.serial, self.chunked, self.close_every = delay_s, serial, chunked, close_every
        self.connections = self.requests = 0
        self.lock = asyncio.Lock()
        self.port = 0

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(int(_LENGTH.search(head.lower()).group(1)))
                self.requests += 1
                if body == b"hang":
                    await asyncio.sleep(3600)
                await self.serve_time()
                close = self.close_every and self.requests % self.close_every == 0
                writer.write(self.answer(503 if body.startswith(b"fail") else 200, b'{"ok":%s}' % body, close))
                if close:
                    await writer.drain()
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def serve_time(self):
        if self.serial:
            async with self.lock:
                await asyncio.sleep(self.delay_s)
        elif self.delay_s:
            await asyncio.sleep(self.delay_s)

    def answer(self, status: int, body: bytes, close: bool) -> bytes:
        head = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n" % status
        if close:
            head += b"connection: close\r\n"
        if self.chunked:
            half = len(body) // 2
            chunks = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (half, body[:half], len(body) - half, body[half:])
            return head + b"transfer-encoding: chunked\r\n\r\n" + chunks
        return head + b"content-length: %d\r\n\r\n%s" % (len(body), body)


def body_of(i: int) -> bytes:
    return b"fail%d" % i if i % 3 == 0 else b"%d" % i


class Answers:
    """on_response: checks each answer belongs to its request and counts accepted ones."""

    def __init__(self, body=body_of):
        self.body = body
        self.seen: dict[int, int] = {}

    def __call__(self, index: int, status: int, body: bytes) -> int:
        assert body == b'{"ok":%s}' % self.body(index)
        assert index not in self.seen
        self.seen[index] = status
        return 1 if status == 200 else 0


def load(server: EchoServer, plan_kwargs: dict, count: int = 10**9, body=body_of):
    answers = Answers(body)
    plan = LoadPlan("127.0.0.1", server.port, **plan_kwargs)
    request = lambda i: encode_request("127.0.0.1", "/x", body(i))  # noqa: E731
    return answers, run_load(plan, request, range(count), answers)


def run(coro_factory):
    return asyncio.run(coro_factory())


class TestClosedLoop:
    def test_every_request_is_answered_once_over_connections_kept_alive(self):
        async def main():
            async with EchoServer(delay_s=0.001) as server:
                answers, job = load(server, dict(connections=4, duration_s=0.5), body=lambda i: b"%d" % i)
                result = await job
                return server, answers, result

        server, answers, result = run(main)
        assert result.sent > 100
        assert len(answers.seen) == result.sent == len(result.status) == server.requests
        assert set(result.status) == {200} and not result.errors
        assert sum(result.accepted) == result.sent
        assert result.connects == server.connections == 4  # keep-alive: no reconnects
        assert 0.45 < result.elapsed_s < 1.5

    def test_errors_are_counted_by_status(self):
        async def main():
            async with EchoServer() as server:
                answers, job = load(server, dict(connections=3, duration_s=0.3))
                return answers, await job

        answers, result = run(main)
        failed = sum(1 for i in answers.seen if i % 3 == 0)
        assert failed > 0
        assert result.errors == {"http_503": failed}
        assert list(result.status).count(503) == failed
        assert sum(result.accepted) == result.sent - failed

    def test_the_run_stops_when_the_requests_run_out(self):
        async def main():
            async with EchoServer() as server:
                return (await load(server, dict(connections=4, duration_s=5), count=10)[1])

        result = run(main)
        assert result.exhausted and result.sent == 10 and len(result.status) == 10
        assert result.elapsed_s < 1


class TestOpenLoop:
    def test_requests_are_sent_at_the_fixed_rate(self):
        async def main():
            async with EchoServer() as server:
                return await load(server, dict(connections=8, duration_s=1.0, rate_rps=400))[1]

        result = run(main)
        # Every request falls due on the fixed schedule; how many go out before the end depends
        # on how busy the machine is (a saturated client reports them as unsent, never hides them).
        assert result.sent + result.unsent == 400 and result.sent >= 100
        assert sorted(result.due_s) == pytest.approx([k / 400 for k in range(result.sent)], abs=1e-6)
        assert statistics.median(result.latency_s) < 0.5

    def test_latency_runs_from_the_intended_send_time_so_queueing_shows(self):
        """A server with capacity 100/s offered 300/s: latencies must grow through the run."""
        async def main():
            async with EchoServer(delay_s=0.01, serial=True) as server:
                return await load(server, dict(connections=2, duration_s=1.0, rate_rps=300))[1]

        result = run(main)
        by_due = sorted(zip(result.due_s, result.latency_s))
        early = [lat for _, lat in by_due[:5]]
        late = [lat for _, lat in by_due[-10:]]
        # The n-th request served was due at n/300 s and answered at n/100 s at the earliest.
        assert result.sent >= 40
        assert min(late) > 0.2 and statistics.mean(late) > 3 * statistics.mean(early)
        assert result.unsent > 100  # due, never sent before the end: reported, not hidden

    def test_closed_loop_against_the_same_slow_server_hides_that_queue(self):
        async def main():
            async with EchoServer(delay_s=0.01, serial=True) as server:
                return await load(server, dict(connections=2, duration_s=0.5))[1]

        result = run(main)
        assert max(result.latency_s) < 0.3  # about 2 connections x 10 ms, however long the run


class TestTransport:
    def test_chunked_answers_and_connection_close_are_handled(self):
        async def main():
            async with EchoServer(chunked=True, close_every=5) as server:
                answers, job = load(server, dict(connections=2, duration_s=0.5), body=lambda i: b"%d" % i)
                return server, answers, await job

        server, answers, result = run(main)
        assert result.sent > 20 and not result.errors
        assert len(answers.seen) == result.sent
        assert result.connects == server.connections > 2  # reopened after each close

    def test_an_answer_later_than_the_timeout_is_an_error_with_unknown_outcome(self):
        async def main():
            async with EchoServer() as server:
                hang = lambda i: b"hang" if i == 0 else b"%d" % i  # noqa: E731
                return await load(server, dict(connections=1, duration_s=1.2, timeout_s=0.3),
                                  body=hang)[1]

        result = run(main)
        assert result.errors["timeout"] == 1
        assert result.unanswered == [0]
        assert result.sent > 10  # the connection was reopened and went on
