"""Shared fixtures: each test run gets its own PostgreSQL database and Redis key prefix."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from pathlib import Path

import asyncpg
import pytest

# Ray reads RAY_AUTH_MODE when first imported; a local cluster uses token auth (as posray up does).
os.environ.setdefault("RAY_AUTH_MODE", "token")

PG_ADMIN_DSN = os.environ.get("POSRAY_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("POSRAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def run(coro):
    return asyncio.run(coro)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def private_database(name: str, schema: bool = True):
    """Create database `name` on the test server (with posray's schema), yield its DSN, drop it."""
    from posray.adapters.pg import apply_schema

    run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    try:
        if schema:
            run(apply_schema(dsn))
        yield dsn
    finally:
        run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"t{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pg_dsn(run_id):
    """A fresh database for this test run, dropped afterwards."""
    with private_database(f"posray_{run_id}", schema=False) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def schema_dsn(pg_dsn):
    from posray.adapters.pg import apply_schema

    run(apply_schema(pg_dsn))
    return pg_dsn


@pytest.fixture(scope="session")
def redis_url():
    return REDIS_URL


@pytest.fixture
def key_prefix(run_id) -> str:
    """A Redis key prefix unique to one test, deleted afterwards."""
    prefix = f"posray-test:{run_id}:{secrets.token_hex(4)}"
    yield prefix

    async def clean():
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
        await client.aclose()

    run(clean())


@pytest.fixture(scope="session")
def seed_file(tmp_path_factory) -> Path:
    from posray.adapters.keyfile import create_seed

    path = tmp_path_factory.mktemp("keys") / "operator.seed"
    create_seed(path)
    return path
