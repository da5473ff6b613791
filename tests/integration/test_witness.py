"""Witnesses against the real PostgreSQL ledger: a witness server (uvicorn, in process) cosigns an honest
log, remembers what it cosigned across a restart, and refuses a fork built in another database; a receipt
verifies with `--witnesses 1` on the honest log and fails on the fork (real servers)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import stat
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import uvicorn

from posray.adapters.pg import create_pool
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.witness_http import HttpWitnesses
from posray.domain.cosignature import CosignatureVerifier, count_cosignatures
from posray.domain.keys import terminal_key
from posray.domain.note import Checkpoint, sign_checkpoint
from posray.domain.witness import format_add_checkpoint
from posray.services import proofs
from posray.services.recording import ShardRecorder
from posray.services.witnessing import WitnessConfig, witness_round
from tests.conftest import private_database
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, now_ms
from tests.integration.test_tiles import BATCH_MAX, Shard, env  # noqa: F401 - env is a fixture
from tooling.cli import main as posray
from tooling.witness_cli import load_witness
from tooling.witness_server import WitnessApp

WITNESS_NAME = "witness.test/w1"


class Fork(Shard):
    """Another history of the same shard, in another database: other documents under the same counters."""

    def __init__(self, honest: Shard, dsn: str, prefix: str):
        super().__init__(honest.redis_url, dsn, prefix, honest.keys)
        self.terminal_id, self.shard = honest.terminal_id, honest.shard

    async def _grow(self, count: int) -> None:
        key = terminal_key(self.keys.terminal_master, self.terminal_id, 1)
        subs = [submission_of(make_document(self.terminal_id, c, key, seed=f"fork-{c}"), SHARD_COUNT)
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
            rows = await b.pool.fetch("SELECT seq, record FROM ledger_entries WHERE shard = $1", self.shard)
            self.codes = {r["seq"]: orjson.loads(r["record"])["code"] for r in rows}
        self.size += count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def witness_server(directory: Path):
    """`posray witness serve DIR`'s app under uvicorn in a thread, on a free port; stopped afterwards."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(WitnessApp(load_witness(directory)), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the witness server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def submitted(dsn: str, url: str, witness_vkey: str, shard: int):
    async def main():
        pool = await create_pool(dsn, size_max=2)
        client = HttpWitnesses(5.0)
        try:
            ledger = PgLedger(pool)
            [result] = await witness_round(ledger, client, [WitnessConfig.parse(url, witness_vkey)], [shard])
            return result, await proofs.checkpoint_note(ledger, shard)
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(main())


@pytest.fixture
def honest(redis_url, schema_dsn, key_prefix, keys) -> Shard:
    return Shard(redis_url, schema_dsn, key_prefix, keys)


@pytest.fixture
def witness_dir(tmp_path, honest, capsys) -> tuple[Path, str]:
    directory = tmp_path / "witness"
    assert posray(["witness", "init", str(directory), "--name", WITNESS_NAME]) == 0
    vkey = capsys.readouterr().out.strip().splitlines()[-1]
    assert posray(["witness", "add-log", str(directory), honest.signer.verifier_key(),
                   "--shards", str(honest.shard)]) == 0
    capsys.readouterr()
    return directory, vkey


def verify(shard: Shard, seq: int, tiles: Path, vkey: str, capsys) -> tuple[int, str]:
    code = posray(["verify-receipt", shard.codes[seq], "--tiles", str(tiles), "--shard", str(shard.shard),
                   "--seq", str(seq), "--key", shard.signer.verifier_key(), "--witnesses", "1",
                   "--witness-key", vkey])
    return code, capsys.readouterr().out


