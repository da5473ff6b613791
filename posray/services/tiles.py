"""Use cases of the C2SP tiles: read a tile or an entry bundle of a shard's log, export them as files.

Tiles are not a second copy of the log: a hash tile at level L is the row of stored hashes at
tlog level 8·L (leaf hashes for L = 0), an entry bundle the records of 256 sequences, so
serving one costs one index range scan of at most 256 rows and no hashing. Full tiles never
change; the HTTP edge keeps recently served ones in a bounded cache (TileCache) and marks them
immutable for every cache on the way. `export` writes the same tree as files, each full tile
once, the partial tiles and then the checkpoint of the latest signed size, after checking that
the exported tiles give the signed root.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from posray.domain import tiles
from posray.domain.errors import AuditDivergence, NotFound, SetupError
from posray.domain.merkle import leaf_hash
from posray.domain.tiles import Tile
from posray.services.archive import archived_tile
from posray.services.ports import Ledger, TileSink, TileSource
from posray.services.proofs import published_checkpoint

EXPORT_STEP_LEAVES = 1 << 16  # full tiles are exported this many leaves at a time (bounded memory)
CACHE_BYTES_MAX = 32 * 1024 * 1024


class TileCache:
    """Full tiles and bundles recently read, least recently used first out, at most `bytes_max`."""

    def __init__(self, bytes_max: int = CACHE_BYTES_MAX):
        self._bytes_max = bytes_max
        self._bytes = 0
        self._items: collections.OrderedDict[tuple[int, Tile], bytes] = collections.OrderedDict()

    def get(self, shard: int, tile: Tile) -> bytes | None:
        found = self._items.get((shard, tile))
        if found is not None:
            self._items.move_to_end((shard, tile))
        return found

    def put(self, shard: int, tile: Tile, data: bytes) -> None:
        if not tile.full or len(data) > self._bytes_max or (shard, tile) in self._items:
            return  # partial tiles are cheap and short-lived; only full ones never change
        self._items[(shard, tile)] = data
        self._bytes += len(data)
        while self._bytes > self._bytes_max:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped)


async def read_tile(ledger: Ledger, shard: int, tile: Tile, cache: TileCache | None = None,
                    archive: TileSource | None = None) -> bytes:
    """The bytes of a hash tile or entry bundle of `shard`'s log.

    Args:
        archive: the tiles archive, for the leaves of days that left the ledger (retention).

    Raises:
        NotFound: the log does not hold the tile yet (fewer hashes or entries than its width).
        TileError: a record too long for an entry bundle (65535 bytes at most).
    """
    if cache is not None and (found := cache.get(shard, tile)) is not None:
        return found
    if tile.entries:
        records = await ledger.record_range(shard, tile.first + 1, tile.width)
        data = tiles.encode_bundle(records) if len(records) == tile.width else None
    else:
        hashes = await ledger.hash_range(shard, tiles.TILE_HEIGHT * tile.level, tile.first, tile.width)
        data = b"".join(hashes) if len(hashes) == tile.width else None
    if data is None and archive is not None and tile.level == 0:
        data = await archived_tile(ledger, archive, shard, tile)
    if data is None:
        raise NotFound(f"shard {shard}'s log has no {tile.path} (yet)")
    if cache is not None:
        cache.put(shard, tile, data)
    return data


@dataclass(frozen=True, slots=True)
class Exported:
    """What one export round did for one shard."""

    shard: int
    from_size: int
    to_size: int
    written: int  # files written, the checkpoint included


async def export(ledger: Ledger, sink: TileSink, shard: int, origin: str, cosigned_min: int = 0) -> Exported:
    """Bring `<shard>/` of `sink` to the shard's latest published checkpoint (with at least
    `cosigned_min` witness cosignatures, appended to the note).

    Full tiles already present are not written again; partial tiles are written for the new size;
    the checkpoint goes last, once the exported tiles give its root, so a reader that sees a
    checkpoint finds every tile it needs.

    Raises:
        SetupError: the directory holds another log (another origin), or a larger one.
        AuditDivergence: the stored log does not give the signed root (run `posray audit`).
    """
    signed = await published_checkpoint(ledger, shard, cosigned_min=cosigned_min)
    old_size = _exported_size(sink, shard, origin)
    if signed is not None and signed[0] == old_size and sink.get(f"{shard}/checkpoint") != signed[2].encode():
        sink.put(f"{shard}/checkpoint", signed[2].encode())  # the same checkpoint, cosigned by more witnesses
        return Exported(shard, old_size, old_size, 1)
    if signed is None or signed[0] == old_size:
        return Exported(shard, old_size, old_size, 0)
    size, root, note = signed
    if size < old_size:
        raise SetupError(f"{shard}/checkpoint is at size {old_size}, ahead of the ledger's {size}: "
                         "another database's export?")
    written, start = 0, old_size
    while start < size:  # full tiles a bounded step at a time
        end = min(size, start - start % tiles.TILE_WIDTH + EXPORT_STEP_LEAVES)
        written += await _write_tiles(ledger, sink, shard, [t for t in tiles.tiles_between(start, end) if t.full])
        start = end
    written += await _write_tiles(ledger, sink, shard, tiles.partials(size))
    exported_root = tiles.root(size, _read_hashes(sink, shard, tiles.root_keys(size), size))
    if exported_root != root:
        raise AuditDivergence(f"shard {shard}: the exported tiles give root {exported_root.hex()} for size "
                              f"{size}, the checkpoint signs {root.hex()}; run `posray audit`")
    sink.put(f"{shard}/checkpoint", note.encode())
    return Exported(shard, old_size, size, written + 1)


def _exported_size(sink: TileSink, shard: int, origin: str) -> int:
    text = sink.get(f"{shard}/checkpoint")
    if text is None:
        return 0
    lines = text.decode(errors="replace").split("\n")
    if len(lines) < 3 or lines[0] != origin or not lines[1].isdigit():
        raise SetupError(f"{shard}/checkpoint holds another log than {origin} (origin {lines[0]!r})")
    return int(lines[1])


async def _write_tiles(ledger: Ledger, sink: TileSink, shard: int, wanted: list[Tile]) -> int:
    """Write the tiles not there yet (full ones) or all of them (partial ones); bundles are checked
    against the leaf hashes of their level-0 tile before either is written."""
    written = 0
    for tile in wanted:
        if tile.entries:
            continue  # written with its level-0 hash tile, below
        paths = [f"{shard}/{tile.path}"]
        if tile.level == 0:
            paths.append(f"{shard}/{Tile(0, tile.index, tile.width, entries=True).path}")
        if tile.full and all(sink.exists(p) for p in paths):
            continue
        # The export itself is the archive of detached days: their leaves are read back from it.
        data = await read_tile(ledger, shard, tile, archive=sink)
        if tile.level == 0:
            bundle = await read_tile(ledger, shard, Tile(0, tile.index, tile.width, entries=True), archive=sink)
            if b"".join(leaf_hash(r) for r in tiles.decode_bundle(bundle)) != data:
                raise AuditDivergence(f"shard {shard}: a record of {tile.path} does not hash to its stored leaf "
                                      "hash; run `posray audit`")
            sink.put(paths[1], bundle)
            written += 1
        sink.put(paths[0], data)
        written += 1
    return written


def _read_hashes(sink: TileSink, shard: int, keys: set, size: int) -> dict:
    hashes: dict = {}
    for tile in tiles.tiles_for(keys, size):
        data = sink.get(f"{shard}/{tile.path}")
        if data is None:
            raise AuditDivergence(f"shard {shard}: {tile.path} is missing from the export")
        hashes.update(tiles.hashes_in(tile, data))
    return hashes
