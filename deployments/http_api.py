"""posray's HTTP API as a raw ASGI application (no Ray calls here; see ingress.py).

Routes:
    POST /v1/transactions                 one document → receipt
    POST /v1/transactions/batch           {"documents": [...]} → one result per document
    GET  /v1/receipts/{code}              public receipt lookup (with inclusion proof)
    GET  /v1/receipts?terminal_id&counter&date&total_minor   lookup by printed fields
    GET  /r/{code}                        the receipt page behind the QR link
    (the public GET routes above, /v1/log/* and /.well-known/*: rate-limited per client address)
    POST /v1/admin/terminals              register (operator token)
    POST /v1/admin/terminals/{id}/revoke  revoke (operator token)
    /v1/merchant/*, /v1/admin/merchants/*  the merchant API (deployments/merchant_api.py)
    GET  /healthz                         alive
    GET  /readyz                          200 if Redis, PostgreSQL and the ledger are within bounds
    GET  /openapi.json                    the OpenAPI 3.1 document of these routes (deployments/openapi.py)
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

import orjson

from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_merchants import PgMerchants
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_capture import RedisCapture
from posray.domain.errors import (
    DocumentRejected,
    InvalidRequest,
    NotFound,
    OperatorOnly,
    Overloaded,
    PosrayError,
    RateLimited,
    TooLarge,
    Unavailable,
)
from posray.domain.keys import OperatorKeys
from posray.domain.note import NoteSigner
from posray.services import lookup, proofs, terminals as terminal_service
from posray.services.batcher import IngestBatcher
from posray.services.capture import Accepted
from posray.services.health import Readiness
from posray.services.intake import Intake
from posray.services.ratelimit import RateLimiter, client_address, retry_after_s
from posray.settings import Settings
from deployments import merchant_api, openapi, params
from deployments.api import errors
from deployments.receipt_page import content_security_policy, render_receipt_page

log = logging.getLogger("posray.http")
JSON = [(b"content-type", b"application/json")]
ENDPOINTS = {"/v1/transactions": "single", "/v1/transactions/batch": "batch"}
# Customers' endpoints: public, so each client address is rate-limited (POSRAY_PUBLIC_*).
PUBLIC_PREFIXES = ("/v1/receipts", "/r/", "/v1/log/", "/.well-known/")


class RequestObserver(Protocol):
    """Told about every transaction request (the ingress records metrics with it)."""

    def request_done(self, endpoint: str, elapsed_ms: float, accepted: int,
                     rejected: dict[str, int], terminal_ids: list[str]) -> None: ...


class _Unobserved:
    def request_done(self, *args) -> None:
        pass


@dataclass
class Backend:
    """Everything the API needs, built once per replica by the ingress deployment."""

    settings: Settings
    keys: OperatorKeys
    intake: Intake
    batcher: IngestBatcher
    ledger: PgLedger
    capture: RedisCapture
    terminals: PgTerminals
    readiness: Callable[[], Awaitable[Readiness]]
    observer: RequestObserver = field(default_factory=_Unobserved)
    limiter: RateLimiter | None = None
    merchants: PgMerchants | None = None
    fences: PgFences | None = None

    def __post_init__(self) -> None:
        if self.limiter is None:
            s = self.settings
            self.limiter = RateLimiter(s.public_rate_per_s, s.public_burst, s.public_clients_max)


class PosrayApi:
    """The ASGI callable; `backend` is awaited lazily on the first request."""

    def __init__(self, backend: Callable[[], Awaitable[Backend]]):
        self._backend = backend

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._route(scope, receive)
        except Exception as e:
            status, body, headers = errors.failed(e, scope.get("method"), scope.get("path"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _route(self, scope, receive):
        method, path = scope["method"], scope["path"]
        if path == "/healthz":
            return 200, b'{"status":"alive"}', JSON
        if path == "/readyz":
            return await self._ready()
        if path == "/openapi.json" and method == "GET":
            return 200, orjson.dumps(openapi.document()), JSON
        backend = await self._backend()
        if method == "GET" and path.startswith(PUBLIC_PREFIXES):
            _limit(scope, backend)
        if method == "POST" and path in ENDPOINTS:
            return await self._transactions(backend, ENDPOINTS[path], scope, receive)
        if method == "GET" and path.startswith("/v1/receipts/") and path.endswith("/proof"):
            tree_size = _int_param(scope, "tree_size")
            bundle = await lookup.proof_bundle(backend.ledger, backend.fences, backend.keys.code, path[13:-6], tree_size)
            return 200, orjson.dumps(bundle), JSON
        if method == "GET" and path in ("/v1/log/key", "/.well-known/posray/log-key"):
            return 200, orjson.dumps(_log_key(backend)), JSON
        if method == "GET" and path.startswith("/v1/log/"):
            return await self._log(backend, path, scope)
        if method == "GET" and path.startswith("/v1/receipts/"):
            receipt = await lookup.by_code(backend.ledger, backend.capture, backend.fences, backend.keys.code, path[13:])
            return 200, orjson.dumps(receipt), JSON
        if method == "GET" and path == "/v1/receipts":
            return 200, orjson.dumps(await self._by_fields(backend, scope)), JSON
        if method == "GET" and path.startswith("/r/"):
            return await self._page(backend, path[3:])
        if path.startswith(merchant_api.PREFIX):
            return await merchant_api.route(backend, method, path, scope)
        if path.startswith("/v1/admin/"):
            _authorize(scope, backend.keys)
            return await self._admin(backend, method, path, scope, receive)
        raise NotFound(f"no route for {method} {path}")

    async def _ready(self):
        try:
            backend = await self._backend()
            readiness = await backend.readiness()
        except Exception as e:  # the replica could not even build its connections
            reason = str(e) if errors.shown(e) else type(e).__name__
            readiness = Readiness(False, {"replica": reason})
        return (200 if readiness.ready else 503), orjson.dumps(readiness.to_json()), JSON

    async def _transactions(self, backend: Backend, endpoint: str, scope, receive):
        started = time.perf_counter()
        try:
            raw = await _body(scope, receive, backend.settings)
            if endpoint == "single":
                return await self._single(backend, raw, started)
            return await self._batch(backend, raw, started)
        except Exception as e:  # refused as a whole (a single document's rejection included)
            _observe(backend, endpoint, started, [e])
            raise

    async def _single(self, backend: Backend, raw: bytes, started: float):
        doc = _parse_json(raw)
        (result,) = await self._accept(backend, [doc])
        if isinstance(result, PosrayError):
            raise result
        _observe(backend, "single", started, [result], [doc])
        return 200, orjson.dumps(result.to_json(backend.settings.public_base_url)), JSON

    async def _batch(self, backend: Backend, raw: bytes, started: float):
        body = _parse_json(raw)
        if not isinstance(body, dict) or not isinstance(body.get("documents"), list):
            raise InvalidRequest("documents", "must be a list of documents")
        if set(body) - {"documents"}:
            raise InvalidRequest(sorted(set(body) - {"documents"})[0], "is not a known field")
        documents = body["documents"]
        limit = backend.settings.batch_documents_max
        if len(documents) > limit:
            raise TooLarge("documents", f"{len(documents)} documents; at most {limit} per batch")
        if not documents:
            raise InvalidRequest("documents", "is empty")
        results = await self._accept(backend, documents)
        _observe(backend, "batch", started, results, documents)
        base = backend.settings.public_base_url
        out = [
            r.to_json(base) if isinstance(r, Accepted) else _rejected(r) for r in results
        ]
        return 200, orjson.dumps({"results": out}), JSON

    async def _accept(self, backend: Backend, documents: list) -> list:
        results = await backend.intake.check(documents)
        valid = [i for i, r in enumerate(results) if not isinstance(r, PosrayError)]
        if valid:
            captured = await backend.batcher.submit([results[i] for i in valid])
            for i, result in zip(valid, captured):
                results[i] = result
        return results

    async def _log(self, backend: Backend, path: str, scope):
        parts = path.split("/")  # ["", "v1", "log", shard, what]
        shard_ok = len(parts) == 5 and parts[3].isascii() and parts[3].isdigit() and len(parts[3]) <= 5
        if not shard_ok or int(parts[3]) >= backend.settings.shard_count:
            raise NotFound("no such shard log")
        shard = int(parts[3])
        if parts[4] == "checkpoint":
            found = await backend.ledger.checkpoint(shard, _int_param(scope, "tree_size"))
            if found is None:
                raise NotFound("no checkpoint of this size (or none yet)")
            return 200, found[2].encode(), [(b"content-type", b"text/plain; charset=utf-8")]
        if parts[4] == "consistency":
            first, second = _int_param(scope, "first"), _int_param(scope, "second")
            if first is None or second is None:
                raise InvalidRequest("first", "first and second tree sizes are required")
            return 200, orjson.dumps(await proofs.consistency(backend.ledger, shard, first, second)), JSON
        raise NotFound(f"no route for GET {path}")

    async def _by_fields(self, backend: Backend, scope) -> dict:
        query = params.query(scope)
        for name in ("terminal_id", "counter", "date", "total_minor"):
            if name not in query:
                raise InvalidRequest(name, "is required")
        terminal_id = params.terminal_id(query["terminal_id"])
        counter = params.integer(query["counter"], "counter", 1, 2**53 - 1)
        day = params.day(query["date"], "date")
        total = params.integer(query["total_minor"], "total_minor", 0, 10**13)
        return await lookup.by_fields(
            backend.ledger, backend.capture, backend.keys.code, backend.settings.shard_count,
            terminal_id, counter, day, total,
        )

    async def _page(self, backend: Backend, code: str):
        try:
            receipt = await lookup.by_code(backend.ledger, backend.capture, backend.fences, backend.keys.code, code)
            status = 200
        except PosrayError as e:
            receipt, status = {"error": e.to_json()}, errors.status_of(e)
        html = render_receipt_page(receipt)
        return status, html.encode(), [(b"content-type", b"text/html; charset=utf-8"),
                                       (b"content-security-policy", content_security_policy().encode()),
                                       (b"x-content-type-options", b"nosniff")]

    async def _admin(self, backend: Backend, method: str, path: str, scope, receive):
        if path.startswith(merchant_api.ADMIN_PREFIX):
            return await merchant_api.admin(backend, method, path)
        if method == "POST" and path == "/v1/admin/terminals":
            body = _parse_json(await _body(scope, receive, backend.settings))
            if not isinstance(body, dict):
                raise InvalidRequest("body", "must be a JSON object")
            for name in ("terminal_id", "merchant_id"):
                if not isinstance(body.get(name), str):
                    raise InvalidRequest(name, "is required (string)")
            for name in ("label", "merchant_name"):
                value = body.get(name)
                if value is not None and not (isinstance(value, str) and _printable(value, 128)):
                    raise InvalidRequest(name, "must be a string of 1-128 printable characters")
            reg = await terminal_service.register(
                backend.terminals, backend.keys.terminal_master, body["terminal_id"],
                body["merchant_id"], body.get("label"), body.get("merchant_name"),
            )
            out = {"terminal_id": reg.terminal_id, "merchant_id": reg.merchant_id,
                   "key_version": reg.key_version, "key_hex": reg.key_hex}
            return 201, orjson.dumps(out), JSON
        parts = path.split("/")
        if method == "POST" and len(parts) == 6 and parts[3] == "terminals" and parts[5] == "revoke":
            row = await backend.terminals.revoke(params.terminal_id(parts[4]))
            out = {"terminal_id": row.terminal_id, "status": "revoked"}
            return 200, orjson.dumps(out), JSON
        raise NotFound(f"no route for {method} {path}")


def _observe(backend: Backend, endpoint: str, started: float, results: list, documents: list = ()) -> None:
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


def _rejected(error: PosrayError) -> dict:
    return {"status": "rejected", "status_code": errors.status_of(error), **error.to_json()}


def _authorize(scope, keys: OperatorKeys) -> None:
    header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    token = header[7:] if header.startswith("Bearer ") else ""
    if not hmac.compare_digest(token.encode(), keys.api_token.encode()):
        raise OperatorOnly("operator token required")


def _limit(scope, backend: Backend) -> None:
    """Refuse with 429 + Retry-After when the client address has used up its bucket."""
    client = client_address(scope, backend.settings.trusted_proxy_hops)
    wait_s = backend.limiter.acquire(client)
    if wait_s > 0:
        seconds = retry_after_s(wait_s)
        raise RateLimited("too many requests from this address", seconds)


def _log_key(backend: Backend) -> dict:
    signer = NoteSigner(backend.settings.log_key_name, backend.keys.signing_seed)
    return {
        "key_name": signer.name,
        "verifier_key": signer.verifier_key(),
        "public_key_ed25519": base64.b64encode(signer.public_key).decode(),
        "origins": [backend.settings.log_origin(s) for s in range(backend.settings.shard_count)],
    }


def _int_param(scope, name: str) -> int | None:
    return params.integer(params.query(scope).get(name), name)


def _printable(text: str, length_max: int) -> bool:
    return 1 <= len(text) <= length_max and text.isprintable()


def _parse_json(raw: bytes):
    """The body parsed by orjson, once no object in it names a member twice.

    orjson (like most parsers) keeps the last of duplicate members, others keep the first: a
    signed document with two `total_minor` would mean two things to two readers of its bytes.
    """
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidRequest("body", f"is not valid JSON ({e.msg} at byte {e.pos})") from None
    if b"{" in raw:
        try:
            json.loads(raw, object_pairs_hook=_refuse_duplicates)
        except RecursionError:
            raise InvalidRequest("body", "is nested too deeply") from None
    return parsed


def _refuse_duplicates(pairs: list[tuple[str, object]]) -> None:
    if len(pairs) > 1:
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise InvalidRequest(name, "appears twice in one object (duplicate JSON member)")
            seen.add(name)


async def _body(scope, receive, settings: Settings) -> bytes:
    limit = settings.body_bytes_max
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge("body", f"is larger than {limit} bytes")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Unavailable("client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge("body", f"is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
