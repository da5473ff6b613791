"""The merchant API's routes.

    GET  /v1/merchant/terminals                                   the merchant's terminals
    GET  /v1/merchant/documents?date[&terminal_id][&after][&limit]   a UTC day's documents, paged
    GET  /v1/merchant/summary?from&to                             per day: counts, totals, VAT by rate
    (bearer merchant token; rate-limited per client address like the public endpoints)
    POST /v1/admin/merchants/{id}/token                           issue a token (operator token)
    POST /v1/admin/merchants/{id}/revoke-tokens                   revoke every token issued so far

Merchants' data and tokens are never kept by a cache on the way: the refusals this module
answers itself (404, 429, 401) say no-store too; errors raised by a handler are answered by
the table like any other.
"""

from __future__ import annotations

import functools

import orjson

from deployments import params
from deployments.api import guards
from deployments.api.errors import render
from deployments.api.routing import ANY, Handler, Request, Response, Route
from posray.domain.errors import InvalidRequest, NotFound, RateLimited, Unauthenticated
from posray.services import merchants as merchant_service

JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="posray-merchant"')]
_BUCKET = "merchant"  # the merchant API's own budget per address, apart from the receipts'


def _for_merchant(handler) -> Handler:
    """Run `handler(request, merchant_id)` for the merchant the bearer token names, else refuse."""
    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        b = request.backend
        if b.merchants is None:
            return _not_found(request)
        try:
            guards.limit(request.scope, b, _BUCKET)
        except RateLimited as e:
            return render(e, JSON)
        try:
            merchant_id = await merchant_service.authenticate(b.merchants, b.keys.merchant_token,
                                                              _bearer(request.scope))
        except Unauthenticated as e:
            return render(e, JSON + _CHALLENGE)
        return await handler(request, merchant_id)
    return run


@_for_merchant
async def terminals(request: Request, merchant_id: str) -> Response:
    params.query(request.scope, frozenset())
    body = await merchant_service.list_terminals(request.backend.merchants, merchant_id)
    return 200, orjson.dumps(body), JSON


@_for_merchant
async def documents(request: Request, merchant_id: str) -> Response:
    query = params.query(request.scope, frozenset({"date", "terminal_id", "after", "limit"}))
    b = request.backend
    body = await merchant_service.list_documents(
        b.merchants, merchant_id, params.day(query.get("date"), "date"),
        params.terminal_id(query.get("terminal_id")), query.get("after"), _limit_param(query),
        cursor_key=merchant_service.cursor_key_of(b.keys.merchant_token))
    return 200, orjson.dumps(body), JSON


@_for_merchant
async def summary(request: Request, merchant_id: str) -> Response:
    query = params.query(request.scope, frozenset({"from", "to"}))
    body = await merchant_service.summarize(
        request.backend.merchants, merchant_id, params.day(query.get("from"), "from"),
        params.day(query.get("to"), "to"))
    return 200, orjson.dumps(body), JSON


@_for_merchant
async def unknown(request: Request, merchant_id: str) -> Response:
    return _not_found(request)


async def issue_token(request: Request) -> Response:
    b, merchant_id = request.backend, request.params["merchant_id"]
    if b.merchants is None or not merchant_id:
        return _not_found(request)
    params.terminal_id(merchant_id, "merchant_id")  # the same syntax as terminal ids
    issued = await merchant_service.issue_token(b.merchants, b.keys.merchant_token, merchant_id)
    body = {"merchant_id": issued.merchant_id, "token_version": issued.version, "token": issued.token}
    return 201, orjson.dumps(body), JSON


async def revoke_tokens(request: Request) -> Response:
    b, merchant_id = request.backend, request.params["merchant_id"]
    if b.merchants is None or not merchant_id:
        return _not_found(request)
    params.terminal_id(merchant_id, "merchant_id")
    version = await merchant_service.revoke_tokens(b.merchants, merchant_id)
    return 200, orjson.dumps({"merchant_id": merchant_id, "token_version": version}), JSON


async def admin_unknown(request: Request) -> Response:
    """Any other route under /v1/admin/merchants/: a malformed id is named before the unknown action."""
    parts = request.params["rest"].split("/")
    if request.backend.merchants is not None and request.scope["method"] == "POST" and len(parts) == 2 and parts[0]:
        params.terminal_id(parts[0], "merchant_id")
    return _not_found(request)


ROUTES = (
    Route("GET", "/v1/merchant/terminals", terminals),
    Route("GET", "/v1/merchant/documents", documents),
    Route("GET", "/v1/merchant/summary", summary),
    Route(ANY, "/v1/merchant/{rest:path}", unknown, documented=False),
    Route("POST", "/v1/admin/merchants/{merchant_id}/token", issue_token, operator=True),
    Route("POST", "/v1/admin/merchants/{merchant_id}/revoke-tokens", revoke_tokens, operator=True),
    Route(ANY, "/v1/admin/merchants/{rest:path}", admin_unknown, operator=True, documented=False),
)


def _bearer(scope) -> str:
    header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def _limit_param(query: dict[str, str]) -> int:
    value = query.get("limit")
    if value is None:
        return merchant_service.DOCUMENTS_LIMIT_DEFAULT
    if not (value.isascii() and value.isdigit()) or len(value) > 6:
        raise InvalidRequest("limit", f"must be 1..{merchant_service.DOCUMENTS_LIMIT_MAX}")
    return int(value)


def _not_found(request: Request) -> Response:
    return render(NotFound(f"no route for {request.scope['method']} {request.scope['path']}"), JSON)
