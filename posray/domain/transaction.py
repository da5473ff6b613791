"""Business rules of a fiscal document: line amounts, totals, VAT and time window.

The edge (posray.wire) has already checked types and ranges; these rules check that the
numbers add up. Every violation names the offending field with a dotted path.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from posray.domain.canonical import canonical_wire_document
from posray.domain.errors import InvalidDocument

DOCUMENT_TYPES = ("sale", "refund", "correction")
PAYMENT_METHODS = ("cash", "card", "mobile", "voucher", "other")


@dataclass(frozen=True, slots=True)
class Rules:
    """What a valid document must respect; built from Settings."""

    vat_rates_bp: frozenset[int]
    future_skew_s: int = 300
    max_age_s: int = 30 * 86400


class Submission(NamedTuple):
    """A validated, authenticated document on its way to its shard.

    A NamedTuple rather than a dataclass: lists of them cross a Ray call on every batch, and
    a tuple pickles about twenty times cheaper.
    """

    terminal_id: str
    counter: int
    shard: int
    document_hash: bytes
    canonical: bytes


def half_up_div(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (commercial rounding)."""
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def line_amount(qty_milli: int, unit_price_minor: int) -> int:
    """Line amount in minor units: quantity (thousandths) × unit price, rounded half up."""
    return half_up_div(qty_milli * unit_price_minor, 1000)


def vat_included(gross_minor: int, rate_bp: int) -> int:
    """VAT contained in a gross amount at `rate_bp` basis points, rounded half up."""
    return half_up_div(gross_minor * rate_bp, 10000 + rate_bp)


def issued_at_ms(issued_at: str) -> int:
    """Parse an RFC 3339 timestamp with offset to epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(issued_at)
    except ValueError as e:
        raise InvalidDocument("issued_at", "not an RFC 3339 timestamp") from e
    if moment.tzinfo is None:
        raise InvalidDocument("issued_at", "needs a UTC offset, e.g. 2026-11-26T10:15:00+01:00")
    return int(moment.timestamp() * 1000)


def check_document(doc: dict, rules: Rules, now_ms: int) -> int:
    """Check amounts, totals, VAT and the time window; return issued_at in epoch ms.

    Raises:
        InvalidDocument: the first rule the document breaks, naming its field.
    """
    issued_ms = issued_at_ms(doc["issued_at"])
    if issued_ms > now_ms + rules.future_skew_s * 1000:
        raise InvalidDocument("issued_at", f"more than {rules.future_skew_s} s in the future")
    if issued_ms < now_ms - rules.max_age_s * 1000:
        raise InvalidDocument(
            "issued_at", f"older than the upload window of {rules.max_age_s // 86400} days"
        )
    gross_by_rate = _check_items(doc["items"], rules)
    total = doc["total_minor"]
    items_sum = sum(gross_by_rate.values())
    if items_sum != total:
        raise InvalidDocument("total_minor", f"is {total} but the items sum to {items_sum}")
    paid = sum(p["amount_minor"] for p in doc["payments"])
    if paid != total:
        raise InvalidDocument("payments", f"sum to {paid} but total_minor is {total}")
    _check_vat(doc["vat"], gross_by_rate)
    return issued_ms


def _check_items(items: list[dict], rules: Rules) -> dict[int, int]:
    gross_by_rate: dict[int, int] = {}
    for i, item in enumerate(items):
        rate = item["vat_rate_bp"]
        if rate not in rules.vat_rates_bp:
            allowed = ", ".join(str(r) for r in sorted(rules.vat_rates_bp))
            raise InvalidDocument(f"items[{i}].vat_rate_bp", f"{rate} is not one of {allowed}")
        expected = line_amount(item["qty_milli"], item["unit_price_minor"])
        if item["amount_minor"] != expected:
            raise InvalidDocument(
                f"items[{i}].amount_minor",
                f"is {item['amount_minor']} but qty_milli × unit_price_minor / 1000 "
                f"rounded half up is {expected}",
            )
        gross_by_rate[rate] = gross_by_rate.get(rate, 0) + expected
    return gross_by_rate


def _check_vat(vat: list[dict], gross_by_rate: dict[int, int]) -> None:
    seen: set[int] = set()
    for i, line in enumerate(vat):
        rate = line["rate_bp"]
        if rate in seen:
            raise InvalidDocument(f"vat[{i}].rate_bp", f"{rate} appears twice")
        seen.add(rate)
        if rate not in gross_by_rate:
            raise InvalidDocument(f"vat[{i}].rate_bp", f"no item has VAT rate {rate}")
        if line["gross_minor"] != gross_by_rate[rate]:
            raise InvalidDocument(
                f"vat[{i}].gross_minor",
                f"is {line['gross_minor']} but items at {rate} bp sum to {gross_by_rate[rate]}",
            )
        expected = vat_included(gross_by_rate[rate], rate)
        if line["vat_minor"] != expected:
            raise InvalidDocument(
                f"vat[{i}].vat_minor",
                f"is {line['vat_minor']} but gross × rate / (10000 + rate) rounded half up "
                f"is {expected}",
            )
    missing = sorted(set(gross_by_rate) - seen)
    if missing:
        raise InvalidDocument("vat", f"no line for VAT rate {missing[0]} bp used by the items")


def document_hash(canonical: bytes) -> bytes:
    """SHA-256 of the canonical document bytes (MAC included): the document's identity."""
    return hashlib.sha256(canonical).digest()


def canonical_document(doc: dict) -> bytes:
    """Canonical bytes of the whole document as stored, MAC included (doc passed wire validation)."""
    return canonical_wire_document(doc)


@functools.lru_cache(maxsize=1 << 16)
def shard_of(terminal_id: str, shard_count: int) -> int:
    """The logical shard of a terminal: first 8 bytes of SHA-256(terminal_id) mod count.

    A terminal's shard never changes for a given shard count, so its documents stay ordered
    in one stream and one chain.
    """
    digest = hashlib.sha256(terminal_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


@functools.lru_cache(maxsize=4096)
def utc_iso_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC timestamp with millisecond precision."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"
