"""Request bodies at the HTTP edge: read within their limit, parsed as JSON without duplicate members."""

from __future__ import annotations

import json

import orjson

from posray.domain.errors import InvalidRequest, TooLarge, Unavailable
from posray.settings import Settings


async def read_body(scope, receive, settings: Settings) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed `body_bytes_max`.

    Raises:
        TooLarge: a declared or received length over the limit.
        Unavailable: the client disconnected before the body was complete.
    """
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


def parse_json(raw: bytes):
    """The body parsed by orjson, once no object in it names a member twice.

    orjson (like most parsers) keeps the last of duplicate members, others keep the first: a
    signed document with two `total_minor` would mean two things to two readers of its bytes.

    Raises:
        InvalidRequest: not JSON, nested too deeply, or a duplicate member (400).
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
