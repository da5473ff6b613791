"""C2SP tlog-tiles (https://c2sp.org/tlog-tiles): tile paths, widths, entry bundles, proofs from tiles.

A tile at level L, index N holds the Merkle Tree Hashes of the 256 consecutive subtrees of
height 8·L starting at subtree N·256: level 0 holds leaf hashes, level 1 the roots of full
level-0 tiles, and so on. In posray's stored log (posray.domain.tlog) those are exactly the
stored hashes at tlog level 8·L, so a tile is read, never computed. A partial tile (the right
edge of a tree of size s) has width floor(s / 256**L) mod 256. An entry bundle holds the
leaf data of the leaves of a level-0 tile, each prefixed with its length (big-endian uint16).

A reader holding only tiles computes any root or proof with posray.domain.tlog at stride 8:
`*_keys` name the hashes needed, `tiles_for` the tiles that hold them (with the widths a
checkpointed size implies), `hashes_in` turns fetched tiles back into hashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from posray.domain import tlog
from posray.domain.errors import PosrayError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
HASH_BYTES = 32
LEVEL_MAX = 63
ENTRY_BYTES_MAX = 0xFFFF
_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")

Key = tlog.Key


class TileError(PosrayError, ValueError):
    """A tile path, tile or entry bundle that is not what the tlog-tiles spec says."""


@dataclass(frozen=True, slots=True)
class Tile:
    """A hash tile (level >= 0) or an entry bundle (entries=True, level 0), of `width` hashes or entries.

    Attributes:
        level: the tile level L (0 for entry bundles).
        index: N, the tile's index within its level.
        width: 1..256; 256 is a full tile, anything less a partial one (path suffix `.p/<W>`).
        entries: an entry bundle rather than a hash tile.
    """

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        if not (0 <= self.level <= LEVEL_MAX and self.index >= 0 and 1 <= self.width <= TILE_WIDTH):
            raise TileError(f"no such tile: level {self.level}, index {self.index}, width {self.width}")
        if self.entries and self.level != 0:
            raise TileError("entry bundles have no level")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        """The path below the log's prefix, e.g. `tile/1/x001/x234/067.p/12`."""
        level = "entries" if self.entries else str(self.level)
        suffix = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{index_path(self.index)}{suffix}"

    @property
    def first(self) -> int:
        """Index, at tlog level 8·L, of the tile's first hash (for bundles: its first leaf)."""
        return self.index * TILE_WIDTH


def index_path(index: int) -> str:
    """N in 3-digit path elements, all but the last prefixed with `x`: 1234067 -> x001/x234/067."""
    groups = [index % 1000]
    index //= 1000
    while index:
        groups.append(index % 1000)
        index //= 1000
    groups.reverse()
    return "/".join([f"x{g:03d}" for g in groups[:-1]] + [f"{groups[-1]:03d}"])


def parse_path(path: str) -> Tile:
    """The tile a path below the prefix names; only the spec's one spelling of each tile is accepted.

    Raises:
        TileError: not a tile path, a level over 63, a width over 255, or a non-canonical index.
    """
    match = _PATH.fullmatch(path)
    if match is None:
        raise TileError(f"not a tile path: {path!r}")
    level_text, index_text, width_text = match.groups()
    index = int(index_text.replace("x", "").replace("/", ""))
    width = int(width_text) if width_text else TILE_WIDTH
    if width_text and width >= TILE_WIDTH:
        raise TileError(f"a partial tile is 1..255 wide: {path!r}")
    entries = level_text == "entries"
    tile = Tile(0 if entries else int(level_text), index, width, entries)
    if tile.path != path:  # x000/005 and the like: one resource, one name
        raise TileError(f"not the canonical path of its tile: {path!r}")
    return tile


