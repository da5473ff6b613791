"""The merchant API's HTTP edge with an in-memory merchant store: statuses, headers, rate limit."""

from __future__ import annotations

import asyncio

import orjson

from deployments.http_api import PosrayApi
from posray.domain.keys import OperatorKeys
from posray.domain.merchant_token import issue_token
from posray.services.ratelimit import RateLimiter
from posray.settings import Settings

KEYS = OperatorKeys.from_seed(bytes(range(32)))


class MemoryMerchants:
    """Just enough of PgMerchants: two merchants, one terminal each, no documents."""

    def __init__(self):
        self.versions = {"MA": 1, "MB": 1}
        self.owners = {"TA": "MA", "TB": "MB"}

    async def token_version(self, merchant_id):
        return self.versions.get(merchant_id)

    async def bump_token_version(self, merchant_id):
        self.versions[merchant_id] += 1
        return self.versions[merchant_id]

    async def owns_terminal(self, merchant_id, terminal_id):
        return self.owners.get(terminal_id) == merchant_id

    async def terminals(self, merchant_id, limit):
        return []

    async def documents(self, *args, **kwargs):
        return []


class Backend:
    def __init__(self, burst: int = 100):
        self.settings = Settings()
        self.keys = KEYS
        self.merchants = MemoryMerchants()
        self.limiter = RateLimiter(1.0, burst, 100)


def call(backend, method: str, path: str, query: bytes = b"", token: str | None = None):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def get():
        return backend

    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope = {"type": "http", "method": method, "path": path, "headers": headers, "query_string": query,
             "client": ("198.51.100.7", 5000)}
    asyncio.run(PosrayApi(get)(scope, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), orjson.loads(sent[1]["body"])


def token_of(merchant_id: str, version: int = 1) -> str:
    return issue_token(KEYS.merchant_token, merchant_id, version)


class TestMerchantRoutes:
    def test_no_token_is_401_with_a_bearer_challenge(self):
        status, headers, body = call(Backend(), "GET", "/v1/merchant/terminals")
        assert status == 401 and headers[b"www-authenticate"].startswith(b"Bearer")
        assert body["error"] == "unauthenticated"

    def test_a_valid_token_reads_its_own_merchant(self):
        status, _, body = call(Backend(), "GET", "/v1/merchant/terminals", token=token_of("MA"))
        assert (status, body["merchant_id"]) == (200, "MA")

    def test_the_operator_token_is_no_merchant_token(self):
        assert call(Backend(), "GET", "/v1/merchant/terminals", token=KEYS.api_token)[0] == 401

    def test_another_merchants_terminal_and_an_unknown_one_are_the_same_403(self):
        backend = Backend()
        replies = [call(backend, "GET", "/v1/merchant/documents", f"date=2026-11-26&terminal_id={t}".encode(),
                        token_of("MA")) for t in ("TB", "T-none")]
        assert [r[0] for r in replies] == [403, 403] and replies[0][2] == replies[1][2]

    def test_bad_parameters_are_400_naming_them(self):
        backend, token = Backend(), token_of("MA")
        for query, field in [(b"", "date"), (b"date=26.11.2026", "date"), (b"date=2026-11-26&limit=x", "limit"),
                             (b"date=2026-11-26&limit=1001", "limit"), (b"date=2026-11-26&page=2", "page")]:
            status, _, body = call(backend, "GET", "/v1/merchant/documents", query, token)
            assert (status, body["field"]) == (400, field), query

    def test_an_unknown_merchant_route_is_404(self):
        assert call(Backend(), "GET", "/v1/merchant/secrets", token=token_of("MA"))[0] == 404

    def test_a_client_over_its_burst_gets_429_with_retry_after(self):
        backend = Backend(burst=2)
        statuses = [call(backend, "GET", "/v1/merchant/terminals")[0] for _ in range(3)]
        status, headers, body = call(backend, "GET", "/v1/merchant/terminals")
        assert statuses[:2] == [401, 401] and status == 429
        assert int(headers[b"retry-after"]) >= 1 and body["error"] == "rate_limited"


class TestAdminRoutes:
    def test_issuing_needs_the_operator_token_and_revoking_invalidates_old_tokens(self):
        backend = Backend()
        assert call(backend, "POST", "/v1/admin/merchants/MA/token", token=token_of("MA"))[0] == 401
        status, _, issued = call(backend, "POST", "/v1/admin/merchants/MA/token", token=KEYS.api_token)
        assert (status, issued) == (201, {"merchant_id": "MA", "token_version": 1, "token": token_of("MA")})
        assert call(backend, "POST", "/v1/admin/merchants/MA/token", token=KEYS.api_token)[1][b"cache-control"] == b"no-store"
        status, _, body = call(backend, "POST", "/v1/admin/merchants/MA/revoke-tokens", token=KEYS.api_token)
        assert (status, body) == (200, {"merchant_id": "MA", "token_version": 2})
        assert call(backend, "GET", "/v1/merchant/terminals", token=issued["token"])[0] == 401
        assert call(backend, "GET", "/v1/merchant/terminals", token=token_of("MA", 2))[0] == 200

    def test_an_unregistered_merchant_is_404(self):
        status, _, body = call(Backend(), "POST", "/v1/admin/merchants/MZ/token", token=KEYS.api_token)
        assert (status, body["error"]) == (404, "not_found")
