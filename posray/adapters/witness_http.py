"""A log's HTTP client of witnesses: POST <submission prefix>/add-checkpoint (c2sp.org/tlog-witness)."""

from __future__ import annotations

import httpx

from posray.domain.errors import Unavailable

ANSWER_BYTES_MAX = 64 * 1024  # a few cosignature lines, or a short refusal


class HttpWitnesses:
    """One keep-alive httpx client for every witness (the spec asks logs to reuse connections)."""

    def __init__(self, timeout_s: float, client: httpx.AsyncClient | None = None):
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def add_checkpoint(self, url: str, body: bytes) -> tuple[int, bytes]:
        target = url.rstrip("/") + "/add-checkpoint"
        try:
            response = await self._client.post(target, content=body, headers={"content-type": "text/plain"})
        except httpx.HTTPError as e:
            raise Unavailable(f"POST {target}: {type(e).__name__}: {e}") from e
        if response.status_code >= 500:
            raise Unavailable(f"POST {target}: HTTP {response.status_code}")
        return response.status_code, response.content[:ANSWER_BYTES_MAX]

    async def aclose(self) -> None:
        await self._client.aclose()
