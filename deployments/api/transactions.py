"""Terminals' routes: signed documents in, receipt codes out (the hot path of posray).

    POST /v1/transactions        one document → its receipt
    POST /v1/transactions/batch  {"documents": [...]} → one result per document
"""

from __future__ import annotations

import time

import orjson

from deployments.api.bodies import parse_json, read_body
from deployments.api.errors import JSON, status_of
from deployments.api.routing import Request, Response, Route
from posray.domain.errors import DocumentRejected, InvalidRequest, Overloaded, PosrayError, TooLarge, Unavailable
from posray.domain.codes import display_code
from posray.domain.transaction import utc_iso_ms
from posray.services import intake
from posray.services.capture import Accepted


async def single(request: Request) -> Response:
    """One document: 200 with its receipt, or the error that refused it."""
    backend, started = request.backend, time.perf_counter()
    try:
        doc = parse_json(await read_body(request.scope, request.receive, backend.settings))
        (result,) = await intake.accept(backend.intake, backend.batcher, [doc])
        if isinstance(result, PosrayError):
            raise result
        _observe(backend, "single", started, [result], [doc])
        return 200, orjson.dumps(receipt_json(result, backend.settings.public_base_url)), JSON
    except Exception as e:  # refused as a whole (the document's own rejection included)
        _observe(backend, "single", started, [e])
        raise


async def batch(request: Request) -> Response:
    """Up to batch_documents_max documents: 200 with one result each, or 4xx for the whole body."""
    backend, started = request.backend, time.perf_counter()
    try:
        documents = _documents(parse_json(await read_body(request.scope, request.receive, backend.settings)),
                               backend.settings.batch_documents_max)
        results = await intake.accept(backend.intake, backend.batcher, documents)
    except Exception as e:  # refused as a whole
        _observe(backend, "batch", started, [e])
        raise
    _observe(backend, "batch", started, results, documents)
    base = backend.settings.public_base_url
    out = [receipt_json(r, base) if isinstance(r, Accepted) else _rejected(r) for r in results]
    return 200, orjson.dumps({"results": out}), JSON


ROUTES = (
    Route("POST", "/v1/transactions", single),
    Route("POST", "/v1/transactions/batch", batch),
)


def receipt_json(accepted: Accepted, public_base_url: str) -> dict:
    """What the terminal gets for an acknowledged document (docs/protocol.md, "Receipts")."""
    url = f"{public_base_url}/r/{accepted.code}"
    return {
        "status": "accepted",
        "code": accepted.code,
        "code_display": display_code(accepted.code),
        "shard": accepted.shard,
        "seq": accepted.seq,
        "accepted_at": utc_iso_ms(accepted.accepted_at_ms),
        "fiscal_sign": accepted.fiscal_sign,
        "verify_url": url,
        "qr_payload": url,
        "duplicate": accepted.duplicate,
    }


def _documents(body, limit: int) -> list:
    """The documents of a batch body {"documents": [...]}, 1..limit of them."""
    if not isinstance(body, dict) or not isinstance(body.get("documents"), list):
        raise InvalidRequest("documents", "must be a list of documents")
    if set(body) - {"documents"}:
        raise InvalidRequest(sorted(set(body) - {"documents"})[0], "is not a known field")
    documents = body["documents"]
    if len(documents) > limit:
        raise TooLarge("documents", f"{len(documents)} documents; at most {limit} per batch")
    if not documents:
        raise InvalidRequest("documents", "is empty")
    return documents


def _rejected(error: PosrayError) -> dict:
    return {"status": "rejected", "status_code": status_of(error), **error.to_json()}


def _observe(backend, endpoint: str, started: float, results: list, documents: list = ()) -> None:
    """Tell the observer how a transaction request went (documents only for accepted ones)."""
    rejected: dict[str, int] = {}
    for r in results:
        if not isinstance(r, Accepted):
            reason = _reason(r)
            rejected[reason] = rejected.get(reason, 0) + 1
    terminal_ids = [d["terminal_id"] for d, r in zip(documents, results) if isinstance(r, Accepted)]
    elapsed_ms = (time.perf_counter() - started) * 1000
    backend.observer.request_done(endpoint, elapsed_ms, len(results) - sum(rejected.values()),
                                  rejected, terminal_ids)


def _reason(error: Exception) -> str:
    """The metrics' `reason` tag: invalid, unauthenticated, conflict, overloaded, unavailable, internal."""
    if isinstance(error, DocumentRejected):
        return error.kind
    if isinstance(error, Overloaded):
        return "overloaded"
    if isinstance(error, Unavailable):
        return "unavailable"
    return "internal"
