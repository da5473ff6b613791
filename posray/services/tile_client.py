"""Reading a shard's log from its C2SP tiles alone: a receipt's proof bundle, a consistency proof.

What a customer, auditor or witness does with nothing but a tile source (a directory, a static
server, posray's /tlog/) and the operator's verifier key: verify the latest checkpoint first,
then fetch the entry bundle holding the record and the few hash tiles the proof needs, with the
widths that checkpoint's size implies. Nothing fetched is trusted: the bundle this builds is
checked by posray.domain.receipt_proof.verify_receipt_bundle like one from the proof API, and
the proof leads to the signed root only if every fetched hash on the path is genuine.
"""

from __future__ import annotations

from posray.domain import tiles
from posray.domain.errors import NotFound
from posray.domain.merkle import leaf_hash
from posray.domain.note import Checkpoint, NoteVerifier, open_checkpoint
from posray.domain.tiles import TileError
from posray.services.ports import TileSource


def latest_checkpoint(source: TileSource, verifier: NoteVerifier, shard: int) -> tuple[Checkpoint, str]:
    """The shard's checkpoint, verified with the operator's key and the shard's origin.

    Raises:
        NotFound: the source has no checkpoint for this shard.
        NoteError: the checkpoint is not signed by that key for `<key name>/<shard>`.
    """
    data = source.get(f"{shard}/checkpoint")
    if data is None:
        raise NotFound(f"no checkpoint for shard {shard} in the tiles")
    note = data.decode("utf-8", errors="replace")
    return open_checkpoint(verifier, note, f"{verifier.name}/{shard}"), note


def receipt_bundle(source: TileSource, verifier: NoteVerifier, shard: int, seq: int) -> dict:
    """The proof bundle of document `seq` of `shard` (the proof API's format), from tiles only.

    Raises:
        NotFound: no checkpoint yet, or the latest one does not cover `seq` yet, or a tile is missing.
        NoteError: the checkpoint does not verify.
        TileError: a tile or bundle is malformed.
    """
    checkpoint, note = latest_checkpoint(source, verifier, shard)
    size, index = checkpoint.tree_size, seq - 1
    if not 0 <= index < size:
        raise NotFound(f"shard {shard}'s latest checkpoint (size {size}) does not cover sequence {seq} yet")
    bundle = tiles.tile_of(0, index, size, entries=True)
    records = tiles.decode_bundle(_get(source, shard, bundle))
    if len(records) != bundle.width:
        raise TileError(f"{bundle.path} holds {len(records)} entries, not {bundle.width}")
    record = records[index % tiles.TILE_WIDTH]
    hashes = fetch_hashes(source, shard, tiles.inclusion_keys(index, size), size)
    return {
        "record": record.decode("utf-8", errors="replace"),
        "leaf_hash": leaf_hash(record).hex(),
        "shard": shard,
        "leaf_index": index,
        "tree_size": size,
        "root_hash": checkpoint.root_hash.hex(),
        "inclusion_proof": [h.hex() for h in tiles.inclusion_proof(index, size, hashes)],
        "checkpoint": note,
    }


def consistency_proof(source: TileSource, shard: int, first: int, second: int) -> list[bytes]:
    """The RFC 6962 consistency proof between two sizes, from the tiles of a tree of `second`.

    Raises:
        NotFound: a tile is missing.
        TileError: a tile is malformed.
    """
    if first == 0 or first == second:
        return []
    return tiles.consistency_proof(first, second, fetch_hashes(source, shard, tiles.consistency_keys(first, second),
                                                               second))


def fetch_hashes(source: TileSource, shard: int, keys: set, size: int) -> dict:
    """The hashes `keys` names, from the tiles of a tree of `size` that hold them (one GET per tile)."""
    hashes: dict = {}
    for tile in tiles.tiles_for(keys, size):
        hashes.update(tiles.hashes_in(tile, _get(source, shard, tile)))
    return hashes


def read_tile(source: TileSource, shard: int, tile: tiles.Tile) -> bytes:
    """The bytes of `tile` of `shard`; a partial tile the source no longer has is cut from its full tile.

    Raises:
        NotFound: neither is in the source.
    """
    return _get(source, shard, tile)


def _get(source: TileSource, shard: int, tile: tiles.Tile) -> bytes:
    data = source.get(f"{shard}/{tile.path}")
    if data is None and not tile.full:
        # A log may delete a partial tile once the full one exists (tlog-tiles): its prefix is the same.
        full = source.get(f"{shard}/{tiles.Tile(tile.level, tile.index, entries=tile.entries).path}")
        data = None if full is None else _prefix(tile, full)
    if data is None:
        raise NotFound(f"shard {shard}: {tile.path} is not in the tiles")
    return data


def _prefix(tile: tiles.Tile, full: bytes) -> bytes:
    if not tile.entries:
        return full[:tile.width * tiles.HASH_BYTES]
    return tiles.encode_bundle(tiles.decode_bundle(full)[:tile.width])
