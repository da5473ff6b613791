"""`posray ledger detach --before DATE` on a real ledger: refused until the Parquet snapshot and the
tiles archive hold the days, then the days leave ledger_entries (detached, recorded) while the rest
still answers."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import orjson
import pytest

from jobs.snapshot import export_snapshot
from posray.adapters.tile_files import TileDirectory
from posray.services import tiles
from posray.services.lookup import by_code, proof_bundle
from posray.settings import Settings
from tests.conftest import private_database
from tests.integration.support import backends, fresh_terminal, record_days
from tests.integration.test_partitions import partition, utc_today
from tooling.ledger_cli import _detach


def test_old_days_are_detached_only_once_the_snapshot_holds_them(
    redis_url, run_id, key_prefix, keys, seed_file, monkeypatch, tmp_path, capsys
):
    terminal_id, shard = fresh_terminal("RETAIN")
    today = utc_today()
    snapshot, archive = tmp_path / "snapshot", tmp_path / "tiles"
    with private_database(f"posray_t_{run_id}_retain") as dsn:
        settings = Settings(pg_dsn=dsn, operator_seed_file=seed_file)

        async def populate():
            async with backends(redis_url, dsn, key_prefix) as b:
                await record_days(b, keys, settings, terminal_id, shard, [-6, -5, 0], 10, monkeypatch)

        asyncio.run(populate())
        before = today - timedelta(days=4)

        refused = asyncio.run(_detach(dsn, before, snapshot, str(archive), False))
        first = capsys.readouterr().err.splitlines()
        too_recent = asyncio.run(_detach(dsn, today, snapshot, str(archive), True))
        second = capsys.readouterr().err.splitlines()

        export_snapshot(dsn, snapshot)
        no_tiles = asyncio.run(_detach(dsn, before, snapshot, str(archive), False))
        third = capsys.readouterr().err.splitlines()

        async def export_tiles():
            async with backends(redis_url, dsn, key_prefix) as b:
                await tiles.export(b.ledger, TileDirectory(archive), shard, settings.log_origin(shard))

        asyncio.run(export_tiles())
        done = asyncio.run(_detach(dsn, before, snapshot, str(archive), False))
        out = capsys.readouterr().out

        async def after():
            async with backends(redis_url, dsn, key_prefix) as b:
                parts = {r[0] for r in await b.pool.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'ledger_entries'::regclass")}
                kept = await b.pool.fetchval(f"SELECT count(*) FROM {partition(today - timedelta(days=6))}")
                recorded = await b.pool.fetch("SELECT partition, day, rows FROM ledger_detached ORDER BY day")
                entries = await b.pool.fetch("SELECT seq, record FROM ledger_entries WHERE shard = $1 ORDER BY seq", shard)
                code = orjson.loads(entries[-1]["record"])["code"]
                receipt = await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, code)
                bundle = await proof_bundle(b.ledger, b.fence_ledger, keys.code, code)
                with pytest.raises(asyncpg.RaiseError, match="was detached"):
                    await b.pool.execute("SELECT posray_ledger_partitions($1, $1)", today - timedelta(days=6))
                return parts, kept, recorded, [r["seq"] for r in entries], receipt, bundle

        parts, kept, recorded, seqs, receipt, bundle = asyncio.run(after())

    assert refused == 1
    assert first[0] == (f"posray ledger detach: refused, {partition(today - timedelta(days=6))}: the Parquet "
                        f"snapshot holds shard {shard} up to seq 0 but {today - timedelta(days=6)} reaches seq 10")
    assert first[-1].endswith("nothing detached (2 of 2 days must stay)")
    assert too_recent == 1 and any("too recent" in line for line in second)
    assert no_tiles == 1 and third[0] == (f"posray ledger detach: refused, {partition(today - timedelta(days=6))}: the "
                                          f"tiles archive holds shard {shard} up to seq 0 but "
                                          f"{today - timedelta(days=6)} reaches seq 10")
    assert done == 0 and f"detached {partition(today - timedelta(days=6))}" in out
    assert partition(today - timedelta(days=6)) not in parts and partition(today - timedelta(days=5)) not in parts
    assert partition(today) in parts
    assert kept == 10  # detached, not deleted: the operator dumps it, then drops it
    assert [(r["partition"], r["rows"]) for r in recorded][:2] == [
        (partition(today - timedelta(days=6)), 10), (partition(today - timedelta(days=5)), 10)]
    assert seqs == list(range(21, 31))
    assert receipt["status"] == "recorded" and bundle["leaf_index"] == 29
