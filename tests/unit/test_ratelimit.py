"""The public endpoints' limiter: token buckets per client, bounded, and its 429 on the HTTP edge."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from deployments.http_api import PosrayApi
from posray.services.ratelimit import RateLimiter, client_address, retry_after_s
from posray.settings import Settings


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(rate=10.0, burst=5, clients_max=100):
    clock = Clock()
    return RateLimiter(rate, burst, clients_max, clock), clock


class TestTokenBuckets:
    def test_a_rested_client_may_send_a_whole_burst_at_once(self):
        lim, _ = limiter(burst=5)
        assert [lim.acquire("a") for _ in range(5)] == [0.0] * 5

    def test_the_request_after_the_burst_is_refused_with_the_wait_for_one_token(self):
        lim, _ = limiter(rate=10.0, burst=5)
        for _ in range(5):
            lim.acquire("a")
        assert lim.acquire("a") == pytest.approx(0.1)

    def test_tokens_come_back_at_the_rate(self):
        lim, clock = limiter(rate=10.0, burst=5)
        for _ in range(5):
            lim.acquire("a")
        clock.now += 0.3
        assert [lim.acquire("a") for _ in range(3)] == [0.0] * 3
        assert lim.acquire("a") > 0

    def test_a_refused_request_costs_no_token(self):
        lim, clock = limiter(rate=10.0, burst=1)
        lim.acquire("a")
        for _ in range(50):
            assert lim.acquire("a") > 0
        clock.now += 0.1
        assert lim.acquire("a") == 0.0

    def test_a_long_rest_refills_no_more_than_the_burst(self):
        lim, clock = limiter(rate=10.0, burst=3)
        lim.acquire("a")
        clock.now += 3600
        assert [lim.acquire("a") == 0.0 for _ in range(4)] == [True, True, True, False]

    def test_clients_have_separate_buckets(self):
        lim, _ = limiter(burst=2)
        lim.acquire("a"), lim.acquire("a")
        assert lim.acquire("a") > 0
        assert lim.acquire("b") == 0.0

    def test_a_rate_of_zero_turns_limiting_off(self):
        lim, _ = limiter(rate=0, burst=1)
        assert all(lim.acquire("a") == 0.0 for _ in range(1000))
        assert len(lim) == 0

    @pytest.mark.parametrize("burst,clients_max", [(0, 10), (5, 0)])
    def test_a_burst_or_client_bound_below_one_is_refused(self, burst, clients_max):
        with pytest.raises(ValueError):
            RateLimiter(1.0, burst, clients_max)


class TestBoundedMemory:
    def test_no_more_than_clients_max_buckets_are_kept(self):
        lim, _ = limiter(clients_max=100)
        for n in range(10_000):
            lim.acquire(f"10.0.{n // 256}.{n % 256}")
        assert len(lim) == 100

    def test_the_least_recently_seen_client_is_forgotten_first(self):
        lim, _ = limiter(burst=1, clients_max=2)
        lim.acquire("a"), lim.acquire("b")
        lim.acquire("a")  # refused, but seen: b is now the oldest
        lim.acquire("c")  # evicts b
        assert lim.acquire("a") > 0  # still remembered, still empty
        assert lim.acquire("b") == 0.0  # forgotten: a fresh bucket


class TestRetryAfter:
    @pytest.mark.parametrize("wait_s,header", [(0.001, 1), (0.5, 1), (1.0, 1), (1.2, 2), (30.0, 30)])
    def test_the_header_is_whole_seconds_rounded_up_and_at_least_one(self, wait_s, header):
        assert retry_after_s(wait_s) == header


class TestClientAddress:
    def scope(self, peer=("10.1.1.1", 5555), forwarded=()):
        return {"client": peer, "headers": [(b"x-forwarded-for", v.encode()) for v in forwarded]}

    def test_without_trusted_proxies_the_peer_is_the_client(self):
        assert client_address(self.scope(forwarded=["6.6.6.6"]), 0) == "10.1.1.1"

    def test_one_trusted_proxy_means_the_last_forwarded_entry(self):
        scope = self.scope(forwarded=["6.6.6.6, 203.0.113.7"])
        assert client_address(scope, 1) == "203.0.113.7"

    def test_entries_the_client_wrote_are_skipped(self):
        scope = self.scope(forwarded=["1.1.1.1, 2.2.2.2", "198.51.100.4, 203.0.113.7"])
        assert client_address(scope, 2) == "198.51.100.4"

    def test_too_few_entries_fall_back_to_the_peer(self):
        assert client_address(self.scope(forwarded=[]), 1) == "10.1.1.1"

    def test_a_scope_without_a_client_has_one_shared_address(self):
        assert client_address({"client": None, "headers": []}, 0) == "unknown"


class _Backend:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.limiter = RateLimiter(settings.public_rate_per_s, settings.public_burst, settings.public_clients_max)


def get(api: PosrayApi, path: str, client=("192.0.2.1", 4000)):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"",
             "client": client}
    asyncio.run(api(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), orjson.loads(sent[1]["body"])


class TestTheHttpEdge:
    def api(self, **settings):
        backend = _Backend(Settings(**settings))

        async def built():
            return backend
        return PosrayApi(built)

    def test_a_client_over_its_burst_gets_429_with_retry_after_and_a_json_error(self):
        api = self.api(public_rate_per_s=0.5, public_burst=3)
        statuses = [get(api, "/v1/log/99/checkpoint")[0] for _ in range(3)]
        assert statuses == [404] * 3  # limited only after the burst (no such shard log)
        status, headers, body = get(api, "/v1/log/99/checkpoint")
        assert status == 429
        assert headers[b"retry-after"] == b"2"
        assert body["error"] == "rate_limited" and body["retry_after_s"] == 2

    @pytest.mark.parametrize("path", ["/v1/receipts/X", "/v1/receipts", "/r/X", "/v1/log/0/checkpoint",
                                      "/.well-known/posray/log-key"])
    def test_every_public_route_is_limited(self, path):
        api = self.api(public_rate_per_s=0.001, public_burst=1)
        get(api, "/v1/log/99/checkpoint")
        assert get(api, path)[0] == 429

    def test_another_address_is_not_limited_by_the_first(self):
        api = self.api(public_rate_per_s=0.001, public_burst=1)
        get(api, "/v1/log/99/checkpoint", client=("192.0.2.1", 1))
        assert get(api, "/v1/log/99/checkpoint", client=("192.0.2.2", 1))[0] == 404

    def test_health_and_unknown_routes_are_not_limited(self):
        api = self.api(public_rate_per_s=0.001, public_burst=1)
        assert [get(api, "/v1/nothing")[0] for _ in range(3)] == [404] * 3
        assert [get(api, "/healthz")[0] for _ in range(3)] == [200] * 3
