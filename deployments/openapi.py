"""The OpenAPI 3.1 document of posray's public HTTP routes, served at /openapi.json.

Derived from the route table (deployments/http_api.py): each documented route's operation is
written here, keyed by (path, method), so that a fuzzer (tests/cluster/test_api_contract.py)
can check the server against it: every status a route answers is listed with its body's
schema. A documented route without an operation fails when the document is built.
The wire format of a document is the pydantic model of posray.wire, rendered as JSON Schema.
"""

from __future__ import annotations

import functools
import re

from deployments.api.routing import ANY, Route
from posray.wire import Document

_ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string"}, "field": {"type": "string"}, "reason": {"type": "string"},
    "retry_after_s": {"type": "integer"}}}
_RECEIPT = {"type": "object", "required": ["code", "code_display", "status", "shard", "seq"],
            "properties": {"code": {"type": "string"}, "code_display": {"type": "string"},
                           "status": {"enum": ["accepted", "recorded"]},
                           "shard": {"type": "integer"}, "seq": {"type": "integer"}}}
_ACCEPTED = {"type": "object", "required": ["status", "code", "shard", "seq", "accepted_at", "duplicate"],
             "properties": {"status": {"const": "accepted"}, "code": {"type": "string"},
                            "shard": {"type": "integer"}, "seq": {"type": "integer"},
                            "accepted_at": {"type": "string"}, "duplicate": {"type": "boolean"}}}
_OBJECT = {"type": "object"}
_JSON_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 503)


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _responses(ok: dict, ok_status: int = 200, errors=_JSON_ERRORS, media: str = "application/json") -> dict:
    out = {str(ok_status): {"description": "success", "content": {media: {"schema": ok}}}}
    for status in errors:
        out[str(status)] = {"description": "error", **_json({"$ref": "#/components/schemas/Error"})}
    return out


