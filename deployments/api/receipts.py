"""Customers' routes: a receipt by its code or by the fields printed on it, its proof, its page.

    GET /v1/receipts/{code}                                     the receipt (recorded or accepted)
    GET /v1/receipts/{code}/proof[?tree_size]                   inclusion proof bundle
    GET /v1/receipts?terminal_id&counter&date&total_minor       lookup by the printed fields
    GET /r/{code}                                               the HTML page behind the QR link
A code is taken as it comes (slashes included): the lookup refuses what cannot be a code.
"""

from __future__ import annotations

import orjson

from deployments import params
from deployments.api.errors import JSON, status_of
from deployments.api.routing import Request, Response, Route
from deployments.receipt_page import content_security_policy, render_receipt_page
from posray.domain.errors import InvalidRequest, PosrayError
from posray.services import lookup

_FIELDS = ("terminal_id", "counter", "date", "total_minor")


async def by_code(request: Request) -> Response:
    b = request.backend
    receipt = await lookup.by_code(b.ledger, b.capture, b.fences, b.keys.code, request.params["code"], b.archive)
    return 200, orjson.dumps(receipt), JSON


async def proof(request: Request) -> Response:
    b = request.backend
    tree_size = params.query_integer(request.scope, "tree_size")
    bundle = await lookup.proof_bundle(b.ledger, b.fences, b.keys.code, request.params["code"], tree_size,
                                       b.settings.witness_quorum, b.archive)
    return 200, orjson.dumps(bundle), JSON


async def by_fields(request: Request) -> Response:
    query = params.query(request.scope)
    for name in _FIELDS:
        if name not in query:
            raise InvalidRequest(name, "is required")
    terminal_id = params.terminal_id(query["terminal_id"])
    counter = params.integer(query["counter"], "counter", 1, 2**53 - 1)
    day = params.day(query["date"], "date")
    total = params.integer(query["total_minor"], "total_minor", 0, 10**13)
    b = request.backend
    receipt = await lookup.by_fields(b.ledger, b.capture, b.keys.code, b.settings.shard_count,
                                     terminal_id, counter, day, total, b.archive, b.receipt_index)
    return 200, orjson.dumps(receipt), JSON


async def page(request: Request) -> Response:
    """The receipt page; a refused lookup is a page too, with the error's status."""
    b = request.backend
    try:
        receipt = await lookup.by_code(b.ledger, b.capture, b.fences, b.keys.code, request.params["code"],
                                       b.archive)
        status = 200
    except PosrayError as e:
        receipt, status = {"error": e.to_json()}, status_of(e)
    html = render_receipt_page(receipt)
    return status, html.encode(), [(b"content-type", b"text/html; charset=utf-8"),
                                   (b"content-security-policy", content_security_policy().encode()),
                                   (b"x-content-type-options", b"nosniff")]


# The proof's template comes first: a code may contain slashes, so the receipt's would match too.
ROUTES = (
    Route("GET", "/v1/receipts/{code:path}/proof", proof),
    Route("GET", "/v1/receipts/{code:path}", by_code),
    Route("GET", "/v1/receipts", by_fields),
    Route("GET", "/r/{code:path}", page),
)
