"""The HTTP edge as a table: every documented route resolves to its handler, unknown ones are 404s."""

from __future__ import annotations

import asyncio
import re

import orjson
import pytest

from deployments import openapi
from deployments.api import admin, log, merchants, receipts, transactions
from deployments.api.routing import ANY, Route, Router, compile_template
from deployments.http_api import ROUTER, ROUTES, PosrayApi
from posray.domain.keys import OperatorKeys
from posray.settings import Settings

# One concrete request per documented route, and the handler that must answer it.
DOCUMENTED = [
    ("POST", "/v1/transactions", transactions.single, {}),
    ("POST", "/v1/transactions/batch", transactions.batch, {}),
    ("GET", "/v1/receipts/ABCD-EFGH-JKMN", receipts.by_code, {"code": "ABCD-EFGH-JKMN"}),
    ("GET", "/v1/receipts/ABCD-EFGH-JKMN/proof", receipts.proof, {"code": "ABCD-EFGH-JKMN"}),
    ("GET", "/v1/receipts", receipts.by_fields, {}),
    ("GET", "/r/ABCDEFGHJKMN", receipts.page, {"code": "ABCDEFGHJKMN"}),
    ("GET", "/v1/log/3/checkpoint", log.checkpoint, {"shard": "3"}),
    ("GET", "/v1/log/3/consistency", log.consistency, {"shard": "3"}),
    ("GET", "/v1/log/key", log.key, {}),
    ("GET", "/.well-known/posray/log-key", log.key, {}),
    ("GET", "/tlog/3/checkpoint", log.tile_checkpoint, {"shard": "3"}),
    ("GET", "/tlog/3/tile/1/x001/x234/067.p/12", log.tile, {"shard": "3", "rest": "1/x001/x234/067.p/12"}),
    ("POST", "/v1/admin/terminals", admin.register, {}),
    ("POST", "/v1/admin/terminals/T-1/revoke", admin.revoke, {"terminal_id": "T-1"}),
    ("POST", "/v1/admin/merchants/M-1/token", merchants.issue_token, {"merchant_id": "M-1"}),
    ("POST", "/v1/admin/merchants/M-1/revoke-tokens", merchants.revoke_tokens, {"merchant_id": "M-1"}),
    ("GET", "/v1/merchant/terminals", merchants.terminals, {}),
    ("GET", "/v1/merchant/documents", merchants.documents, {}),
    ("GET", "/v1/merchant/summary", merchants.summary, {}),
    ("GET", "/healthz", admin.healthz, {}),
    ("GET", "/readyz", admin.readyz, {}),
    ("GET", "/openapi.json", ROUTES[-1].handler, {}),
]


class _Backend:
    settings = Settings()
    keys = OperatorKeys.from_seed(bytes(range(32)))
    merchants = None

    class limiter:  # noqa: N801 - never limits
        @staticmethod
        def acquire(client):
            return 0


def call(method: str, path: str) -> tuple[int, list, dict]:
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def backend():
        return _Backend()

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b"",
             "client": ("192.0.2.9", 1)}
    asyncio.run(PosrayApi(backend)(scope, receive, send))
    return sent[0]["status"], sent[0]["headers"], orjson.loads(sent[1]["body"])


class TestResolvingDocumentedRoutes:
    @pytest.mark.parametrize(("method", "path", "handler", "params"), DOCUMENTED, ids=lambda v: str(v)[:40])
    def test_each_documented_route_resolves_to_its_handler_with_its_path_parameters(
            self, method, path, handler, params):
        route, found = ROUTER.resolve(method, path)
        assert (route.handler, found) == (handler, params)

    def test_the_document_describes_exactly_the_documented_routes(self):
        documented = {(re.sub(r":path}", "}", r.path), "get" if r.method == ANY else r.method.lower())
                      for r in ROUTES if r.documented}
        described = {(path, method) for path, ops in openapi.document(ROUTES)["paths"].items() for method in ops}
        assert described == documented
        assert len(DOCUMENTED) == len(documented)

    def test_every_route_under_admin_requires_the_operator_token_and_no_other_does(self):
        assert all(r.operator == r.path.startswith("/v1/admin/") for r in ROUTES)

    def test_a_code_keeps_its_slashes_and_the_proof_route_wins_over_the_receipt_route(self):
        route, found = ROUTER.resolve("GET", "/v1/receipts/a/b/proof")
        assert (route.handler, found) == (receipts.proof, {"code": "a/b"})
        assert ROUTER.resolve("GET", "/r/")[1] == {"code": ""}
        assert ROUTER.resolve("GET", "/r/\x8d\n")[1] == {"code": "\x8d\n"}  # found by the API fuzzer

    def test_the_transactions_routes_are_exact_lookups_that_try_no_template(self):
        router = Router(ROUTES)
        router._templates.clear()
        assert router.resolve("POST", "/v1/transactions")[0].handler is transactions.single
        assert router.resolve("POST", "/v1/transactions/batch")[0].handler is transactions.batch

    def test_templates_are_compiled_when_the_table_is_built_never_per_request(self, monkeypatch):
        router = Router(ROUTES)
        monkeypatch.setattr(re, "compile", lambda *a, **k: pytest.fail("compiled per request"))
        assert router.resolve("GET", "/v1/log/0/checkpoint")[0].handler is log.checkpoint

    def test_two_routes_for_one_method_and_path_are_refused(self):
        async def h(request):
            return 200, b"", []
        with pytest.raises(ValueError):
            Router((Route("GET", "/x", h), Route("GET", "/x", h)))

    def test_a_template_escapes_its_literal_parts(self):
        assert compile_template("/a.b/{x}").fullmatch("/aXb/1") is None


class TestRefusingUnknownRoutes:
    @pytest.mark.parametrize(("method", "path"), [
        ("GET", "/v1/nothing"), ("GET", "/v1/transactions"), ("PUT", "/v1/transactions"),
        ("POST", "/openapi.json"), ("DELETE", "/v1/receipts"), ("POST", "/v1/receipts/X"), ("GET", "/"),
    ])
    def test_an_unknown_route_is_a_404_naming_method_and_path(self, method, path):
        status, headers, body = call(method, path)
        assert (status, headers) == (404, [(b"content-type", b"application/json")])
        assert body == {"error": "not_found", "reason": f"no route for {method} {path}"}

    @pytest.mark.parametrize("path", ["/v1/log/99/checkpoint", "/v1/log/x", "/v1/log/0/checkpoint/"])
    def test_a_log_path_naming_no_shard_is_a_404_saying_so(self, path):
        assert call("GET", path)[::2] == (404, {"error": "not_found", "reason": "no such shard log"})

    def test_a_log_path_with_a_shard_but_no_such_resource_names_the_route(self):
        body = call("GET", "/v1/log/0/tiles")[2]
        assert body == {"error": "not_found", "reason": "no route for GET /v1/log/0/tiles"}

    def test_an_unknown_admin_route_asks_for_the_operator_token_first(self):
        status, headers, body = call("GET", "/v1/admin/nothing")
        assert (status, body["error"]) == (401, "unauthorized")
        assert (b"www-authenticate", b"Bearer") in headers

    def test_health_answers_any_method(self):
        assert call("POST", "/healthz")[::2] == (200, {"status": "alive"})
