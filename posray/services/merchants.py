"""Use cases of the merchant API: tokens, authentication, terminals, documents and day summaries.

Every read takes the merchant id from an authenticated token, never from the request, so a
merchant reaches its own data only. A token's version is checked against the merchant's row on
every request (one primary-key lookup): a revocation takes effect at once on every replica.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

import orjson

from posray.adapters.pg_merchants import DocumentRow, PgMerchants, Position, SummaryRow
from posray.domain.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from posray.domain.merchant_token import issue_token as make_token, verify_token
from posray.domain.transaction import utc_iso_ms

DOCUMENTS_LIMIT_DEFAULT = 100
DOCUMENTS_LIMIT_MAX = 1000
SUMMARY_DAYS_MAX = 92
TERMINALS_MAX = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_GROUPS = {"sale": "sales", "refund": "refunds", "correction": "corrections"}
_CURSOR_LABEL = b"posray/v1/merchant-cursor"
_CURSOR_MAC_BYTES = 16
_TERMINAL_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_SHARD_MAX = 2**16 - 1
_SEQ_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A merchant token, shown once to the operator who asked for it."""

    merchant_id: str
    version: int
    token: str

    def __repr__(self) -> str:
        return f"IssuedToken({self.merchant_id!r}, version={self.version}, token=<secret>)"


async def issue_token(merchants: PgMerchants, key: bytes, merchant_id: str) -> IssuedToken:
    """A token for the merchant at its current token version.

    Raises:
        NotFound: the merchant is not registered.
    """
    version = await merchants.token_version(merchant_id)
    if version is None:
        raise NotFound(f"merchant {merchant_id!r} is not registered")
    try:
        return IssuedToken(merchant_id, version, make_token(key, merchant_id, version))
    except ValueError as e:  # an id registered before ids were checked
        raise InvalidRequest("merchant_id", str(e)) from None


async def revoke_tokens(merchants: PgMerchants, merchant_id: str) -> int:
    """Make every token of the merchant issued so far invalid; return the new token version.

    Raises:
        NotFound: the merchant is not registered.
    """
    return await merchants.bump_token_version(merchant_id)


async def authenticate(merchants: PgMerchants, key: bytes, token: str) -> str:
    """The merchant id a bearer token speaks for.

    Raises:
        Unauthenticated: no token, a malformed or forged one, an unknown merchant or a revoked
            version (all alike: the reply never says which).
    """
    claim = verify_token(key, token) if token else None
    if claim is not None and await merchants.token_version(claim.merchant_id) == claim.version:
        return claim.merchant_id
    raise Unauthenticated("authorization", "a valid merchant token is required")


async def list_terminals(merchants: PgMerchants, merchant_id: str) -> dict:
    """The merchant's terminals (at most TERMINALS_MAX, by id)."""
    rows = await merchants.terminals(merchant_id, TERMINALS_MAX + 1)
    return {
        "merchant_id": merchant_id,
        "terminals": [
            {"terminal_id": t.terminal_id, "label": t.label, "status": t.status,
             "registered_at": _iso(t.registered_at),
             "revoked_at": None if t.revoked_at is None else _iso(t.revoked_at)}
            for t in rows[:TERMINALS_MAX]
        ],
        "truncated": len(rows) > TERMINALS_MAX,
    }


async def list_documents(
    merchants: PgMerchants, merchant_id: str, day: date, terminal_id: str | None = None,
    after: str | None = None, limit: int = DOCUMENTS_LIMIT_DEFAULT, *, cursor_key: bytes,
) -> dict:
    """One page of the merchant's documents accepted on a UTC day, and the cursor of the next.

    Cursors are signed with `cursor_key` (cursor_key_of the merchant token key) and bound to the
    merchant, the day and the terminal filter: a forged, altered or transplanted one is a 400.

    Raises:
        InvalidRequest: a limit outside 1..DOCUMENTS_LIMIT_MAX or a malformed cursor (400).
        Forbidden: `terminal_id` is not one of the merchant's terminals (whether it exists or not).
    """
    if not 1 <= limit <= DOCUMENTS_LIMIT_MAX:
        raise InvalidRequest("limit", f"must be 1..{DOCUMENTS_LIMIT_MAX}")
    where = _cursor_scope(merchant_id, day, terminal_id)
    position = None if after is None else decode_cursor(cursor_key, where, after)
    if terminal_id is not None and not await merchants.owns_terminal(merchant_id, terminal_id):
        raise Forbidden("terminal_id is not one of this merchant's terminals")
    start = datetime.combine(day, time(), timezone.utc)
    rows = await merchants.documents(merchant_id, start, start + timedelta(days=1), limit + 1,
                                     terminal_id, position)
    page = rows[:limit]
    return {
        "merchant_id": merchant_id,
        "date": day.isoformat(),
        "documents": [_document(r) for r in page],
        "next": encode_cursor(cursor_key, where, page[-1].position) if len(rows) > limit else None,
    }


