"""The operator's routes and the probes: terminals, liveness, readiness.

    POST /v1/admin/terminals                  register a terminal (operator token)
    POST /v1/admin/terminals/{id}/revoke      revoke it (operator token)
    GET  /healthz                             alive (any method)
    GET  /readyz                              200 if Redis, PostgreSQL and the ledger are within bounds
"""

from __future__ import annotations

import orjson

from deployments import params
from deployments.api.bodies import parse_json, read_body
from deployments.api.errors import JSON, shown
from deployments.api.routing import ANY, Request, Response, Route
from posray.domain.errors import InvalidRequest, NotFound
from posray.services import terminals as terminal_service
from posray.services.health import Readiness

_NAME_LENGTH_MAX = 128


async def register(request: Request) -> Response:
    b = request.backend
    body = parse_json(await read_body(request.scope, request.receive, b.settings))
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    for name in ("terminal_id", "merchant_id"):
        if not isinstance(body.get(name), str):
            raise InvalidRequest(name, "is required (string)")
    for name in ("label", "merchant_name"):
        value = body.get(name)
        if value is not None and not (isinstance(value, str) and _printable(value, _NAME_LENGTH_MAX)):
            raise InvalidRequest(name, f"must be a string of 1-{_NAME_LENGTH_MAX} printable characters")
    reg = await terminal_service.register(
        b.terminals, b.keys.terminal_master, body["terminal_id"], body["merchant_id"],
        body.get("label"), body.get("merchant_name"),
    )
    out = {"terminal_id": reg.terminal_id, "merchant_id": reg.merchant_id,
           "key_version": reg.key_version, "key_hex": reg.key_hex}
    return 201, orjson.dumps(out), JSON


async def revoke(request: Request) -> Response:
    terminal_id = params.terminal_id(request.params["terminal_id"])
    row = await terminal_service.revoke(request.backend.terminals, terminal_id)
    return 200, orjson.dumps({"terminal_id": row.terminal_id, "status": "revoked"}), JSON


async def unknown(request: Request) -> Response:
    """Any other route under /v1/admin/ (the operator's token was checked first)."""
    raise NotFound(f"no route for {request.scope['method']} {request.scope['path']}")


async def healthz(request: Request) -> Response:
    return 200, b'{"status":"alive"}', JSON


async def readyz(request: Request) -> Response:
    """200 or 503 with what is not ready; a replica that cannot build its backend is not ready."""
    try:
        readiness = await (await request.build()).readiness()
    except Exception as e:
        readiness = Readiness(False, {"replica": str(e) if shown(e) else type(e).__name__})
    return (200 if readiness.ready else 503), orjson.dumps(readiness.to_json()), JSON


ROUTES = (
    Route(ANY, "/healthz", healthz, backend=False),
    Route(ANY, "/readyz", readyz, backend=False),
    Route("POST", "/v1/admin/terminals", register, operator=True),
    Route("POST", "/v1/admin/terminals/{terminal_id}/revoke", revoke, operator=True),
)
# Last in the table: after the merchants' admin routes, which have their own catch-all.
UNKNOWN = Route(ANY, "/v1/admin/{rest:path}", unknown, operator=True, documented=False)


def _printable(text: str, length_max: int) -> bool:
    return 1 <= len(text) <= length_max and text.isprintable()
