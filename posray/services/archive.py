"""Use cases of the tiles archive: read a detached day's records back, checked against the ledger.

After retention (`posray ledger detach`) a day's rows leave `ledger_entries`, while its batch
headers, log nodes (16 leaves and up) and checkpoints stay in PostgreSQL. The day's records live
on in the C2SP tiles exported before the detach (`posray tiles export`, the archive
POSRAY_TILES_ARCHIVE names): entry bundles hold the records, in sequence order. Nothing read from
the archive is trusted: its checkpoint must be one the ledger signed, and a batch's records must
give the batch's stored Merkle root before any of them is served.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass

from posray.domain import tiles
from posray.domain.chain import BatchHeader
from posray.domain.errors import AuditDivergence, NotFound, Unavailable
from posray.domain.merkle import leaf_hash, root_hash
from posray.domain.tiles import TileError
from posray.domain.tlog import STRIDE
from posray.services import tile_client
from posray.services.ports import Ledger, RecordedEntry, TileSource

BLOCK_LEAVES = 1 << STRIDE  # the log stores subtrees of 16 leaves and up: proofs need a block's leaves


@dataclass(frozen=True, slots=True)
class ArchivedEntry:
    """A detached document read back from the archive, with the leaves its proofs need.

    Attributes:
        entry: as the ledger would answer it (merchant_id unknown: None).
        batch_leaves: the leaf hashes of its batch, in order (they give the batch's stored root).
        leaves: leaf hashes by tlog key (0, seq - 1) of the 16-leaf block holding it.
    """

    entry: RecordedEntry
    batch_leaves: list[bytes]
    leaves: dict[tuple[int, int], bytes]


async def archive_checkpoint(archive: TileSource, shard: int) -> tuple[int, bytes]:
    """(size, root) the archive's checkpoint of `shard` claims, unchecked ((0, b"") when it has none).

    Raises:
        AuditDivergence: the checkpoint does not parse.
        Unavailable: the archive could not be read.
    """
    data = await asyncio.to_thread(archive.get, f"{shard}/checkpoint")
    if data is None:
        return 0, b""
    lines = data.decode("utf-8", errors="replace").split("\n")
    try:
        return int(lines[1]), base64.b64decode(lines[2], validate=True)
    except (IndexError, ValueError):
        raise AuditDivergence(f"shard {shard}: the tiles archive's checkpoint does not parse") from None


async def archive_size(ledger: Ledger, archive: TileSource, shard: int) -> int:
    """The size of the archive's checkpoint of `shard` (0: none), once its root is the one the
    ledger signed at that size.

    Raises:
        AuditDivergence: the archive's checkpoint is not one of this ledger's.
        Unavailable: the archive could not be read.
    """
    size, root = await archive_checkpoint(archive, shard)
    if size == 0:
        return 0
    signed = await ledger.checkpoint(shard, size)
    if signed is None or signed[1] != root:
        raise AuditDivergence(f"shard {shard}: the tiles archive's checkpoint (size {size}) is not one this "
                              "ledger signed: another log's archive?")
    return size


async def archived_records(archive: TileSource, shard: int, size: int, first_seq: int,
                           last_seq: int) -> dict[int, bytes]:
    """The records of sequences first_seq..last_seq from the entry bundles of a tree of `size`
    (whole bundles: neighbours come along).

    Raises:
        Unavailable: the archive does not hold them (a bundle missing or malformed), or could not be read.
    """
    if last_seq > size:
        raise Unavailable(f"shard {shard}: the tiles archive holds {size} leaves, not seq {last_seq}; "
                          "run `posray tiles export` to the archive")
    out: dict[int, bytes] = {}
    for n in range((first_seq - 1) // tiles.TILE_WIDTH, (last_seq - 1) // tiles.TILE_WIDTH + 1):
        bundle = tiles.tile_of(0, n * tiles.TILE_WIDTH, size, entries=True)
        try:
            data = await asyncio.to_thread(tile_client.read_tile, archive, shard, bundle)
            records = tiles.decode_bundle(data)
        except (NotFound, TileError) as e:
            raise Unavailable(f"shard {shard}: the tiles archive: {e}") from None
        if len(records) != bundle.width:
            raise Unavailable(f"shard {shard}: the tiles archive's {bundle.path} holds {len(records)} entries")
        out.update((bundle.first + i + 1, record) for i, record in enumerate(records))
    return out


def check_batch(header: BatchHeader, records: dict[int, bytes]) -> list[bytes]:
    """The batch's leaf hashes from archived records, once they give its stored Merkle root.

    Raises:
        AuditDivergence: they do not (an archived record was changed, or is missing).
    """
    seqs = range(header.first_seq, header.last_seq + 1)
    leaves = [leaf_hash(records[s]) for s in seqs if s in records]
    if len(leaves) != len(seqs) or root_hash(leaves) != header.merkle_root:
        raise AuditDivergence(f"shard {header.shard}: the tiles archive's records of batch {header.batch_no} "
                              f"(seqs {header.first_seq}..{header.last_seq}) do not give its stored Merkle root")
    return leaves


async def archived_entry(ledger: Ledger, archive: TileSource | None, shard: int, seq: int) -> ArchivedEntry | None:
    """The document (shard, seq) of a detached day, from the archive; None when its day was not detached.

    Raises:
        Unavailable: its day was detached and no archive is configured, or the archive lacks it.
        AuditDivergence: the archive contradicts the ledger's batch root or signed checkpoints.
    """
    found = await ledger.archived_batch(shard, seq)
    if found is None:
        return None
    if archive is None:
        raise Unavailable("this receipt's day left the ledger (retention) and no tiles archive is configured "
                          "(POSRAY_TILES_ARCHIVE)")
    header, header_hash = found
    size = await archive_size(ledger, archive, shard)
    block = (seq - 1) // BLOCK_LEAVES * BLOCK_LEAVES
    last = max(header.last_seq, min(block + BLOCK_LEAVES, size))
    records = await archived_records(archive, shard, size, min(header.first_seq, block + 1), last)
    batch_leaves = check_batch(header, records)
    leaves = {(0, s - 1): leaf_hash(records[s]) for s in range(block + 1, block + BLOCK_LEAVES + 1) if s in records}
    entry = RecordedEntry(shard=shard, seq=seq, batch_no=header.batch_no, leaf_index=seq - header.first_seq,
                          merchant_id=None, record=records[seq], leaf_hash=leaf_hash(records[seq]),
                          header=header, header_hash=header_hash)
    return ArchivedEntry(entry, batch_leaves, leaves)


async def archived_tile(ledger: Ledger, archive: TileSource, shard: int, tile: tiles.Tile) -> bytes:
    """An entry bundle or level-0 hash tile of the current log whose leaves the ledger holds only
    in part (some of their days were detached): the ledger's records where it has them, the
    archive's for the rest, each complete 16-leaf block checked against the stored log node.

    Raises:
        NotFound: the tile is not a level-0 tile, or neither store holds all of its leaves.
        AuditDivergence: archived records contradict the ledger's stored log hashes.
    """
    if tile.level != 0:
        raise NotFound(f"shard {shard}'s log has no {tile.path} (yet)")
    seqs = list(range(tile.first + 1, tile.first + tile.width + 1))
    records = await ledger.records(shard, seqs)
    missing = [s for s in seqs if s not in records]
    if missing:
        size = await archive_size(ledger, archive, shard)
        if missing[-1] > size:
            raise NotFound(f"shard {shard}'s log has no {tile.path} (yet)")
        archived = await archived_records(archive, shard, size, missing[0], missing[-1])
        records.update((s, archived[s]) for s in missing)
    leaves = [leaf_hash(records[s]) for s in seqs]
    await _check_blocks(ledger, shard, tile.first, leaves)
    return tiles.encode_bundle([records[s] for s in seqs]) if tile.entries else b"".join(leaves)


async def _check_blocks(ledger: Ledger, shard: int, first: int, leaves: list[bytes]) -> None:
    """Compare each complete 16-leaf block of leaves first.. with the stored log node (level 4)."""
    blocks = {(STRIDE, (first + i) // BLOCK_LEAVES): leaves[i:i + BLOCK_LEAVES]
              for i in range(0, len(leaves) - BLOCK_LEAVES + 1, BLOCK_LEAVES)}
    stored = await ledger.stored_hashes(shard, set(blocks))
    for key, block in blocks.items():
        if stored.get(key) != root_hash(block):
            raise AuditDivergence(f"shard {shard}: the tiles archive's records of leaves {key[1] * BLOCK_LEAVES}.."
                                  f"{key[1] * BLOCK_LEAVES + BLOCK_LEAVES - 1} do not give the stored log node")
