"""The witness's HTTP server: a small ASGI app (run by uvicorn) around posray.services.witness.

    POST /add-checkpoint                 c2sp.org/tlog-witness: cosign a checkpoint, or say why not
    GET  /<hex SHA-256 of origin>/checkpoint   the latest checkpoint cosigned for that log

A witness runs outside posray's cluster (no Ray): one process, one event loop, one lock.
"""

from __future__ import annotations

import logging
import re

from posray.domain.witness import REQUEST_BYTES_MAX, TEXT_CONTENT_TYPE
from posray.services.witness import Witness

log = logging.getLogger("posray.witness")
_MONITOR = re.compile(r"/([0-9a-f]{64})/checkpoint")


class WitnessApp:
    """An ASGI application answering the witness API of one Witness."""

    def __init__(self, witness: Witness):
        self.witness = witness

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/add-checkpoint":
            if method != "POST":
                await _answer(send, 405, b"use POST\n", extra=[(b"allow", b"POST")])
                return
            body = await _body(receive, REQUEST_BYTES_MAX)
            if body is None:
                await _answer(send, 413, b"request too large\n")
                return
            try:
                answer = await self.witness.add_checkpoint(body)
            except Exception:  # the state could not be saved: nothing was cosigned
                log.exception("add-checkpoint failed")
                await _answer(send, 500, b"internal error\n")
                return
            await _answer(send, answer.status, answer.body, answer.content_type)
            return
        found = _MONITOR.fullmatch(path)
        if found and method in ("GET", "HEAD"):
            note = self.witness.checkpoint(found[1])
            if note is None:
                await _answer(send, 404, b"no checkpoint of this log cosigned\n")
            else:
                await _answer(send, 200, note.encode(), extra=[(b"cache-control", b"public, max-age=60")])
            return
        await _answer(send, 404, b"not found\n")


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive, bytes_max: int) -> bytes | None:
    """The whole request body, or None once it passes `bytes_max`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > bytes_max:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send, status: int, body: bytes, content_type: str = TEXT_CONTENT_TYPE,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
