"""Canonical bytes of a JSON value: RFC 8785 (JCS) for posray's value domain.

posray documents contain only objects, arrays, strings, booleans, null and integers of
magnitude below 2**53 (money is integer minor units; floats are refused at the edge). For
that domain RFC 8785 reduces to: object members sorted by key, no insignificant whitespace,
UTF-8 output, strings escaped minimally (\\" \\\\ \\b \\f \\n \\r \\t, other controls as
\\u00xx in lowercase hex, everything else literal), integers in plain decimal.
"""

from __future__ import annotations

import orjson

INT_ABS_MAX = 2**53 - 1


def canonical_wire_document(document: dict) -> bytes:
    """Canonical bytes of a document that already passed posray.wire validation (hot path).

    The wire model admits only ASCII member names, integers within ±10**13, strings, lists
    and objects, so the domain walk of `canonical_bytes` is redundant: sorted keys suffice.
    """
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def canonical_bytes(value) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of `value`.

    Args:
        value: a JSON-compatible value made of dict, list, str, int, bool and None.

    Raises:
        ValueError: a float, a non-string key or an integer beyond ±(2**53 - 1).
    """
    if _check(value):
        # orjson sorts by code point; RFC 8785 sorts by UTF-16 code unit, which differs once
        # keys mix U+E000..U+FFFF with characters beyond U+FFFF. ASCII keys never take this path.
        return orjson.dumps(_utf16_sorted(value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _check(value) -> bool:
    """Raise on values outside the domain; return True when some object key is not ASCII."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return False
    if isinstance(value, int):
        if -INT_ABS_MAX <= value <= INT_ABS_MAX:
            return False
        raise ValueError("integer outside the JSON-safe range ±(2**53 - 1)")
    if isinstance(value, dict):
        non_ascii = False
        for key, member in value.items():
            if not isinstance(key, str):
                raise ValueError("object keys must be strings")
            non_ascii = _check(member) or non_ascii or not key.isascii()
        return non_ascii
    if isinstance(value, list):
        non_ascii = False
        for member in value:
            non_ascii = _check(member) or non_ascii
        return non_ascii
    raise ValueError(f"{type(value).__name__} values are not allowed in canonical JSON")


def _utf16_sorted(value):
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return {key: _utf16_sorted(member) for key, member in ordered}
    if isinstance(value, list):
        return [_utf16_sorted(member) for member in value]
    return value
