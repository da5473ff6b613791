"""The archive stays verifiable (issue 14, item 5): a day detached from a real PostgreSQL ledger still
resolves by code and by printed fields, its proofs verify (from the API and from the tiles), the
audit checks it against the tiles archive, and a changed archived record is caught by both."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from jobs.audit import run_audit
from jobs.snapshot import export_snapshot
from posray.adapters.parquet_snapshot import SnapshotIndex
from posray.adapters.tile_files import TileDirectory
from posray.domain.errors import AuditDivergence, NotFound
from posray.domain.note import NoteSigner, NoteVerifier
from posray.domain.receipt_proof import verify_receipt_bundle
from posray.domain.tiles import Tile
from posray.services import lookup, tiles
from posray.settings import Settings
from tests.conftest import private_database
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, record_days
from tests.integration.test_partitions import utc_today
from tooling.cli import main as posray
from tooling.ledger_cli import _detach

PER_DAY = 40  # two complete 16-leaf blocks and a kept one on the detached day
OLD_SEQ = 5   # a receipt of the detached day, in a block the ledger no longer holds leaves of


class _Backend:
    """The HTTP edge's Backend, over the test's real clients."""

    def __init__(self, b, keys, settings, archive, index):
        self.settings, self.keys, self.ledger, self.capture, self.fences = settings, keys, b.ledger, b.capture, \
            b.fence_ledger
        self.archive, self.receipt_index, self.tiles = archive, index, tiles.TileCache()

    class limiter:  # noqa: N801 - never limits
        @staticmethod
        def acquire(client):
            return 0


async def _get(backend, path: str, query: str = "") -> tuple[int, bytes]:
    from deployments.http_api import PosrayApi

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    async def built():
        return backend

    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": query.encode(),
             "client": ("192.0.2.9", 1)}
    await PosrayApi(built)(scope, receive, send)
    return sent[0]["status"], sent[1]["body"]


def _audit(settings: Settings, shard: int, capsys) -> tuple[int, str]:
    args = SimpleNamespace(shards=[shard], json=False, ray=False, address=None, key=None, page_rows=16,
                           reconcile=False, tiles=None)
    status = run_audit(settings, args)
    return status, capsys.readouterr().out


def _verify(argv: list[str], capsys) -> tuple[int, str]:
    status = posray(["verify-receipt", *argv])
    return status, capsys.readouterr().out


def test_a_detached_day_resolves_and_verifies_from_the_tiles_archive(
    redis_url, run_id, key_prefix, keys, seed_file, monkeypatch, tmp_path, capsys
):
    terminal_id, shard = fresh_terminal("ARCHIVE")
    today = utc_today()
    old_day, before = today - timedelta(days=6), today - timedelta(days=4)
    snapshot, archive_dir = tmp_path / "snapshot", tmp_path / "tiles"
    with private_database(f"posray_t_{run_id}_archive") as dsn:
        settings = Settings(pg_dsn=dsn, operator_seed_file=seed_file, shard_count=SHARD_COUNT,
                            tiles_archive=str(archive_dir), snapshot_dir=snapshot)
        verifier_key = NoteSigner(settings.log_key_name, keys.signing_seed).verifier_key()
        archive = TileDirectory(archive_dir)

        async def populate():
            async with backends(redis_url, dsn, key_prefix) as b:
                await record_days(b, keys, settings, terminal_id, shard, [-6, 0], PER_DAY, monkeypatch)
                exported = await tiles.export(b.ledger, archive, shard, settings.log_origin(shard))
                rows = await b.pool.fetch("SELECT seq, record FROM ledger_entries WHERE shard = $1", shard)
                return exported, {r["seq"]: orjson.loads(r["record"]) for r in rows}

        exported, records = asyncio.run(populate())
        export_snapshot(dsn, snapshot)
        old = records[OLD_SEQ]
        code, document = old["code"], old["document"]
        printed_day = date.fromisoformat(document["issued_at"][:10])

        without_tiles = asyncio.run(_detach(dsn, before, snapshot, None, False))
        refusal = capsys.readouterr().err
        detached = asyncio.run(_detach(dsn, before, snapshot, str(archive_dir), False))
        detach_out = capsys.readouterr().out

        async def look_up(prefix: str):
            # A fresh key prefix: the capture store knows nothing of these receipts any more.
            async with backends(redis_url, dsn, prefix) as b:
                gone = await b.pool.fetchval("SELECT count(*) FROM ledger_entries WHERE shard = $1 AND seq <= $2",
                                             shard, PER_DAY)
                receipt = await lookup.by_code(b.ledger, b.capture, b.fence_ledger, keys.code, code, archive)
                bundle = await lookup.proof_bundle(b.ledger, b.fence_ledger, keys.code, code, archive=archive)
                index = SnapshotIndex(snapshot)
                by_fields = await lookup.by_fields(b.ledger, b.capture, keys.code, SHARD_COUNT, terminal_id,
                                                   document["counter"], printed_day, document["total_minor"],
                                                   archive, index)
                with pytest.raises(NotFound):  # without the snapshot's index nothing finds it by its fields
                    await lookup.by_fields(b.ledger, b.capture, keys.code, SHARD_COUNT, terminal_id,
                                           document["counter"], printed_day, document["total_minor"], archive)
                backend = _Backend(b, keys, settings, archive, index)
                api = {
                    "proof": await _get(backend, f"/v1/receipts/{code}/proof"),
                    "fields": await _get(backend, "/v1/receipts",
                                         f"terminal_id={terminal_id}&counter={document['counter']}"
                                         f"&date={printed_day}&total_minor={document['total_minor']}"),
                    "page": await _get(backend, f"/r/{code}"),
                    "bundle": await _get(backend, f"/tlog/{shard}/{Tile(0, 0, 2 * PER_DAY, True).path}"),
                }
                return gone, receipt, bundle, by_fields, api

        gone, receipt, bundle, by_fields, api = asyncio.run(look_up(key_prefix + "-after"))
        proof_file = tmp_path / "proof.json"
        proof_file.write_text(json.dumps(bundle))
        from_api = _verify([code, "--proof-file", str(proof_file), "--key", verifier_key], capsys)
        from_tiles = _verify([code, "--tiles", str(archive_dir), "--shard", str(shard), "--seq", str(OLD_SEQ),
                              "--key", verifier_key], capsys)
        audited = _audit(settings, shard, capsys)
        archived_bundle = (archive_dir / str(shard) / Tile(0, 0, 2 * PER_DAY, True).path).read_bytes()

        _corrupt(archive_dir, shard, OLD_SEQ)
        audited_corrupt = _audit(settings, shard, capsys)
        from_tiles_corrupt = _verify([code, "--tiles", str(archive_dir), "--shard", str(shard), "--seq",
                                      str(OLD_SEQ), "--key", verifier_key], capsys)

        async def look_up_corrupt():
            async with backends(redis_url, dsn, key_prefix + "-corrupt") as b:
                with pytest.raises(AuditDivergence, match="tiles archive"):
                    await lookup.by_code(b.ledger, b.capture, b.fence_ledger, keys.code, code, archive)
                with pytest.raises(AuditDivergence, match="tiles archive"):
                    await lookup.proof_bundle(b.ledger, b.fence_ledger, keys.code, code, archive=archive)

        asyncio.run(look_up_corrupt())

    assert exported.to_size == 2 * PER_DAY
    assert without_tiles == 1 and "no tiles archive configured" in refusal
    assert "the tiles archive holds shard" in refusal
    assert detached == 0 and "detached ledger_entries_" in detach_out
    assert gone == 0  # the day's rows left ledger_entries

    verifier = NoteVerifier.from_verifier_key(verifier_key)
    assert receipt["status"] == "recorded" and receipt["seq"] == OLD_SEQ and receipt["code"] == code
    assert receipt["ledger"]["record"] == orjson.dumps(old, option=orjson.OPT_SORT_KEYS).decode()
    assert receipt["log"]["tree_size"] == 2 * PER_DAY
    assert all(c.ok for c in verify_receipt_bundle(bundle, verifier, code)), "proof of an archived receipt"
    assert by_fields["code"] == code and by_fields["status"] == "recorded"

    status, body = api["proof"]
    assert status == 200 and all(c.ok for c in verify_receipt_bundle(orjson.loads(body), verifier, code))
    assert api["fields"][0] == 200 and orjson.loads(api["fields"][1])["code"] == code
    assert api["page"][0] == 200
    assert api["bundle"] == (200, archived_bundle)  # /tlog/ (the receipt page's source) still serves it

    assert from_api[0] == 0 and "receipt VERIFIED" in from_api[1]
    assert from_tiles[0] == 0 and "receipt VERIFIED" in from_tiles[1]
    assert audited[0] == 0, audited[1]
    assert f"{PER_DAY} documents of detached days {old_day} verified from the tiles archive" in audited[1]

    assert audited_corrupt[0] == 1
    assert f"is in detached day {old_day}, read from the tiles archive" in audited_corrupt[1]
    assert from_tiles_corrupt[0] == 1 and "receipt VERIFIED" not in from_tiles_corrupt[1]


def _corrupt(archive_dir: Path, shard: int, seq: int) -> None:
    """Change one digit of the total in the archived record of `seq` (same length, the bundle stays well formed)."""
    bundle = next((archive_dir / str(shard) / "tile" / "entries").glob("000*"))
    if bundle.is_dir():
        bundle = next(bundle.iterdir())
    data, at = bytearray(bundle.read_bytes()), 0
    for _ in range(seq - 1):
        at += 2 + int.from_bytes(data[at:at + 2], "big")
    length = int.from_bytes(data[at:at + 2], "big")
    record = bytes(data[at + 2:at + 2 + length])
    where = record.index(b'"total_minor":') + len(b'"total_minor":')
    digit = record[where:where + 1]
    data[at + 2 + where] = ord("1" if digit != b"1" else "2")
    bundle.write_bytes(bytes(data))
