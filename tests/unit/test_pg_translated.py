"""Driver errors that mean "PostgreSQL is away for now" become Unavailable (503 + Retry-After)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from posray.adapters.pg import translated
from posray.domain.errors import Unavailable


async def _raise(error: Exception) -> None:
    async with translated():
        raise error


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ConnectionRefusedError(111, "Connection refused"),
    asyncpg.exceptions.DiskFullError("could not extend file"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
], ids=lambda e: type(e).__name__)
def test_a_server_going_away_is_unavailable(error):
    with pytest.raises(Unavailable, match=type(error).__name__):
        asyncio.run(_raise(error))


def test_a_query_error_is_not_disguised_as_an_outage():
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):
        asyncio.run(_raise(asyncpg.exceptions.UniqueViolationError("duplicate key")))
