"""The transparency logs' routes: signed checkpoints, consistency proofs, the verifier key.

    GET /v1/log/{shard}/checkpoint[?tree_size]     a C2SP signed note (text/plain), witnesses' cosignatures appended
    GET /v1/log/{shard}/consistency?first&second   an RFC 6962 consistency proof
    GET /v1/log/key, /.well-known/posray/log-key   the logs' verifier key
    GET /tlog/{shard}/checkpoint                   C2SP tlog-tiles: the latest checkpoint
    GET /tlog/{shard}/tile/<L>/<N>[.p/<W>]         a hash tile (c2sp.org/tlog-tiles)
    GET /tlog/{shard}/tile/entries/<N>[.p/<W>]     an entry bundle of records
Tiles never change once served, so they are marked immutable for every cache on the way (a CDN
in front takes the public's reads off PostgreSQL); the checkpoint changes every second or so.
"""

from __future__ import annotations

import orjson

from deployments import params
from deployments.api.errors import JSON
from deployments.api.routing import Request, Response, Route
from posray.domain.errors import InvalidRequest, NotFound
from posray.domain.tiles import TileError, parse_path
from posray.services import proofs, tiles

TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
TILE_CACHE_CONTROL = b"public, max-age=31536000, immutable"
CHECKPOINT_CACHE_CONTROL = b"public, max-age=1"
_OCTETS = (b"content-type", b"application/octet-stream")
_SHARD_DIGITS_MAX = 5


async def checkpoint(request: Request) -> Response:
    shard = _shard(request.params["shard"], request.backend)
    tree_size = params.query_integer(request.scope, "tree_size")
    note = await proofs.checkpoint_note(request.backend.ledger, shard, tree_size,
                                        request.backend.settings.witness_quorum)
    return 200, note.encode(), TEXT


async def consistency(request: Request) -> Response:
    shard = _shard(request.params["shard"], request.backend)
    first = params.query_integer(request.scope, "first")
    second = params.query_integer(request.scope, "second")
    if first is None or second is None:
        raise InvalidRequest("first", "first and second tree sizes are required")
    proof = await proofs.consistency(request.backend.ledger, shard, first, second)
    return 200, orjson.dumps(proof), JSON


async def key(request: Request) -> Response:
    s, keys = request.backend.settings, request.backend.keys
    origins = [s.log_origin(shard) for shard in range(s.shard_count)]
    return 200, orjson.dumps(proofs.log_key(s.log_key_name, keys.signing_seed, origins)), JSON


async def tile_checkpoint(request: Request) -> Response:
    shard = _shard(request.params["shard"], request.backend)
    note = await proofs.checkpoint_note(request.backend.ledger, shard, None, request.backend.settings.witness_quorum)
    return 200, note.encode(), TEXT + [(b"cache-control", CHECKPOINT_CACHE_CONTROL)]


async def tile(request: Request) -> Response:
    """A hash tile or entry bundle; partial tiles too, for any width the log already holds."""
    shard = _shard(request.params["shard"], request.backend)
    try:
        wanted = parse_path("tile/" + request.params["rest"])
    except TileError:
        raise NotFound("no such tile") from None
    b = request.backend
    data = await tiles.read_tile(b.ledger, shard, wanted, b.tiles, b.archive)
    return 200, data, [_OCTETS, (b"cache-control", TILE_CACHE_CONTROL)]


async def unknown(request: Request) -> Response:
    """Any other GET under /v1/log/: which shard is named decides which 404."""
    parts = request.scope["path"].split("/")  # ["", "v1", "log", shard, what]
    if len(parts) != 5:
        raise NotFound("no such shard log")
    _shard(parts[3], request.backend)
    raise NotFound(f"no route for GET {request.scope['path']}")


ROUTES = (
    Route("GET", "/v1/log/key", key),
    Route("GET", "/.well-known/posray/log-key", key),
    Route("GET", "/v1/log/{shard}/checkpoint", checkpoint),
    Route("GET", "/v1/log/{shard}/consistency", consistency),
    Route("GET", "/v1/log/{rest:path}", unknown, documented=False),
    Route("GET", "/tlog/{shard}/checkpoint", tile_checkpoint),
    Route("GET", "/tlog/{shard}/tile/{rest:path}", tile),
)


def _shard(text: str, backend) -> int:
    """The shard a path names, or NotFound when it names none of this deployment's shards."""
    if not (text.isascii() and text.isdigit() and len(text) <= _SHARD_DIGITS_MAX):
        raise NotFound("no such shard log")
    shard = int(text)
    if shard >= backend.settings.shard_count:
        raise NotFound("no such shard log")
    return shard
