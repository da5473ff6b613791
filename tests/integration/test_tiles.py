"""C2SP tiles exported from the PostgreSQL ledger and served by a plain static file server verify receipts,
inclusion and consistency without posray or PostgreSQL (real servers)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import orjson
import pytest

from posray.adapters.tile_http import HttpTiles
from posray.domain.keys import terminal_key
from posray.domain.merkle import verify_consistency
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from posray.services import tile_client
from posray.services.recording import ShardRecorder
from posray.settings import Settings
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms
from tests.unit.test_verification_doc import doc_tiles_verifier
from tooling.cli import main as posray

ROOT = Path(__file__).resolve().parents[2]
BATCH_MAX = 100


@pytest.fixture
def env(schema_dsn, seed_file, tmp_path, monkeypatch) -> dict:
    values = {"POSRAY_PG_DSN": schema_dsn, "POSRAY_SHARD_COUNT": str(SHARD_COUNT),
              "POSRAY_DATA_DIR": str(tmp_path / "data"), "POSRAY_OPERATOR_SEED_FILE": str(seed_file),
              "POSRAY_LOG_NAME": "tiles.test/log"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


class Shard:
    """One shard of the real ledger, grown through capture and recording, each size signed."""

    def __init__(self, redis_url, dsn, prefix, keys):
        self.redis_url, self.dsn, self.prefix, self.keys = redis_url, dsn, prefix, keys
        self.terminal_id, self.shard = fresh_terminal("TILES")
        self.signer = NoteSigner("tiles.test/log", keys.signing_seed)
        self.size = 0

    def grow(self, count: int) -> None:
        asyncio.run(self._grow(count))

    async def _grow(self, count: int) -> None:
        key = terminal_key(self.keys.terminal_master, self.terminal_id, 1)
        subs = [submission_of(make_document(self.terminal_id, c, key), SHARD_COUNT)
                for c in range(self.size + 1, self.size + count + 1)]
        origin = f"tiles.test/log/{self.shard}"
        async with backends(self.redis_url, self.dsn, self.prefix) as b:
            for i in range(0, count, BATCH_MAX):
                await b.append(self.shard, now_ms(), subs[i:i + BATCH_MAX])
            recorder = ShardRecorder(
                self.shard, b.stream, b.ledger, self.keys.code, BATCH_MAX, wait_ms=5, checkpoint_interval_s=0,
                sign=lambda size, root, ext: sign_checkpoint(self.signer, Checkpoint(origin, size, root, ext)))
            for _ in range(100):
                if not await b.stream.backlog(self.shard):
                    break
                await recorder.step()
            self.codes = {r["seq"]: orjson.loads(r["record"])["code"] for r in await b.pool.fetch(
                "SELECT seq, record FROM ledger_entries WHERE shard = $1", self.shard)}
        self.size += count


@contextlib.contextmanager
def static_server(directory: Path):
    """Python's http.server over `directory`: a plain static file server, nothing of posray."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def shard(redis_url, schema_dsn, key_prefix, keys) -> Shard:
    return Shard(redis_url, schema_dsn, key_prefix, keys)


