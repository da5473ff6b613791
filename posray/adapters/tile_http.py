"""A log's C2SP tiles over HTTP: posray's /tlog/ routes, or any static server or CDN holding an export."""

from __future__ import annotations

import httpx

from posray.domain.errors import Unavailable

TILE_BYTES_MAX = 256 * (2 + 0xFFFF)  # the largest possible entry bundle


class HttpTiles:
    """GETs `<base>/<path>` with one httpx client; 404 and 410 mean "no such resource"."""

    def __init__(self, base_url: str, client: httpx.Client):
        self._base = base_url.rstrip("/")
        self._client = client

    def get(self, path: str) -> bytes | None:
        url = f"{self._base}/{path}"
        try:
            response = self._client.get(url, headers={"accept-encoding": "gzip, identity"})
        except httpx.HTTPError as e:
            raise Unavailable(f"GET {url}: {type(e).__name__}: {e}") from e
        if response.status_code in (404, 410):
            return None
        if response.status_code != 200:
            raise Unavailable(f"GET {url}: HTTP {response.status_code}")
        if len(response.content) > TILE_BYTES_MAX:
            raise Unavailable(f"GET {url}: {len(response.content)} bytes, more than any tile")
        return response.content


ARCHIVE_TIMEOUT_S = 15.0


def tile_source(location: str):
    """The tiles at `location`: an http(s) URL (a static server, bucket or CDN) or a directory.

    Returns:
        HttpTiles or posray.adapters.tile_files.TileDirectory.
    """
    if location.startswith(("http://", "https://")):
        return HttpTiles(location, httpx.Client(timeout=ARCHIVE_TIMEOUT_S, follow_redirects=True))
    from pathlib import Path

    from posray.adapters.tile_files import TileDirectory

    return TileDirectory(Path(location))
