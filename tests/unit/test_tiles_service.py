"""Tiles of a shard's log read from the ledger, exported as files, and verified from the files alone."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from posray.adapters.memory_ledger import MemoryLedger, MemoryLedgerState
from posray.adapters.memory_tiles import MemoryTiles
from posray.domain import tlog
from posray.domain.chain import advance
from posray.domain.errors import NotFound, SetupError
from posray.domain.merkle import verify_consistency
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from posray.domain.receipt_proof import verify_receipt_bundle
from posray.domain.tiles import Tile
from posray.services import tile_client, tiles
from tests.contract.support import append, subs

SHARD = 5
SIGNER = NoteSigner("tiles.example/log", b"k" * 32)
VERIFIER = NoteVerifier.from_verifier_key(SIGNER.verifier_key())
ORIGIN = f"tiles.example/log/{SHARD}"
DOCS = subs("T-tiles", range(1, 601))


class Log:
    """A shard's ledger in memory, grown batch by batch, each size signed."""

    def __init__(self):
        self.ledger = MemoryLedger(MemoryLedgerState())
        self.size = 0

    async def grow(self, to: int, batch: int = 97) -> None:
        while self.size < to:
            head = await self.ledger.head(SHARD)
            take = min(batch, to - self.size)
            header, _, _ = await append(self.ledger, head, DOCS[self.size:self.size + take], 1_700_000_000_000)
            self.size += take
        root = tlog.range_hash(0, to, await self.ledger.stored_hashes(SHARD, tlog.range_keys(0, to)))
        await self.ledger.add_checkpoint(SHARD, to, root, sign_checkpoint(SIGNER, Checkpoint(ORIGIN, to, root)), 0)


def grown(*sizes: int) -> Log:
    log = Log()
    for size in sizes:
        asyncio.run(log.grow(size))
    return log


def verified(sink, seq: int) -> bool:
    bundle = tile_client.receipt_bundle(sink, VERIFIER, SHARD, seq)
    code = orjson.loads(bundle["record"])["code"]
    return all(c.ok for c in verify_receipt_bundle(bundle, VERIFIER, code))


class TestReading:
    def test_tiles_are_the_stored_rows_and_missing_ones_are_not_found(self):
        log = grown(300)
        read = lambda tile: asyncio.run(tiles.read_tile(log.ledger, SHARD, tile))  # noqa: E731
        assert len(read(Tile(0, 0))) == 256 * 32 and len(read(Tile(0, 1, 44))) == 44 * 32
        assert read(Tile(0, 1, 10)) == read(Tile(0, 1, 44))[:320]
        assert len(read(Tile(1, 0, 1))) == 32
        for missing in (Tile(0, 1), Tile(0, 1, 45), Tile(1, 0, 2), Tile(0, 2, 1, True)):
            with pytest.raises(NotFound):
                read(missing)

    def test_full_tiles_are_cached_within_a_bound_and_partial_ones_are_not(self):
        log, cache = grown(600), tiles.TileCache(bytes_max=3 * 8192)
        for tile in (Tile(0, 0), Tile(0, 1), Tile(0, 2, 88)):
            asyncio.run(tiles.read_tile(log.ledger, SHARD, tile, cache))
        assert cache.get(SHARD, Tile(0, 0)) is not None and cache.get(SHARD, Tile(0, 2, 88)) is None
        log.ledger = None  # a cached full tile needs no ledger
        assert len(asyncio.run(tiles.read_tile(log.ledger, SHARD, Tile(0, 1), cache))) == 8192
        for index in range(2, 5):
            cache.put(SHARD, Tile(1, index), b"h" * 8192)
        assert cache.get(SHARD, Tile(0, 0)) is None  # least recently used, dropped


