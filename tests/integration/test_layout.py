"""The shard count is recorded with the ledger and can never change (real PostgreSQL)."""

from __future__ import annotations

import asyncpg
import pytest

from deployments.api.errors import status_of
from posray.adapters.pg import check_layout, create_pool
from posray.domain.errors import Unavailable
from tests.conftest import private_database, run


@pytest.fixture
def fresh_dsn(run_id):
    with private_database(f"posray_{run_id}_layout") as dsn:
        yield dsn


async def _check(dsn: str, shard_count: int) -> None:
    pool = await create_pool(dsn, size_max=1)
    try:
        await check_layout(pool, shard_count)
    finally:
        await pool.close()


def test_the_first_start_records_the_shard_count_and_later_starts_must_match_it(fresh_dsn):
    run(_check(fresh_dsn, 8))
    run(_check(fresh_dsn, 8))  # the same count again: fine
    with pytest.raises(Unavailable) as refused:
        run(_check(fresh_dsn, 16))
    assert "configured for 16 shards but the ledger was created with 8" in str(refused.value)
    assert status_of(refused.value) == 503


@pytest.mark.parametrize("sql", ["UPDATE posray_layout SET shard_count = 16", "DELETE FROM posray_layout",
                                 "TRUNCATE posray_layout"])
def test_the_recorded_shard_count_cannot_be_changed_afterwards(fresh_dsn, sql):
    run(_check(fresh_dsn, 8))

    async def tamper():
        conn = await asyncpg.connect(fresh_dsn)
        try:
            with pytest.raises(asyncpg.PostgresError):
                await conn.execute(sql)
            return await conn.fetchval("SELECT shard_count FROM posray_layout")
        finally:
            await conn.close()

    assert run(tamper()) == 8