class TestWitnesses:
    def test_an_honest_log_is_cosigned_and_its_receipts_verify_with_a_witness(self, env, honest, witness_dir,
                                                                              schema_dsn, tmp_path, capsys):
        directory, vkey = witness_dir
        assert vkey.startswith(f"{WITNESS_NAME}+") and CosignatureVerifier.from_verifier_key(vkey)
        assert stat.S_IMODE(os.stat(directory / "witness.seed").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        assert (directory / "witness.seed").read_text().strip() not in vkey
        honest.grow(300)
        with witness_server(directory) as url:
            result, note = submitted(schema_dsn, url, vkey, honest.shard)
            assert result.cosigned, result.detail
            honest.grow(40)
            result, note = submitted(schema_dsn, url, vkey, honest.shard)
            assert result.cosigned and result.tree_size == 340, result.detail
        good, _ = count_cosignatures(note, [CosignatureVerifier.from_verifier_key(vkey)])
        assert len(good) == 1 and note.startswith(f"tiles.test/log/{honest.shard}\n340\n")
        out = tmp_path / "tlog"
        assert posray(["tiles", "export", str(out), "--shards", str(honest.shard)]) == 0
        capsys.readouterr()
        code, printed = verify(honest, 300, out, vkey, capsys)
        assert code == 0 and "ok   witnesses   1 of 1" in printed, printed

    def test_the_witness_remembers_across_a_restart_and_refuses_a_fork(self, env, honest, witness_dir, schema_dsn,
                                                                       run_id, key_prefix, tmp_path, capsys,
                                                                       monkeypatch):
        directory, vkey = witness_dir
        honest.grow(200)
        with witness_server(directory) as url:
            assert submitted(schema_dsn, url, vkey, honest.shard)[0].cosigned
        assert stat.S_IMODE(os.stat(directory / "state.json").st_mode) == 0o600
        with witness_server(directory) as url, httpx.Client() as http:  # a new process would read the same file
            stale = http.post(f"{url}/add-checkpoint", content=format_add_checkpoint(0, [], asyncio.run(
                _latest_note(schema_dsn, honest.shard))))
            assert (stale.status_code, stale.text) == (409, "200\n")
            assert stale.headers["content-type"] == "text/x.tlog.size"
            with private_database(f"posray_{run_id}_fork") as fork_dsn:
                fork = Fork(honest, fork_dsn, f"{key_prefix}:fork")
                fork.grow(200)
                same_size, _ = submitted(fork_dsn, url, vkey, honest.shard)
                fork.grow(60)
                larger, fork_note = submitted(fork_dsn, url, vkey, honest.shard)
                fork_out = tmp_path / "fork"
                monkeypatch.setenv("POSRAY_PG_DSN", fork_dsn)
                assert posray(["tiles", "export", str(fork_out), "--shards", str(honest.shard)]) == 0
                monkeypatch.setenv("POSRAY_PG_DSN", schema_dsn)
                capsys.readouterr()
                code, printed = verify(fork, 100, fork_out, vkey, capsys)
                honest_note = asyncio.run(_latest_note(schema_dsn, honest.shard, cosigned=True))
                spliced = fork_note + _cosignature_lines(honest_note)  # the honest log's cosignature, moved
                (fork_out / str(honest.shard) / "checkpoint").write_text(spliced)
                spliced_code, spliced_printed = verify(fork, 100, fork_out, vkey, capsys)
            origin_hash = hashlib.sha256(f"tiles.test/log/{honest.shard}".encode()).hexdigest()
            witness = http.get(f"{url}/{origin_hash}/checkpoint")  # the monitoring API
        assert not same_size.cosigned and "422" in same_size.detail, same_size.detail
        assert not larger.cosigned and "422" in larger.detail, larger.detail
        assert code == 1 and "FAIL witnesses   0 of 1" in printed and "ok   inclusion" in printed, printed
        assert spliced_code == 1 and "bad signature" in spliced_printed, spliced_printed
        assert witness.status_code == 200 and witness.text.startswith(f"tiles.test/log/{honest.shard}\n200\n")


async def _latest_note(dsn: str, shard: int, cosigned: bool = False) -> str:
    pool = await create_pool(dsn, size_max=1)
    try:
        ledger = PgLedger(pool)
        if cosigned:
            return await proofs.checkpoint_note(ledger, shard)
        return (await ledger.checkpoint(shard))[2]
    finally:
        await pool.close()


def _cosignature_lines(note: str) -> str:
    return "".join(line + "\n" for line in note.split("\n\n", 1)[1].splitlines() if WITNESS_NAME in line)
