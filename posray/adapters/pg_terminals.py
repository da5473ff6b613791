"""The terminal directory in PostgreSQL: merchants, terminals, revocations, change feed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import asyncpg

from posray.adapters.pg import translated
from posray.domain.errors import AlreadyRegistered, NotFound

# Writers of terminals hold this transaction lock while they take revisions, so revisions
# become visible in commit order: otherwise a poller could pass a revocation still in flight
# (revision r, committed after r + 1 was seen) and never see it.
_REVISION_LOCK = 7263002


@dataclass(frozen=True, slots=True)
class TerminalRow:
    """What the hot path needs about a terminal (no secret: keys are derived)."""

    terminal_id: str
    merchant_id: str
    key_version: int
    active: bool
    revision: int


def _row(r) -> TerminalRow:
    return TerminalRow(
        r["terminal_id"], r["merchant_id"], r["key_version"], r["status"] == "active", r["revision"]
    )


class PgTerminals:
    """Registration, bulk import, revocation and lookups of terminals."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def add_merchant(self, merchant_id: str, name: str) -> bool:
        """Register a merchant; False when it already existed (names are not changed)."""
        async with translated(), self._pool.acquire() as conn:
            status = await conn.execute(
                "INSERT INTO merchants (merchant_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                merchant_id, name,
            )
        return status.endswith(" 1")

    async def add_terminal(self, terminal_id: str, merchant_id: str, label: str | None) -> TerminalRow:
        """Register one terminal.

        Raises:
            NotFound: the merchant is not registered.
            AlreadyRegistered: the terminal id is already taken (409).
        """
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _REVISION_LOCK)
            try:
                r = await conn.fetchrow(
                    "INSERT INTO terminals (terminal_id, merchant_id, label) VALUES ($1, $2, $3)"
                    " RETURNING terminal_id, merchant_id, key_version, status, revision",
                    terminal_id, merchant_id, label,
                )
            except asyncpg.ForeignKeyViolationError:
                raise NotFound(f"merchant {merchant_id!r} is not registered") from None
            except asyncpg.UniqueViolationError:
                raise AlreadyRegistered("terminal_id", "is already registered") from None
        return _row(r)

    async def import_terminals(self, rows: list[tuple[str, str, str | None]],
                               progress: Callable[[int], None] | None = None) -> int:
        """Bulk-register (terminal_id, merchant_id, label) rows with COPY; return the count.

        Missing merchants are created with their id as name. Runs in one transaction: either
        every row is registered or none is. `progress` is called with the rows handed to COPY
        so far (every PROGRESS_EVERY rows); they are registered only when it commits.

        Raises:
            AlreadyRegistered: a terminal id in the file is already registered (409).
        """
        merchants = sorted({m for _, m, _ in rows})
        async with translated(), self._pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _REVISION_LOCK)
                await conn.executemany(
                    "INSERT INTO merchants (merchant_id, name) VALUES ($1, $1) ON CONFLICT DO NOTHING",
                    [(m,) for m in merchants],
                )
                try:
                    await conn.copy_records_to_table(
                        "terminals", records=_counted(rows, progress), columns=("terminal_id", "merchant_id", "label")
                    )
                except asyncpg.UniqueViolationError as e:
                    raise AlreadyRegistered(
                        "terminal_id", f"already registered ({e.detail or 'duplicate'})"
                    ) from None
        return len(rows)

    async def revoke(self, terminal_id: str) -> TerminalRow:
        """Revoke a terminal (idempotent); its documents are refused from then on.

        Raises:
            NotFound: no such terminal.
        """
        async with translated(), self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _REVISION_LOCK)
            r = await conn.fetchrow(
                "UPDATE terminals SET status = 'revoked', revoked_at = coalesce(revoked_at, now()),"
                " revision = nextval('terminal_revision') WHERE terminal_id = $1"
                " RETURNING terminal_id, merchant_id, key_version, status, revision",
                terminal_id,
            )
        if r is None:
            raise NotFound(f"terminal {terminal_id!r} is not registered")
        return _row(r)

    async def get_many(self, terminal_ids: list[str]) -> dict[str, TerminalRow]:
        """Terminals among `terminal_ids` that are registered (one query)."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT terminal_id, merchant_id, key_version, status, revision FROM terminals"
                " WHERE terminal_id = ANY($1::text[])",
                terminal_ids,
            )
        return {r["terminal_id"]: _row(r) for r in rows}

    async def changes_since(self, revision: int, limit: int = 10000) -> list[TerminalRow]:
        """Terminals changed after `revision`, oldest change first."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT terminal_id, merchant_id, key_version, status, revision FROM terminals"
                " WHERE revision > $1 ORDER BY revision LIMIT $2",
                revision, limit,
            )
        return [_row(r) for r in rows]

    async def current_revision(self) -> int:
        async with translated(), self._pool.acquire() as conn:
            return int(await conn.fetchval("SELECT coalesce(max(revision), 0) FROM terminals"))

    async def count(self) -> dict[str, int]:
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM terminals GROUP BY status")
        return {r["status"]: r["n"] for r in rows}


PROGRESS_EVERY = 10_000


def _counted(rows: list, progress: Callable[[int], None] | None) -> Iterator:
    """`rows`, calling `progress` with how many were taken every PROGRESS_EVERY rows and at the end."""
    if progress is None:
        yield from rows
        return
    for n, row in enumerate(rows, start=1):
        yield row
        if n % PROGRESS_EVERY == 0:
            progress(n)
    progress(len(rows))
