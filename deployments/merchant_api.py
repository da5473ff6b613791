"""The merchant API's HTTP routes, delegated to by http_api (no Ray calls here).

Routes:
    GET  /v1/merchant/terminals                                  the merchant's terminals
    GET  /v1/merchant/documents?date[&terminal_id][&after][&limit]   a UTC day's documents, paged
    GET  /v1/merchant/summary?from&to                            per day: counts, totals, VAT by rate
    (bearer merchant token; rate-limited per client address like the public endpoints)
    POST /v1/admin/merchants/{id}/token                          issue a token (operator token)
    POST /v1/admin/merchants/{id}/revoke-tokens                  revoke every token issued so far

Handlers return (status, body, headers) or raise PosrayError, which http_api renders.
"""

from __future__ import annotations

import orjson

from deployments import params
from posray.domain.errors import InvalidRequest, Unauthenticated
from posray.services import merchants as merchant_service
from posray.services.ratelimit import client_address, retry_after_s

PREFIX = "/v1/merchant/"
ADMIN_PREFIX = "/v1/admin/merchants/"
# Merchants' data and tokens: never kept by a cache on the way.
JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="posray-merchant"')]
_PARAMS = {
    "terminals": frozenset(),
    "documents": frozenset({"date", "terminal_id", "after", "limit"}),
    "summary": frozenset({"from", "to"}),
}


async def route(backend, method: str, path: str, scope) -> tuple[int, bytes, list]:
    """Answer a request under /v1/merchant/ for the merchant its bearer token names."""
    if backend.merchants is None:
        return _not_found(method, path)
    limited = _limit(backend, scope)
    if limited is not None:
        return limited
    try:
        merchant_id = await merchant_service.authenticate(
            backend.merchants, backend.keys.merchant_token, _bearer(scope))
    except Unauthenticated as e:
        return 401, orjson.dumps(e.to_json()), JSON + _CHALLENGE
    name = path[len(PREFIX):]
    if method != "GET" or name not in _PARAMS:
        return _not_found(method, path)
    query = params.query(scope, _PARAMS[name])
    merchants = backend.merchants
    if name == "terminals":
        body = await merchant_service.list_terminals(merchants, merchant_id)
    elif name == "documents":
        body = await merchant_service.list_documents(
            merchants, merchant_id, params.day(query.get("date"), "date"),
            params.terminal_id(query.get("terminal_id")), query.get("after"), _limit_param(query),
            cursor_key=merchant_service.cursor_key_of(backend.keys.merchant_token))
    else:
        body = await merchant_service.summarize(
            merchants, merchant_id, params.day(query.get("from"), "from"), params.day(query.get("to"), "to"))
    return 200, orjson.dumps(body), JSON


async def admin(backend, method: str, path: str) -> tuple[int, bytes, list]:
    """Operator routes under /v1/admin/merchants/ (the caller has checked the operator token)."""
    parts = path[len(ADMIN_PREFIX):].split("/")
    if backend.merchants is None or method != "POST" or len(parts) != 2 or not parts[0]:
        return _not_found(method, path)
    merchant_id, action = parts
    params.terminal_id(merchant_id, "merchant_id")  # the same syntax as terminal ids
    if action == "token":
        issued = await merchant_service.issue_token(
            backend.merchants, backend.keys.merchant_token, merchant_id)
        body = {"merchant_id": issued.merchant_id, "token_version": issued.version, "token": issued.token}
        return 201, orjson.dumps(body), JSON
    if action == "revoke-tokens":
        version = await merchant_service.revoke_tokens(backend.merchants, merchant_id)
        return 200, orjson.dumps({"merchant_id": merchant_id, "token_version": version}), JSON
    return _not_found(method, path)


def _limit(backend, scope) -> tuple[int, bytes, list] | None:
    """429 + Retry-After once the address has used up its merchant bucket (not the receipts' one)."""
    client = client_address(scope, backend.settings.trusted_proxy_hops)
    wait_s = backend.limiter.acquire(f"merchant|{client}")
    if wait_s <= 0:
        return None
    seconds = retry_after_s(wait_s)
    body = {"error": "rate_limited", "reason": "too many requests from this address", "retry_after_s": seconds}
    return 429, orjson.dumps(body), JSON + [(b"retry-after", str(seconds).encode())]


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


def _not_found(method: str, path: str) -> tuple[int, bytes, list]:
    return 404, orjson.dumps({"error": "not_found", "reason": f"no route for {method} {path}"}), JSON
