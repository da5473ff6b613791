"""The ledger tables refuse UPDATE, DELETE and TRUNCATE, whoever asks (real PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from posray.domain.keys import terminal_key
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms

STATEMENTS = {
    "ledger_entries": [
        "UPDATE ledger_entries SET total_minor = total_minor + 1 WHERE shard = $1",
        "DELETE FROM ledger_entries WHERE shard = $1",
        "TRUNCATE ledger_entries",
    ],
    "ledger_batches": [
        "UPDATE ledger_batches SET prev_hash = merkle_root WHERE shard = $1",
        "DELETE FROM ledger_batches WHERE shard = $1",
        "TRUNCATE ledger_batches",
    ],
}
CASES = [(table, sql) for table, statements in STATEMENTS.items() for sql in statements]


@pytest.mark.parametrize(("table", "sql"), CASES, ids=[s.split()[0] + "-" + t for t, s in CASES])
def test_the_ledger_refuses_changes(redis_url, schema_dsn, key_prefix, keys, table, sql):
    terminal_id, shard = fresh_terminal()
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in range(1, 6)]

    async def main():
        async with backends(redis_url, schema_dsn, key_prefix) as b:
            await b.append(shard, now_ms(), subs)
            await b.record_all(shard, keys.code)
            snapshot = f"SELECT * FROM {table} ORDER BY shard, {'seq' if 'entries' in table else 'batch_no'}"
            before = await b.pool.fetch(snapshot)
            async with b.pool.acquire() as conn:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    if "$1" in sql:
                        await conn.execute(sql, shard)
                    else:
                        await conn.execute(sql)
            mine = await b.pool.fetchval(f"SELECT count(*) FROM {table} WHERE shard = $1", shard)
            return before, await b.pool.fetch(snapshot), mine

    before, after, mine = asyncio.run(main())
    assert mine == (5 if table == "ledger_entries" else 1)
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