class TestExport:
    def test_an_export_verifies_every_receipt_from_the_files_alone(self):
        log, sink = grown(300), MemoryTiles()
        done = asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        assert (done.from_size, done.to_size) == (0, 300)
        assert sorted(sink.files) == sorted(f"{SHARD}/{p}" for p in (
            "checkpoint", "tile/0/000", "tile/entries/000", "tile/0/001.p/44", "tile/entries/001.p/44",
            "tile/1/000.p/1"))
        assert sink.puts[-1] == f"{SHARD}/checkpoint"  # last: a reader never sees it before its tiles
        assert all(verified(sink, seq) for seq in (1, 2, 200, 256, 257, 299, 300))

    def test_growing_writes_each_full_tile_once_and_proves_consistency(self):
        log, sink = grown(300), MemoryTiles()
        asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        old = tile_client.latest_checkpoint(sink, VERIFIER, SHARD)[0]
        asyncio.run(log.grow(600))
        again = asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        assert (again.from_size, again.to_size) == (300, 600)
        assert asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN)).written == 0
        assert sink.puts.count(f"{SHARD}/tile/0/000") == 1 and sink.puts.count(f"{SHARD}/tile/0/001") == 1
        new = tile_client.latest_checkpoint(sink, VERIFIER, SHARD)[0]
        proof = tile_client.consistency_proof(sink, SHARD, old.tree_size, new.tree_size)
        assert verify_consistency(300, 600, proof, old.root_hash, new.root_hash)
        assert not verify_consistency(300, 600, proof, b"\x00" * 32, new.root_hash)
        assert all(verified(sink, seq) for seq in (1, 300, 301, 512, 513, 600))

    def test_a_reader_falls_back_to_the_full_tile_when_a_partial_one_is_gone(self):
        log, sink = grown(300), MemoryTiles()
        asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        checkpoint_300 = sink.files[f"{SHARD}/checkpoint"]
        asyncio.run(log.grow(600))
        asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        del sink.files[f"{SHARD}/tile/0/001.p/44"], sink.files[f"{SHARD}/tile/entries/001.p/44"]
        sink.files[f"{SHARD}/checkpoint"] = checkpoint_300
        assert verified(sink, 299)

    def test_an_edited_tile_or_record_fails_verification(self):
        log, sink = grown(300), MemoryTiles()
        asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        hashes = bytearray(sink.files[f"{SHARD}/tile/0/000"])
        hashes[33] ^= 1  # leaf 1's hash: a sibling on leaf 0's path
        sink.files[f"{SHARD}/tile/0/000"] = bytes(hashes)
        assert not verified(sink, 1) and not verified(sink, 5) and verified(sink, 257)  # 257: uses tile/1 only
        edited = sink.files[f"{SHARD}/tile/entries/001.p/44"].replace(b'"accepted_at":"2023', b'"accepted_at":"2024')
        assert edited != sink.files[f"{SHARD}/tile/entries/001.p/44"]
        sink.files[f"{SHARD}/tile/entries/001.p/44"] = edited
        assert not verified(sink, 257)

    def test_a_directory_holding_another_log_is_refused(self):
        log, sink = grown(10), MemoryTiles()
        sink.put(f"{SHARD}/checkpoint", b"other.example/log/5\n3\nAAAA\n\n")
        with pytest.raises(SetupError, match="another log"):
            asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))

    def test_nothing_signed_exports_nothing(self):
        sink = MemoryTiles()
        done = asyncio.run(tiles.export(MemoryLedger(MemoryLedgerState()), sink, SHARD, ORIGIN))
        assert done.written == 0 and sink.files == {}
        with pytest.raises(NotFound):
            tile_client.receipt_bundle(sink, VERIFIER, SHARD, 1)


class TestRoutes:
    """GET /tlog/{shard}/... through the ASGI app, over the in-memory ledger."""

    @staticmethod
    def get(log: Log, path: str) -> tuple[int, dict, bytes]:
        from deployments.http_api import PosrayApi
        from posray.settings import Settings

        class Backend:
            settings, ledger, tiles, archive = Settings(), log.ledger, tiles.TileCache(), None

            class limiter:  # noqa: N801 - never limits
                @staticmethod
                def acquire(client):
                    return 0

        sent = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            sent.append(message)

        async def backend():
            return Backend()

        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b"",
                 "client": ("192.0.2.9", 1)}
        asyncio.run(PosrayApi(backend)(scope, receive, send))
        return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]

    def test_the_three_paths_serve_the_same_bytes_as_the_export(self):
        log, sink = grown(300), MemoryTiles()
        asyncio.run(tiles.export(log.ledger, sink, SHARD, ORIGIN))
        for name, data in sink.files.items():
            status, headers, body = self.get(log, f"/tlog/{name}")
            assert (status, body) == (200, data), name
            immutable = headers[b"cache-control"] == b"public, max-age=31536000, immutable"
            assert immutable == (not name.endswith("checkpoint")), name
        status, headers, _ = self.get(log, f"/tlog/{SHARD}/checkpoint")
        assert headers[b"cache-control"] == b"public, max-age=1"
        assert headers[b"content-type"] == b"text/plain; charset=utf-8"
        assert self.get(log, f"/tlog/{SHARD}/tile/0/000")[1][b"content-type"] == b"application/octet-stream"

    @pytest.mark.parametrize("path", [
        f"/tlog/{SHARD}/tile/0/001", f"/tlog/{SHARD}/tile/0/x000/000", f"/tlog/{SHARD}/tile/0/000.p/256",
        f"/tlog/{SHARD}/tile/2/000", "/tlog/99/checkpoint", "/tlog/x/tile/0/000", f"/tlog/{SHARD}/tile/",
        f"/tlog/{SHARD}/tile/entries/001.p/45"])
    def test_what_the_log_does_not_hold_is_a_404(self, path):
        assert self.get(grown(300), path)[0] == 404
