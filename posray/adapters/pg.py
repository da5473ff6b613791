"""PostgreSQL connection handling: pools, schema creation, driver-error translation."""

from __future__ import annotations

import contextlib
from importlib import resources

import asyncpg

from posray.domain.errors import Unavailable

_SCHEMA = resources.files("posray.adapters").joinpath("schema.sql").read_text()
TRANSIENT = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08: the connection broke or was refused
    # class 57: the server is shutting down (AdminShutdownError on a connection in use, as a
    # fast shutdown ends it), starting up (CannotConnectNowError) or cancelled the statement
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    asyncpg.exceptions.TransactionRollbackError,  # class 40: deadlock or serialization failure, retry
    # A connection the server dropped mid-operation can fail its reset with this on release
    # (seen when PostgreSQL stops under load); the pool replaces the connection.
    asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


async def create_pool(dsn: str, size_max: int = 4) -> asyncpg.Pool:
    """A small pool with bounded timeouts.

    Raises:
        Unavailable: PostgreSQL cannot be reached.
    """
    try:
        return await asyncpg.create_pool(
            dsn, min_size=1, max_size=size_max, timeout=10, command_timeout=60
        )
    except TRANSIENT as e:
        raise Unavailable(f"PostgreSQL is unreachable: {type(e).__name__}") from e


@contextlib.asynccontextmanager
async def translated():
    """Turn connection-level driver errors into Unavailable."""
    try:
        yield
    except TRANSIENT as e:
        raise Unavailable(f"PostgreSQL is unreachable: {type(e).__name__}") from e


async def check_layout(pool: asyncpg.Pool, shard_count: int) -> None:
    """Record the shard count on first use; afterwards refuse any other.

    Raises:
        Unavailable: the ledger was created with another shard count (a configuration error that
            no retry fixes, but terminals must still get 503s, not captures into wrong shards).
    """
    try:
        async with translated(), pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO posray_layout (shard_count) VALUES ($1) ON CONFLICT DO NOTHING", shard_count)
            recorded = await conn.fetchval("SELECT shard_count FROM posray_layout")
    except asyncpg.UndefinedTableError:
        raise Unavailable("the database schema is older than this posray (no posray_layout table): "
                          "apply it as the schema owner first (posray up does; see docs/operations.md)") from None
    if recorded != shard_count:
        raise Unavailable(
            f"configured for {shard_count} shards but the ledger was created with {recorded}: a "
            f"terminal's shard depends on the shard count, so it can never change (set "
            f"POSRAY_SHARD_COUNT={recorded})")


async def apply_schema(dsn: str) -> None:
    """Create posray's tables, triggers and indexes if they are missing (idempotent)."""
    async with translated():
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            # An advisory lock serializes concurrent `posray up`s against one database.
            await conn.execute("SELECT pg_advisory_lock(7263001)")
            await conn.execute(_SCHEMA)
        finally:
            await conn.close()


async def ensure_database(dsn: str, name: str) -> str:
    """Create database `name` on the server of `dsn` if missing; return its DSN."""
    async with translated():
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    base, _, _ = dsn.rpartition("/")
    query = ""
    if "?" in dsn.rsplit("/", 1)[1]:
        query = "?" + dsn.rsplit("?", 1)[1]
    return f"{base}/{name}{query}"


async def ensure_ledger(dsn: str) -> bool:
    """Create the database `dsn` names, with posray's schema, when either is missing; True if created.

    For offline ledgers (generated history) of their own, next to the live one on one server.

    Raises:
        Unavailable: the server cannot be reached.
    """
    async with translated():
        try:
            conn = await asyncpg.connect(dsn, timeout=10)
        except asyncpg.InvalidCatalogNameError:
            # Create it from the server's maintenance database, with the same credentials.
            base, _, tail = dsn.rpartition("/")
            name, mark, query = tail.partition("?")
            await ensure_database(f"{base}/postgres{mark}{query}", name)
            conn = None
        try:
            present = conn is not None and await conn.fetchval("SELECT to_regclass('posray_schema') IS NOT NULL")
        finally:
            if conn is not None:
                await conn.close()
    if not present:
        await apply_schema(dsn)
    return not present
