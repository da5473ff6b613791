"""Query parameters of the HTTP edge, parsed to bounded values or refused with a 400 naming them.

Every value that reaches Redis or PostgreSQL from a query string goes through here first, so a
number PostgreSQL cannot hold (2^63), a date whose next day Python cannot represent
(9999-12-31) or a NUL byte in a text becomes a 400, never a 500 from a driver.
"""

from __future__ import annotations

import re
from datetime import date
from urllib.parse import parse_qsl

from posray.domain.errors import InvalidRequest

BIGINT_MAX = 2**63 - 1
# The day after it must exist too: ranges are [day, day + 1) in UTC.
DATE_MAX = date(9999, 12, 30)
TERMINAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def query(scope, allowed: frozenset | None = None) -> dict[str, str]:
    """The query string as a dict (the last value of a repeated name wins).

    Raises:
        InvalidRequest: a name not in `allowed` (when given), 400.
    """
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    if allowed is not None:
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise InvalidRequest(unknown[0], "is not a parameter of this endpoint")
    return params


def integer(value: str | None, name: str, low: int = 0, high: int = BIGINT_MAX) -> int | None:
    """An ASCII decimal integer in [low, high], or None when absent.

    Raises:
        InvalidRequest: not digits, or out of range (400).
    """
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > len(str(high)):
        raise InvalidRequest(name, f"must be an integer {low}..{high}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidRequest(name, f"must be an integer {low}..{high}")
    return number


def day(value: str | None, name: str) -> date:
    """A date YYYY-MM-DD up to DATE_MAX.

    Raises:
        InvalidRequest: missing, malformed or out of range (400).
    """
    if value is None:
        raise InvalidRequest(name, "is required (YYYY-MM-DD)")
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(name, "must be a date YYYY-MM-DD") from None
    if parsed > DATE_MAX:
        raise InvalidRequest(name, f"must not be after {DATE_MAX.isoformat()}")
    return parsed


def terminal_id(value: str | None, name: str = "terminal_id") -> str | None:
    """A terminal id of the wire format (docs/protocol.md 2.1), or None when absent.

    Raises:
        InvalidRequest: not 1-32 characters of A-Z a-z 0-9 _ . - starting with a letter or digit (400).
    """
    if value is None:
        return None
    if not TERMINAL_ID.fullmatch(value):
        raise InvalidRequest(name, "must be 1-32 characters of A-Z a-z 0-9 _ . -, the first a letter or digit")
    return value


def query_integer(scope, name: str) -> int | None:
    """The query parameter `name` as an integer 0..BIGINT_MAX, or None when absent (see integer)."""
    return integer(query(scope).get(name), name)
