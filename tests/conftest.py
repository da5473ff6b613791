"""Shared fixtures: each test run gets its own PostgreSQL database and Redis key prefix."""

from __future__ import annotations

import asyncio
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


@pytest.fixture(scope="session")
def run_id() -> str:
    return f"t{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def pg_dsn(run_id):
    """A fresh database for this test run, dropped afterwards."""
    name = f"posray_{run_id}"

    async def create():
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    async def drop():
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    run(create())
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    run(drop())


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