def partial_width(level: int, size: int) -> int:
    """Width of the partial tile at `level` of a tree of `size` (0: there is none)."""
    return (size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def tile_of(level: int, index: int, size: int, entries: bool = False) -> Tile:
    """The tile (full, or partial as `size` implies) holding hash `index` of tile level `level`.

    Raises:
        TileError: a tree of `size` has no such hash.
    """
    count = size >> (TILE_HEIGHT * level)  # hashes (or leaves) at this level in the tree
    if not 0 <= index < count:
        raise TileError(f"a tree of size {size} has no hash {index} at tile level {level}")
    n = index // TILE_WIDTH
    width = TILE_WIDTH if (n + 1) * TILE_WIDTH <= count else count % TILE_WIDTH
    return Tile(level, n, width, entries)


def tiles_between(old_size: int, new_size: int) -> list[Tile]:
    """Tiles a tree of `new_size` has that one of `old_size` did not: completed full tiles
    (hash tiles and entry bundles) and the partial tiles of `new_size`, lowest level first."""
    out: list[Tile] = []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        full_old = old_size >> (TILE_HEIGHT * (level + 1))
        full_new = new_size >> (TILE_HEIGHT * (level + 1))
        width = partial_width(level, new_size)
        for entries in ((False, True) if level == 0 else (False,)):
            out.extend(Tile(level, n, TILE_WIDTH, entries) for n in range(full_old, full_new))
            if width and (width != partial_width(level, old_size) or full_new != full_old):
                out.append(Tile(level, full_new, width, entries))
        level += 1
    return out


def partials(size: int) -> list[Tile]:
    """The partial tiles of a tree of `size`: hash tiles at every level, and the entry bundle."""
    out = [Tile(level, (size >> (TILE_HEIGHT * level)) // TILE_WIDTH, partial_width(level, size))
           for level in range(LEVEL_MAX + 1) if partial_width(level, size)]
    if partial_width(0, size):
        out.append(Tile(0, size // TILE_WIDTH, partial_width(0, size), entries=True))
    return out


def tiles_for(keys: set[Key], size: int) -> dict[Tile, list[Key]]:
    """Which tiles of a tree of `size` hold the hashes `keys` (tlog keys at stride 8) name.

    Raises:
        TileError: a key is not at a multiple of the tile height, or outside the tree.
    """
    out: dict[Tile, list[Key]] = {}
    for level, index in sorted(keys):
        if level % TILE_HEIGHT:
            raise TileError(f"tiles hold no hash at tree level {level}")
        out.setdefault(tile_of(level // TILE_HEIGHT, index, size), []).append((level, index))
    return out


def hashes_in(tile: Tile, data: bytes) -> dict[Key, bytes]:
    """The hashes of a fetched hash tile, by tlog key.

    Raises:
        TileError: the body is not `width` hashes long.
    """
    if tile.entries or len(data) != tile.width * HASH_BYTES:
        raise TileError(f"{tile.path}: {len(data)} bytes, not {tile.width} hashes")
    level = tile.level * TILE_HEIGHT
    return {(level, tile.first + i): data[i * HASH_BYTES:(i + 1) * HASH_BYTES] for i in range(tile.width)}


def encode_bundle(entries: list[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length, then its bytes.

    Raises:
        TileError: an entry longer than 65535 bytes (the format cannot carry it).
    """
    parts = []
    for entry in entries:
        if len(entry) > ENTRY_BYTES_MAX:
            raise TileError(f"an entry of {len(entry)} bytes does not fit an entry bundle (65535 at most)")
        parts.append(len(entry).to_bytes(2, "big"))
        parts.append(entry)
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[bytes]:
    """The entries of a bundle, in order.

    Raises:
        TileError: a length runs past the end of the bundle.
    """
    entries, at = [], 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError("entry bundle truncated in a length prefix")
        length = int.from_bytes(data[at:at + 2], "big")
        if at + 2 + length > len(data):
            raise TileError("entry bundle truncated in an entry")
        entries.append(data[at + 2:at + 2 + length])
        at += 2 + length
    return entries


def inclusion_keys(index: int, size: int) -> set[Key]:
    """Tile hashes needed for the inclusion proof of leaf `index` in a tree of `size`."""
    return tlog.proof_keys(tlog.inclusion_ranges(index, size), TILE_HEIGHT)


def inclusion_proof(index: int, size: int, hashes: dict[Key, bytes]) -> list[bytes]:
    """The RFC 6962 audit path of leaf `index`, from the hashes `inclusion_keys` named."""
    return tlog.proof_hashes(tlog.inclusion_ranges(index, size), hashes, TILE_HEIGHT)


def consistency_keys(first: int, second: int) -> set[Key]:
    """Tile hashes needed for the consistency proof between two sizes (0 < first <= second)."""
    return tlog.proof_keys(tlog.consistency_ranges(first, second), TILE_HEIGHT)


def consistency_proof(first: int, second: int, hashes: dict[Key, bytes]) -> list[bytes]:
    """The RFC 6962 consistency proof between two sizes, from the hashes `consistency_keys` named."""
    return tlog.proof_hashes(tlog.consistency_ranges(first, second), hashes, TILE_HEIGHT)


def root_keys(size: int) -> set[Key]:
    """Tile hashes needed for the root of a tree of `size`."""
    return tlog.range_keys(0, size, stride=TILE_HEIGHT)


def root(size: int, hashes: dict[Key, bytes]) -> bytes:
    """The Merkle Tree Hash of a tree of `size`, from the hashes `root_keys` named."""
    return tlog.range_hash(0, size, hashes, TILE_HEIGHT)