def _query(name: str, schema: dict, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_INT = {"type": "integer", "minimum": 0}
_DATE = {"type": "string", "format": "date"}
_BEARER = [{"bearer": []}]


@functools.cache
def document(routes: tuple[Route, ...]) -> dict:
    """The OpenAPI 3.1 document of the table's documented routes (built once; JSON-serialisable).

    Raises:
        KeyError: a documented route has no operation here.
    """
    known = _operations()
    paths: dict[str, dict] = {}
    for route in routes:
        if route.documented:
            path = _CONVERTOR.sub(r"{\1}", route.path)
            method = "get" if route.method == ANY else route.method.lower()
            paths.setdefault(path, {})[method] = known[(path, method)]
    return {
        "openapi": "3.1.0",
        "info": {"title": "posray", "version": "1",
                 "description": "POS transaction capture with a tamper-evident ledger; see docs/protocol.md."},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR, "Document": _document_schema()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


_CONVERTOR = re.compile(r"{([a-z_]+):[a-z]+}")


@functools.cache
def _operations() -> dict[tuple[str, str], dict]:
    """Each route's operation by (path template, lower-case method)."""
    code = [_path("code")]
    paths = {
        "/v1/transactions": {"post": {
            "summary": "Submit one signed document (docs/protocol.md 7.1)",
            "requestBody": {"required": True, **_json({"$ref": "#/components/schemas/Document"})},
            "responses": _responses(_ACCEPTED)}},
        "/v1/transactions/batch": {"post": {
            "summary": "Submit up to 1000 documents; one result each (7.2)",
            "requestBody": {"required": True, **_json({
                "type": "object", "required": ["documents"], "additionalProperties": False,
                "properties": {"documents": {"type": "array", "minItems": 1, "maxItems": 1000,
                                             "items": {"$ref": "#/components/schemas/Document"}}}})},
            "responses": _responses({"type": "object", "required": ["results"],
                                     "properties": {"results": {"type": "array", "items": _OBJECT}}})}},
        "/v1/receipts/{code}": {"get": {"summary": "Receipt by code (7.3)", "parameters": code,
                                        "responses": _responses(_RECEIPT)}},
        "/v1/receipts/{code}/proof": {"get": {
            "summary": "Inclusion proof bundle of a recorded receipt",
            "parameters": code + [_query("tree_size", _INT)], "responses": _responses(_OBJECT)}},
        "/v1/receipts": {"get": {"summary": "Receipt by the printed fields (7.3)", "parameters": [
            _query("terminal_id", {"type": "string"}, True), _query("counter", _INT, True),
            _query("date", _DATE, True), _query("total_minor", _INT, True)],
            "responses": _responses(_RECEIPT)}},
        "/r/{code}": {"get": {"summary": "The receipt page behind the QR link", "parameters": code,
                              "responses": {s: {"description": "HTML page", "content": {
                                  "text/html": {"schema": {"type": "string"}}}}
                                  for s in ("200", "400", "404", "503")} | {
                                  "429": {"description": "rate limited", **_json({"$ref": "#/components/schemas/Error"})}}}},
        "/v1/log/{shard}/checkpoint": {"get": {
            "summary": "A signed checkpoint (C2SP signed note), witnesses' cosignature lines appended",
            "parameters": [_path("shard"), _query("tree_size", _INT)],
            "responses": _responses({"type": "string"}, media="text/plain")}},
        "/v1/log/{shard}/consistency": {"get": {
            "summary": "RFC 6962 consistency proof", "parameters": [
                _path("shard"), _query("first", _INT, True), _query("second", _INT, True)],
            "responses": _responses(_OBJECT)}},
        "/tlog/{shard}/checkpoint": {"get": {
            "summary": "C2SP tlog-tiles: the shard log's latest checkpoint (a signed note, witnesses' "
                       "cosignature lines appended)",
            "parameters": [_path("shard")],
            "responses": _responses({"type": "string"}, errors=(404, 429, 503), media="text/plain")}},
        "/tlog/{shard}/tile/{rest}": {"get": {
            "summary": "C2SP tlog-tiles: a hash tile tile/<L>/<N>[.p/<W>] or an entry bundle "
                       "tile/entries/<N>[.p/<W>] (rest is the path after tile/)",
            "parameters": [_path("shard"), _path("rest")],
            "responses": _responses({"type": "string", "contentMediaType": "application/octet-stream"},
                                    errors=(404, 429, 503), media="application/octet-stream")}},
        "/v1/log/key": {"get": {"summary": "The log's verifier key", "responses": _responses(_OBJECT)}},
        "/.well-known/posray/log-key": {"get": {"summary": "The log's verifier key",
                                                "responses": _responses(_OBJECT)}},
        "/v1/admin/terminals": {"post": {
            "summary": "Register a terminal (7.4)", "security": _BEARER,
            "requestBody": {"required": True, **_json({
                "type": "object", "required": ["terminal_id", "merchant_id"],
                "properties": {"terminal_id": {"type": "string"}, "merchant_id": {"type": "string"},
                               "label": {"type": "string"}, "merchant_name": {"type": "string"}}})},
            "responses": _responses(_OBJECT, 201)}},
        "/v1/admin/terminals/{terminal_id}/revoke": {"post": {
            "summary": "Revoke a terminal (7.4)", "security": _BEARER,
            "parameters": [_path("terminal_id")], "responses": _responses(_OBJECT)}},
        "/v1/admin/merchants/{merchant_id}/token": {"post": {
            "summary": "Issue a merchant token (10.1)", "security": _BEARER,
            "parameters": [_path("merchant_id")], "responses": _responses(_OBJECT, 201)}},
        "/v1/admin/merchants/{merchant_id}/revoke-tokens": {"post": {
            "summary": "Revoke a merchant's tokens (10.1)", "security": _BEARER,
            "parameters": [_path("merchant_id")], "responses": _responses(_OBJECT)}},
        "/v1/merchant/terminals": {"get": {"summary": "The merchant's terminals (10.2)",
                                           "security": _BEARER, "responses": _responses(_OBJECT)}},
        "/v1/merchant/documents": {"get": {
            "summary": "A day's documents, paged (10.2)", "security": _BEARER, "parameters": [
                _query("date", _DATE, True), _query("terminal_id", {"type": "string"}),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _query("after", {"type": "string"})], "responses": _responses(_OBJECT)}},
        "/v1/merchant/summary": {"get": {
            "summary": "Per-day totals (10.2)", "security": _BEARER,
            "parameters": [_query("from", _DATE, True), _query("to", _DATE, True)],
            "responses": _responses(_OBJECT)}},
        "/healthz": {"get": {"summary": "Alive", "responses": _responses(_OBJECT, errors=())}},
        "/readyz": {"get": {"summary": "Ready", "responses": _responses(_OBJECT, errors=()) | {
            "503": {"description": "not ready", **_json(_OBJECT)}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": _responses(_OBJECT, errors=())}},
    }
    return {(path, method): op for path, ops in paths.items() for method, op in ops.items()}


def _document_schema() -> dict:
    schema = Document.model_json_schema(ref_template="#/components/schemas/Document/$defs/{model}")
    return schema