async def summarize(merchants: PgMerchants, merchant_id: str, first: date, last: date) -> dict:
    """Per UTC day of acceptance in [first, last] and currency: counts, totals and VAT by rate.

    Days without documents are left out. Net figures are sales minus refunds; corrections are
    summed apart (the wire format does not say in which direction a correction goes).

    Raises:
        InvalidRequest: `last` before `first`, or more than SUMMARY_DAYS_MAX days (400).
    """
    days = (last - first).days + 1
    if days < 1:
        raise InvalidRequest("to", "must not be before from")
    if days > SUMMARY_DAYS_MAX:
        raise InvalidRequest("to", f"the range spans {days} days; at most {SUMMARY_DAYS_MAX}")
    start = datetime.combine(first, time(), timezone.utc)
    rows = await merchants.summary(merchant_id, start, start + timedelta(days=days))
    return {"merchant_id": merchant_id, "from": first.isoformat(), "to": last.isoformat(),
            "days": summary_days(rows)}


def summary_days(rows: list[SummaryRow]) -> list[dict]:
    """Fold the adapter's rows (totals first, then VAT rates; ordered) into one entry per day and currency."""
    out: dict[tuple[date, str], dict] = {}
    for row in rows:
        entry = out.get((row.day, row.currency))
        if entry is None:
            entry = out[(row.day, row.currency)] = _empty_day(row.day, row.currency)
        group = _GROUPS.get(row.doc_type)
        if group is None:
            continue
        if row.rate_bp is None:
            entry["documents"] += row.documents
            entry[group] = {"count": row.documents, "gross_minor": row.gross_minor}
        else:
            line = _vat_line(entry, row.rate_bp)
            line[f"{group}_gross_minor"] += row.gross_minor
            line[f"{group}_vat_minor"] += row.vat_minor or 0
    for entry in out.values():
        entry["net_gross_minor"] = entry["sales"]["gross_minor"] - entry["refunds"]["gross_minor"]
        for line in entry["vat"]:
            line["net_gross_minor"] = line["sales_gross_minor"] - line["refunds_gross_minor"]
            line["net_vat_minor"] = line["sales_vat_minor"] - line["refunds_vat_minor"]
        entry["net_vat_minor"] = sum(line["net_vat_minor"] for line in entry["vat"])
    return list(out.values())


def _empty_day(day: date, currency: str) -> dict:
    entry: dict = {"date": day.isoformat(), "currency": currency, "documents": 0}
    entry.update({group: {"count": 0, "gross_minor": 0} for group in _GROUPS.values()})
    entry["vat"] = []
    return entry


def _vat_line(entry: dict, rate_bp: int) -> dict:
    for line in entry["vat"]:
        if line["rate_bp"] == rate_bp:
            return line
    line = {"rate_bp": rate_bp}
    line.update({f"{g}_{m}_minor": 0 for g in _GROUPS.values() for m in ("gross", "vat")})
    entry["vat"].append(line)
    return line


def cursor_key_of(merchant_token_key: bytes) -> bytes:
    """The key that signs cursors, derived from the merchant token key for this purpose only."""
    return hmac.new(merchant_token_key, _CURSOR_LABEL, hashlib.sha256).digest()


def _cursor_scope(merchant_id: str, day: date, terminal_id: str | None) -> bytes:
    return f"{merchant_id}|{day.isoformat()}|{terminal_id or ''}".encode()


def _cursor_mac(key: bytes, scope: bytes, payload: bytes) -> bytes:
    message = _CURSOR_LABEL + b"|" + scope + b"|" + payload
    return hmac.new(key, message, hashlib.sha256).digest()[:_CURSOR_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def encode_cursor(key: bytes, scope: bytes, position: Position) -> str:
    """An opaque cursor: unpadded base64url of [terminal_id, accepted_at µs, shard, seq], a dot,
    and a 128-bit HMAC of it bound to `scope` (merchant, day and terminal filter)."""
    micros = (position.accepted_at - _EPOCH) // timedelta(microseconds=1)
    payload = orjson.dumps([position.terminal_id, micros, position.shard, position.seq])
    return f"{_b64(payload)}.{_b64(_cursor_mac(key, scope, payload))}"


def decode_cursor(key: bytes, scope: bytes, text: str) -> Position:
    """The position a cursor of encode_cursor names, once its MAC is checked.

    Raises:
        InvalidRequest: the text is not a cursor this API returned for this scope (400).
    """
    try:
        payload_text, _, mac_text = text.partition(".")
        payload = base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4))
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
        if not hmac.compare_digest(mac, _cursor_mac(key, scope, payload)):
            raise ValueError("not signed by this API")
        terminal_id, micros, shard, seq = orjson.loads(payload)
        if not (isinstance(terminal_id, str) and all(type(v) is int for v in (micros, shard, seq))):
            raise ValueError("wrong types")
        # Checked even though signed: a cursor must never carry what PostgreSQL cannot hold.
        if not (1 <= len(terminal_id) <= 32 and set(terminal_id) <= _TERMINAL_ID_CHARS
                and 0 <= shard <= _SHARD_MAX and 0 <= seq <= _SEQ_MAX):
            raise ValueError("out of range")
        return Position(terminal_id, _EPOCH + timedelta(microseconds=micros), shard, seq)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        raise InvalidRequest("after", "is not a cursor this API returned") from None


def _document(row: DocumentRow) -> dict:
    record = orjson.loads(row.record)
    return {
        "code": record["code"], "shard": row.shard, "seq": row.seq, "terminal_id": row.terminal_id,
        "counter": row.counter, "issued_at": _iso(row.issued_at), "accepted_at": _iso(row.accepted_at),
        "total_minor": row.total_minor, "document": record["document"],
    }


def _iso(moment: datetime) -> str:
    return utc_iso_ms((moment - _EPOCH) // timedelta(milliseconds=1))
