"""The baselines of `posray bench --baselines` against the real Redis and PostgreSQL (no Ray)."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from posray.adapters.keyfile import load_keys
from posray.adapters.pg import create_pool
from tooling.bench import baselines, workload
from tooling.bench.cli import BenchOptions
from posray.settings import Settings
from tests.conftest import private_database, run

DOCUMENTS = 300


@pytest.fixture(scope="module")
def bench_dsn(run_id):
    with private_database(f"posray_{run_id}_baselines") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def series(tmp_path_factory, seed_file, bench_dsn) -> workload.Series:
    """A few hundred signed documents of 50 terminals, registered in the module's database."""
    master = load_keys(seed_file).terminal_master
    signed = workload.series_of(tmp_path_factory.mktemp("bench-cache"), "baselines", 0, 50, DOCUMENTS)
    workload.sign_series(signed, master, 1, say=lambda line: None)

    async def register():
        pool = await create_pool(bench_dsn, size_max=1)
        try:
            await workload.import_terminals(pool, signed)
        finally:
            await pool.close()

    run(register())
    return signed


def scratch_schemas(dsn: str) -> list[str]:
    async def names():
        conn = await asyncpg.connect(dsn)
        try:
            rows = await conn.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'posray_bench_%'")
        finally:
            await conn.close()
        return [r[0] for r in rows]

    return run(names())


def keys_under(redis_url: str, prefix: str) -> list[bytes]:
    async def scan():
        client = aioredis.Redis.from_url(redis_url)
        try:
            return [key async for key in client.scan_iter(match=f"{prefix}*")]
        finally:
            await client.aclose()

    return run(scan())


class TestRawAppends:
    def test_redis_appends_every_document_one_round_trip_per_batch_then_deletes_its_stream(
            self, series, redis_url, key_prefix):
        entries = baselines.load_entries(series, 0, DOCUMENTS)

        block = run(baselines.redis_append_rate(redis_url, entries, 100, prefix=key_prefix))

        assert block["docs_per_s"] > 0
        assert block["documents"] == block["stream_length"] == DOCUMENTS
        assert block["round_trips"] == 3 and block["round_trip_ms"]["p50"] > 0
        assert keys_under(redis_url, key_prefix) == []

    def test_copy_writes_every_row_into_a_scratch_ledger_table_then_drops_it(self, series, bench_dsn, seed_file):
        entries = baselines.load_entries(series, 0, DOCUMENTS)
        rows = baselines.ledger_rows(entries, 8, load_keys(seed_file).code, 128)

        block = run(baselines.copy_rate(bench_dsn, rows, 128))

        assert block["docs_per_s"] > 0
        assert block["rows"] == block["rows_in_table"] == DOCUMENTS
        assert block["round_trips"] == 3
        assert block["synchronous_commit"] in ("on", "off", "local", "remote_write", "remote_apply")
        assert scratch_schemas(bench_dsn) == []


class TestLedgerCapacity:
    def test_posray_records_every_captured_document_once_in_chained_batches_then_cleans_up(
            self, series, bench_dsn, redis_url, seed_file):
        from tooling.bench.ledger_capacity import ledger_capacity

        entries = baselines.load_entries(series, 0, DOCUMENTS)
        databases_before = run(_databases(bench_dsn))

        block = run(ledger_capacity(redis_url, bench_dsn, entries, 3, 64, load_keys(seed_file).code))

        assert block["documents"] == block["recorded"] == DOCUMENTS and block["docs_per_s"] > 0
        assert block["batches"] >= DOCUMENTS // (64 + 100)  # batches of <= 64 docs + one capture call
        assert keys_under(redis_url, "posray-bench-ledger:") == []
        assert run(_databases(bench_dsn)) == databases_before


async def _databases(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return sorted(r[0] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'posray_bench_ledger_%'"))
    finally:
        await conn.close()


class TestNaivePeer:
    @pytest.mark.parametrize("batch_size", [1, 10])
    def test_stores_each_accepted_document_once_and_drops_its_table(self, series, bench_dsn, seed_file,
                                                                    redis_url, batch_size):
        settings = Settings(pg_dsn=bench_dsn, redis_url=redis_url, operator_seed_file=seed_file)
        options = BenchOptions(batch_size=batch_size, connections=4, duration_s=1.5, timeout_s=20)

        block = run(baselines.naive_peer_rate(settings, options, series, 0, say=lambda line: None))

        assert block["docs_per_s"] > 0, block
        assert block["errors_total"] == 0, block["errors"]
        assert block["rows_in_table"] == block["documents_accepted"] > 0
        assert block["latency_ms"]["p50"] > 0
        assert block["transaction"] == "per_document"
        assert scratch_schemas(bench_dsn) == []
