"""C2SP tlog-tiles math: paths and bundles as the spec spells them, proofs equal to RFC 6962's."""

from __future__ import annotations

import functools
import hashlib

import pytest

from posray.domain import tiles, tlog
from posray.domain.merkle import consistency_proof, inclusion_proof, root_hash
from posray.domain.tiles import Tile, TileError

SIZES = [1, 255, 256, 257, 65535, 65536, 65537]


@functools.cache
def leaves(n: int) -> tuple[bytes, ...]:
    return tuple(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n))


def spec_tile(tile: Tile, all_leaves: tuple[bytes, ...]) -> bytes:
    """The tile exactly as the spec defines it: MTH(D[(n*256+i)*256**l : (n*256+i+1)*256**l])."""
    span = 256 ** tile.level
    return b"".join(root_hash(list(all_leaves[(tile.index * 256 + i) * span:(tile.index * 256 + i + 1) * span]))
                    for i in range(tile.width))


@functools.cache
def published(size: int) -> dict[str, bytes]:
    """Every hash tile of a tree of `size`, by path, built from the spec's formula."""
    all_leaves = leaves(size)
    if size <= 256 or size == 65536:  # small trees and exact powers: the formula itself
        return {t.path: spec_tile(t, all_leaves) for t in tiles.tiles_between(0, size) if not t.entries}
    # Larger trees: level 0 from the leaves, higher levels from the roots of full lower tiles.
    out, hashes, level = {}, list(all_leaves), 0
    while hashes:
        for n in range(0, len(hashes), 256):
            chunk = hashes[n:n + 256]
            out[Tile(level, n // 256, len(chunk)).path] = b"".join(chunk)
        hashes = [root_hash(hashes[n:n + 256]) for n in range(0, len(hashes) - 255, 256)]
        level += 1
    return out


def fetch(size: int, keys: set) -> dict:
    hashes: dict = {}
    for tile in tiles.tiles_for(keys, size):
        hashes.update(tiles.hashes_in(tile, published(size)[tile.path]))
    return hashes


class TestPaths:
    @pytest.mark.parametrize("index, text", [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"),
                                             (1234067, "x001/x234/067"), (10**9, "x001/x000/x000/000")])
    def test_indexes_are_3_digit_groups_all_but_the_last_prefixed_with_x(self, index, text):
        assert tiles.index_path(index) == text

    @pytest.mark.parametrize("tile, path", [
        (Tile(0, 0), "tile/0/000"), (Tile(1, 1234067), "tile/1/x001/x234/067"),
        (Tile(0, 273, 112), "tile/0/273.p/112"), (Tile(2, 0, 1), "tile/2/000.p/1"),
        (Tile(0, 3, entries=True), "tile/entries/003"), (Tile(0, 3, 7, True), "tile/entries/003.p/7"),
        (Tile(63, 0), "tile/63/000")])
    def test_paths_are_the_specs_and_parse_back(self, tile, path):
        assert tile.path == path and tiles.parse_path(path) == tile

    @pytest.mark.parametrize("path", [
        "tile/01/000", "tile/64/000", "tile/0/5", "tile/0/x000/005", "tile/0/000.p/256", "tile/0/000.p/0",
        "tile/0/000.p/012", "tile/0/000.p/", "tile/0/x001", "tile/entries/1/000", "tile/-1/000",
        "tile/0/000/", "/tile/0/000", "tile/0/0001", "tile/0/x1/000", "checkpoint", "tile/0/000.p/7/"])
    def test_anything_else_is_not_a_tile(self, path):
        with pytest.raises(TileError):
            tiles.parse_path(path)


class TestTheTilesOfASize:
    def test_the_specs_example_of_a_tree_of_70000(self):
        hash_tiles = [t for t in tiles.tiles_between(0, 70_000) if not t.entries]
        full0 = [t for t in hash_tiles if t.level == 0 and t.full]
        assert len(full0) == 273 and full0[-1].index == 272
        assert [t for t in hash_tiles if not (t.level == 0 and t.full)] == [
            Tile(0, 273, 112), Tile(1, 0), Tile(1, 1, 17), Tile(2, 0, 1)]

    def test_a_tree_of_256_is_one_full_level_0_tile_and_a_level_1_tile_of_width_1(self):
        assert [t for t in tiles.tiles_between(0, 256) if not t.entries] == [Tile(0, 0), Tile(1, 0, 1)]

    def test_entry_bundles_follow_the_level_0_tiles(self):
        assert [t for t in tiles.tiles_between(0, 600) if t.entries] == [
            Tile(0, 0, entries=True), Tile(0, 1, entries=True), Tile(0, 2, 88, True)]

    def test_growing_adds_only_completed_full_tiles_and_the_new_partials(self):
        assert tiles.tiles_between(0, 0) == [] and tiles.tiles_between(300, 300) == []
        assert tiles.tiles_between(300, 301) == [Tile(0, 1, 45), Tile(0, 1, 45, True)]
        assert tiles.tiles_between(300, 512) == [Tile(0, 1), Tile(0, 1, entries=True), Tile(1, 0, 2)]

    def test_every_tile_of_a_size_is_written_once_when_grown_step_by_step(self):
        steps = [0, 1, 255, 256, 257, 700, 65536, 65537, 70_000]
        written = [t for a, b in zip(steps, steps[1:]) for t in tiles.tiles_between(a, b) if t.full]
        assert len(written) == len(set(written))
        assert set(written) == {t for t in tiles.tiles_between(0, 70_000) if t.full}

    @pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 65535, 65536, 65537])
    def test_partial_widths_are_floor_of_size_over_256_to_the_level_mod_256(self, size):
        partial = {t.level: t.width for t in tiles.tiles_between(0, size) if not t.full and not t.entries}
        assert partial == {lv: (size // 256 ** lv) % 256 for lv in range(4) if (size // 256 ** lv) % 256}


class TestBundles:
    def test_entries_are_prefixed_with_a_big_endian_uint16_length(self):
        assert tiles.encode_bundle([b"ab", b"", b"x" * 258]) == b"\x00\x02ab\x00\x00\x01\x02" + b"x" * 258
        assert tiles.decode_bundle(b"\x00\x02ab\x00\x00") == [b"ab", b""]

    def test_an_entry_over_65535_bytes_cannot_be_bundled(self):
        assert tiles.decode_bundle(tiles.encode_bundle([b"y" * 65535])) == [b"y" * 65535]
        with pytest.raises(TileError, match="65535"):
            tiles.encode_bundle([b"y" * 65536])

    @pytest.mark.parametrize("data", [b"\x00", b"\x00\x03ab", b"\x00\x01a\x00"])
    def test_a_truncated_bundle_is_refused(self, data):
        with pytest.raises(TileError, match="truncated"):
            tiles.decode_bundle(data)

    def test_a_tile_of_the_wrong_length_is_refused(self):
        with pytest.raises(TileError):
            tiles.hashes_in(Tile(0, 0, 3), b"\x00" * 64)


class TestProofsFromTiles:
    @pytest.mark.parametrize("size", SIZES)
    def test_the_root_from_tiles_is_the_rfc_6962_root(self, size):
        assert tiles.root(size, fetch(size, tiles.root_keys(size))) == root_hash(list(leaves(size)))

    @pytest.mark.parametrize("size", SIZES)
    def test_inclusion_proofs_from_tiles_are_the_rfc_6962_audit_paths(self, size):
        for index in sorted({0, 1, 254, 255, 256, size // 2, size - 2, size - 1} & set(range(size))):
            got = tiles.inclusion_proof(index, size, fetch(size, tiles.inclusion_keys(index, size)))
            assert got == inclusion_proof(index, list(leaves(size))), index

    @pytest.mark.parametrize("second", SIZES)
    def test_consistency_proofs_from_tiles_are_the_rfc_6962_proofs(self, second):
        for first in sorted({1, 7, 255, 256, 257, 65535, second - 1, second} & set(range(1, second + 1))):
            got = tiles.consistency_proof(first, second, fetch(second, tiles.consistency_keys(first, second)))
            assert got == consistency_proof(first, list(leaves(second))), first

    def test_a_proof_needs_a_few_tiles_not_the_log(self):
        assert len(tiles.tiles_for(tiles.inclusion_keys(12_345, 65537) | tiles.root_keys(65537), 65537)) <= 6

    def test_a_hash_outside_the_tree_names_no_tile(self):
        with pytest.raises(TileError):
            tiles.tiles_for({(8, 1)}, 511)


class TestTheStoredLogIsTheTiles:
    @pytest.mark.parametrize("size", [257, 65537])
    def test_stored_hashes_at_levels_8_and_16_are_the_level_1_and_2_tiles(self, size):
        stored, grown = {}, 0
        for step in (100, 156, 1, size):  # batches crossing tile boundaries
            new = list(leaves(size)[grown:min(size, grown + step)])
            older = {k: stored[k] for k in tlog.append_keys(grown, grown + len(new))}
            stored.update(tlog.appended_nodes(grown, new, older))
            stored.update(((0, grown + i), h) for i, h in enumerate(new))
            grown += len(new)
        for tile in (t for t in tiles.tiles_between(0, size) if not t.entries):
            row = b"".join(stored[(8 * tile.level, tile.first + i)] for i in range(tile.width))
            assert row == published(size)[tile.path], tile.path


class TestPartials:
    @pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 65535, 65536, 65537, 70_000])
    def test_the_partials_of_a_size_are_those_tiles_between_0_and_it_lists(self, size):
        assert set(tiles.partials(size)) == {t for t in tiles.tiles_between(0, size) if not t.full}
