"""posray's HTTP API as a raw ASGI application: the route table (no Ray calls here; see ingress.py).

Each resource has its module under deployments/api/ with its handlers and its ROUTES; this module
puts them in one table, runs the checks a route declares (operator token, public rate limit)
and answers every error through deployments/api/errors.py. The OpenAPI document
(/openapi.json, deployments/openapi.py) is derived from the same table.

    POST /v1/transactions, /v1/transactions/batch     terminals           api/transactions.py
    GET  /v1/receipts/..., /v1/receipts?..., /r/{code} customers           api/receipts.py
    GET  /v1/log/..., /.well-known/posray/log-key     verifiers, witnesses api/log.py
    GET  /tlog/{shard}/checkpoint, /tlog/{shard}/tile/...  C2SP tiles    api/log.py
    /v1/merchant/*, /v1/admin/merchants/*             merchants, operator  api/merchants.py
    /v1/admin/terminals..., /healthz, /readyz         operator, probes     api/admin.py
    GET  /openapi.json                                this table, described
"""

from __future__ import annotations

from typing import Awaitable, Callable

import orjson

from deployments import openapi
from deployments.api import admin, errors, guards, log, merchants, receipts, transactions
from deployments.api.backend import Backend, RequestObserver
from deployments.api.routing import Request, Response, Route, Router
from posray.domain.errors import NotFound

__all__ = ["Backend", "PosrayApi", "RequestObserver", "ROUTES", "ROUTER"]


async def _openapi(request: Request) -> Response:
    return 200, orjson.dumps(openapi.document(ROUTES)), errors.JSON


# Exact paths are found by one dict lookup; templates are tried in this order.
ROUTES: tuple[Route, ...] = (
    *transactions.ROUTES,
    *receipts.ROUTES,
    *log.ROUTES,
    *admin.ROUTES,
    *merchants.ROUTES,
    admin.UNKNOWN,
    Route("GET", "/openapi.json", _openapi, backend=False),
)
ROUTER = Router(ROUTES)


class PosrayApi:
    """The ASGI callable; `backend` is awaited lazily on the first request that needs it."""

    def __init__(self, backend: Callable[[], Awaitable[Backend]]):
        self._backend = backend

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        try:
            found = ROUTER.resolve(method, path)
            if found is not None and not found[0].backend:
                request = Request(scope, receive, found[1], None, self._backend)
            else:
                request = await self._checked(scope, receive, method, path, found)
            status, body, headers = await found[0].handler(request)
        except Exception as e:
            status, body, headers = errors.failed(e, method, path)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _checked(self, scope, receive, method: str, path: str, found) -> Request:
        """The request for a route that needs the backend, once the checks it declares pass.

        Raises:
            RateLimited: a GET under a public prefix over its budget (unknown paths included).
            NotFound: no route answers `method path`.
            OperatorOnly: an operator route without the operator's token.
        """
        backend = await self._backend()
        if method == "GET" and path.startswith(guards.PUBLIC_PREFIXES):
            guards.limit(scope, backend)
        if found is None:
            raise NotFound(f"no route for {method} {path}")
        route, path_params = found
        if route.operator:
            guards.authorize(scope, backend.keys)
        return Request(scope, receive, path_params, backend, self._backend)
