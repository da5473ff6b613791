"""What a merchant may read in PostgreSQL: its token version, terminals, documents and day totals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import asyncpg

from posray.adapters.pg import translated
from posray.domain.errors import NotFound


@dataclass(frozen=True, slots=True)
class MerchantTerminal:
    """One terminal of a merchant, as the merchant sees it (no key, no revision)."""

    terminal_id: str
    label: str | None
    status: str
    registered_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page of documents ends: the order key of its last document."""

    terminal_id: str
    accepted_at: datetime
    shard: int
    seq: int


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """One recorded document of a merchant; `record` is the canonical ledger record."""

    shard: int
    seq: int
    terminal_id: str
    counter: int
    issued_at: datetime
    accepted_at: datetime
    total_minor: int
    record: bytes

    @property
    def position(self) -> Position:
        return Position(self.terminal_id, self.accepted_at, self.shard, self.seq)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """Sums of one (UTC day, currency, document type); per VAT rate when `rate_bp` is set."""

    day: date
    currency: str
    doc_type: str
    rate_bp: int | None
    documents: int
    gross_minor: int
    vat_minor: int | None


_DOCUMENTS = (
    "SELECT e.shard, e.seq, e.terminal_id, e.counter, e.issued_at, e.accepted_at, e.total_minor, e.record"
    " FROM terminals t JOIN ledger_entries e ON e.terminal_id = t.terminal_id"
    " WHERE t.merchant_id = $1 AND e.accepted_at >= $2 AND e.accepted_at < $3"
)
_ORDER = " ORDER BY e.terminal_id, e.accepted_at, e.shard, e.seq LIMIT $4"
# One snapshot, each canonical record parsed once: document totals per type, and the VAT
# lines of the same documents per rate (rate_bp NULL marks the totals rows). PostgreSQL's JSON
# refuses the escape \u0000, which a document's texts may hold: escaped backslashes are first
# rewritten as \u005c (the same character), so that every \u0000 left is a real one, replaced.
_SUMMARY = r"""
WITH docs AS MATERIALIZED (
    SELECT (e.accepted_at AT TIME ZONE 'UTC')::date AS day, e.total_minor,
           replace(replace(convert_from(e.record, 'UTF8'), '\\', '\u005c'), '\u0000', '\ufffd')::jsonb
               -> 'document' AS doc
    FROM terminals t JOIN ledger_entries e ON e.terminal_id = t.terminal_id
    WHERE t.merchant_id = $1 AND e.accepted_at >= $2 AND e.accepted_at < $3
)
SELECT day, doc ->> 'currency' AS currency, doc ->> 'type' AS doc_type, NULL::int AS rate_bp,
       count(*) AS documents, sum(total_minor) AS gross_minor, NULL::numeric AS vat_minor
FROM docs GROUP BY 1, 2, 3
UNION ALL
SELECT day, doc ->> 'currency', doc ->> 'type', (v ->> 'rate_bp')::int,
       count(*), sum((v ->> 'gross_minor')::bigint), sum((v ->> 'vat_minor')::bigint)
FROM docs CROSS JOIN LATERAL jsonb_array_elements(doc -> 'vat') AS v GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4 NULLS FIRST
"""


class PgMerchants:
    """Merchant token versions and the merchant-scoped reads of the merchant API."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    async def token_version(self, merchant_id: str) -> int | None:
        """The merchant's current token version, or None when it is not registered."""
        async with translated(), self._pool.acquire() as conn:
            return await conn.fetchval(
                "SELECT token_version FROM merchants WHERE merchant_id = $1", merchant_id
            )

    async def bump_token_version(self, merchant_id: str) -> int:
        """Revoke every token of the merchant issued so far; return the new version.

        Raises:
            NotFound: the merchant is not registered.
        """
        async with translated(), self._pool.acquire() as conn:
            version = await conn.fetchval(
                "UPDATE merchants SET token_version = token_version + 1 WHERE merchant_id = $1"
                " RETURNING token_version",
                merchant_id,
            )
        if version is None:
            raise NotFound(f"merchant {merchant_id!r} is not registered")
        return version

    async def terminals(self, merchant_id: str, limit: int) -> list[MerchantTerminal]:
        """The merchant's terminals by id, at most `limit`."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT terminal_id, label, status, created_at, revoked_at FROM terminals"
                " WHERE merchant_id = $1 ORDER BY terminal_id LIMIT $2",
                merchant_id, limit,
            )
        return [MerchantTerminal(r["terminal_id"], r["label"], r["status"], r["created_at"],
                                 r["revoked_at"]) for r in rows]

    async def owns_terminal(self, merchant_id: str, terminal_id: str) -> bool:
        """Whether `terminal_id` is registered to `merchant_id` (False for unknown terminals)."""
        async with translated(), self._pool.acquire() as conn:
            owner = await conn.fetchval(
                "SELECT merchant_id FROM terminals WHERE terminal_id = $1", terminal_id
            )
        return owner == merchant_id

    async def documents(
        self, merchant_id: str, start: datetime, end: datetime, limit: int,
        terminal_id: str | None = None, after: Position | None = None,
    ) -> list[DocumentRow]:
        """The merchant's documents accepted in [start, end), by terminal, time, shard, seq.

        Keyset pagination: pass the position of the previous page's last row as `after`. The
        rest of the cursor's terminal and the later terminals are two queries rather than one
        OR, so that each is an index range scan (a page costs about `limit` rows).
        """
        if after is not None and terminal_id not in (None, after.terminal_id):
            return []  # a cursor of another terminal's listing
        async with translated(), self._pool.acquire() as conn:
            rows = []
            if after is not None:
                rows = await conn.fetch(
                    _DOCUMENTS + " AND t.terminal_id = $5 AND e.accepted_at >= $6"
                    " AND (e.accepted_at, e.shard, e.seq) > ($6, $7, $8)" + _ORDER,
                    merchant_id, start, end, limit, after.terminal_id, after.accepted_at,
                    after.shard, after.seq)
            if len(rows) < limit:
                sql, args = _DOCUMENTS, [merchant_id, start, end, limit - len(rows)]
                if terminal_id is not None:
                    args.append(terminal_id)
                    sql += f" AND t.terminal_id = ${len(args)}"
                if after is not None:
                    args.append(after.terminal_id)
                    sql += f" AND t.terminal_id > ${len(args)}"
                rows += await conn.fetch(sql + _ORDER, *args)
        return [DocumentRow(r["shard"], r["seq"], r["terminal_id"], r["counter"], r["issued_at"],
                            r["accepted_at"], r["total_minor"], bytes(r["record"])) for r in rows]

    async def summary(self, merchant_id: str, start: datetime, end: datetime) -> list[SummaryRow]:
        """Per UTC day of acceptance, currency and type: counts and sums, then VAT by rate."""
        async with translated(), self._pool.acquire() as conn:
            rows = await conn.fetch(_SUMMARY, merchant_id, start, end)
        return [
            SummaryRow(r["day"], r["currency"], r["doc_type"], r["rate_bp"], r["documents"],
                       int(r["gross_minor"]), None if r["vat_minor"] is None else int(r["vat_minor"]))
            for r in rows
        ]