class TestExportServedStatically:
    def test_receipts_inclusion_and_consistency_verify_from_a_static_server(self, env, shard, tmp_path, capsys):
        shard.grow(300)
        out = tmp_path / "tlog"
        assert posray(["tiles", "export", str(out), "--shards", str(shard.shard)]) == 0
        assert f"shard {shard.shard}: size 0 -> 300" in capsys.readouterr().out
        verifier = NoteVerifier.from_verifier_key(shard.signer.verifier_key())
        with static_server(out) as base, httpx.Client() as http:
            source = HttpTiles(base, http)
            old, _ = tile_client.latest_checkpoint(source, verifier, shard.shard)
            for seq in (1, 256, 257, 300):
                args = ["verify-receipt", shard.codes[seq], "--tiles", base, "--shard", str(shard.shard),
                        "--seq", str(seq), "--key", shard.signer.verifier_key()]
                assert posray(args) == 0, capsys.readouterr().out
                assert "receipt VERIFIED" in capsys.readouterr().out
            wrong_seq = ["verify-receipt", shard.codes[5], "--tiles", base, "--shard", str(shard.shard),
                         "--seq", "6", "--key", shard.signer.verifier_key()]
            assert posray(wrong_seq) == 1 and "FAIL code" in capsys.readouterr().out

            shard.grow(300)
            assert posray(["tiles", "export", str(out), "--shards", str(shard.shard)]) == 0
            new, _ = tile_client.latest_checkpoint(source, verifier, shard.shard)
            proof = tile_client.consistency_proof(source, shard.shard, old.tree_size, new.tree_size)
            assert (old.tree_size, new.tree_size) == (300, 600)
            assert verify_consistency(300, 600, proof, old.root_hash, new.root_hash)
            assert posray(["verify-receipt", shard.codes[555], "--tiles", str(out), "--shard", str(shard.shard),
                           "--seq", "555", "--key", shard.signer.verifier_key()]) == 0
            independent = doc_tiles_verifier()  # docs/verification.md's own verifier, over plain HTTP
            fetch = lambda path: urllib.request.urlopen(f"{base}/{path}").read()  # noqa: E731
            assert all(independent(fetch, shard.shard, seq, shard.codes[seq], shard.signer.verifier_key())
                       for seq in (1, 299, 512, 600))
        files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        assert files == sorted(f"{shard.shard}/{p}" for p in (
            "checkpoint", "tile/0/000", "tile/0/001", "tile/0/001.p/44", "tile/0/002.p/88", "tile/1/000.p/1",
            "tile/1/000.p/2", "tile/entries/000", "tile/entries/001", "tile/entries/001.p/44",
            "tile/entries/002.p/88"))

    def test_follow_exports_as_the_ledger_grows(self, env, shard, tmp_path):
        shard.grow(100)
        out = tmp_path / "tlog"
        follower = subprocess.Popen(
            [sys.executable, "-m", "tooling.cli", "tiles", "export", str(out), "--shards", str(shard.shard),
             "--follow", "--interval-s", "0.2"], cwd=ROOT, env={**os.environ, **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert _exported_size(out / str(shard.shard) / "checkpoint", 100)
            shard.grow(200)
            assert _exported_size(out / str(shard.shard) / "checkpoint", 300)
        finally:
            follower.terminate()
            output = follower.communicate(timeout=30)[0]
        assert "size 0 -> 100" in output and "size 100 -> 300" in output
        assert (out / str(shard.shard) / "tile/0/000").stat().st_size == 8192


def _exported_size(path: Path, size: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().split("\n")[1] == str(size):
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def posray_tiles_server(dsn: str):
    """posray's ASGI app (deployments/http_api.py) under uvicorn, its backend reading the real ledger:
    only what the /tlog/ routes use (settings, ledger, tile cache, rate limiter)."""
    import socket

    import uvicorn

    from deployments.http_api import PosrayApi
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_ledger import PgLedger
    from posray.services.ratelimit import RateLimiter
    from posray.services.tiles import TileCache

    class Backend:
        settings = Settings(shard_count=SHARD_COUNT, pg_dsn=dsn)
        limiter = RateLimiter(10_000, 10_000, 100)
        tiles = TileCache()
        archive = None

    built: list = []

    async def backend():
        if not built:
            Backend.ledger = PgLedger(await create_pool(dsn, size_max=2))
            built.append(Backend())
        return built[0]

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(PosrayApi(backend), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class TestServedByPosray:
    def test_the_tlog_routes_serve_the_exported_bytes_and_receipts_verify_from_them(self, env, shard, tmp_path,
                                                                                    capsys):
        shard.grow(300)
        out = tmp_path / "tlog"
        assert posray(["tiles", "export", str(out), "--shards", str(shard.shard)]) == 0
        with posray_tiles_server(shard.dsn) as base, httpx.Client(base_url=base) as http:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                r = http.get(f"/tlog/{path.relative_to(out)}")
                assert (r.status_code, r.content) == (200, path.read_bytes()), path
                assert ("immutable" in r.headers["cache-control"]) == (path.name != "checkpoint")
            assert http.get(f"/tlog/{shard.shard}/tile/0/001").status_code == 404
            assert http.get(f"/tlog/{shard.shard}/tile/0/x000/000").status_code == 404
            for seq in (1, 257, 300):
                assert posray(["verify-receipt", shard.codes[seq], "--tiles", f"{base}/tlog", "--shard",
                               str(shard.shard), "--seq", str(seq), "--key", shard.signer.verifier_key()]) == 0
                assert "receipt VERIFIED" in capsys.readouterr().out
