"""`posray bench-ledger-size` at toy sizes: it fills through the schema, measures, writes its table
and drops its database."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.conftest import PG_ADMIN_DSN
from tooling.bench.ledger_size import FILL_SHARDS, SizeOptions, markdown, run_size_bench


def test_the_bench_fills_measures_each_size_and_cleans_up(redis_url, tmp_path):
    options = SizeOptions(sizes=(48_000,), rows_per_day=16_000, append_documents=400, samples=20,
                          out=tmp_path / "size.md")

    async def databases():
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            return {r[0] for r in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'posray_bench_size_%'")}
        finally:
            await conn.close()

    before = asyncio.run(databases())
    report = asyncio.run(run_size_bench(redis_url, PG_ADMIN_DSN, options, say=lambda _: None))
    rows = report["rows"]
    assert [r["size"] for r in rows] == [FILL_SHARDS * 1000, 48_000]
    assert rows[-1]["rows"] == 48_000 + 2 * 400 and rows[-1]["partitions"] >= 3 + 9
    assert all(r["append_docs_per_s"] > 0 and r["code_p99_ms"] > 0 and r["proof_p99_ms"] > 0 for r in rows)
    table = markdown(report)
    assert table.count("\n| ") == 2 and "load average" in table  # one line per size
    assert asyncio.run(databases()) == before
