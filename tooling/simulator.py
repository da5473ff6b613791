"""A terminal simulator: builds valid, signed documents (demo, load generator, tests)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from posray import document_mac
from posray.domain.transaction import (
    Submission,
    canonical_document,
    document_hash,
    line_amount,
    shard_of,
    vat_included,
)

VAT_RATES_BP = (0, 500, 1000, 1300, 2000)
CET = timezone(timedelta(hours=1))
_METHODS = ("cash", "card", "mobile", "voucher", "other")


def now_issued_at() -> str:
    """The current time as RFC 3339 with a +01:00 offset, whole seconds."""
    return datetime.now(CET).replace(microsecond=0).isoformat()


def make_document(
    terminal_id: str,
    counter: int,
    key: bytes,
    *,
    issued_at: str | None = None,
    items: list | None = None,
    doc_type: str = "sale",
    currency: str = "EUR",
    seed=None,
) -> dict:
    """A complete, valid document signed with `key` (its "mac" member set).

    Args:
        items: item dicts (amount_minor is computed when missing) or (qty_milli,
            unit_price_minor, vat_rate_bp) tuples; None draws 1-4 items from `seed`.
        seed: varies the drawn items and payments; None derives it from (terminal_id, counter),
            so two calls with the same arguments build the same document.
    """
    rng = random.Random(f"{terminal_id}|{counter}" if seed is None else f"seed|{seed}")
    lines = [_item(i, raw) for i, raw in enumerate(items)] if items is not None else _draw(rng)
    gross_by_rate: dict[int, int] = {}
    for line in lines:
        rate = line["vat_rate_bp"]
        gross_by_rate[rate] = gross_by_rate.get(rate, 0) + line["amount_minor"]
    total = sum(gross_by_rate.values())
    doc = {
        "terminal_id": terminal_id,
        "counter": counter,
        "issued_at": issued_at or now_issued_at(),
        "type": doc_type,
        "currency": currency,
        "items": lines,
        "payments": _payments(rng, total),
        "total_minor": total,
        "vat": [
            {"rate_bp": rate, "gross_minor": gross, "vat_minor": vat_included(gross, rate)}
            for rate, gross in sorted(gross_by_rate.items())
        ],
    }
    doc["mac"] = document_mac(key, doc)
    return doc


def resign(doc: dict, key: bytes) -> dict:
    """A copy of `doc` with its MAC recomputed under `key` (after a deliberate edit)."""
    fresh = {k: v for k, v in doc.items() if k != "mac"}
    fresh["mac"] = document_mac(key, fresh)
    return fresh


def submission_of(doc: dict, shard_count: int) -> Submission:
    """The Submission the intake would build for an already checked document."""
    canonical = canonical_document(doc)
    return Submission(
        terminal_id=doc["terminal_id"],
        counter=doc["counter"],
        shard=shard_of(doc["terminal_id"], shard_count),
        document_hash=document_hash(canonical),
        canonical=canonical,
    )


def _item(index: int, raw) -> dict:
    if isinstance(raw, dict):
        line = dict(raw)
        line.setdefault("name", f"article {index}")
        line.setdefault("amount_minor", line_amount(line["qty_milli"], line["unit_price_minor"]))
        return line
    qty_milli, unit_price_minor, rate_bp = raw
    return {
        "name": f"article {index}",
        "qty_milli": qty_milli,
        "unit_price_minor": unit_price_minor,
        "amount_minor": line_amount(qty_milli, unit_price_minor),
        "vat_rate_bp": rate_bp,
    }


def _draw(rng: random.Random) -> list[dict]:
    lines = []
    for i in range(rng.randint(1, 4)):
        qty_milli = rng.choice((1000, 2000, 3000, rng.randint(1, 5000)))
        lines.append(
            _item(i, (qty_milli, rng.randint(1, 50_000), rng.choice(VAT_RATES_BP)))
            | {"sku": f"SKU-{rng.randint(1, 9999):04d}"}
        )
    return lines


def _payments(rng: random.Random, total: int) -> list[dict]:
    if total < 2 or rng.random() < 0.7:
        return [{"method": rng.choice(_METHODS), "amount_minor": total}]
    first = rng.randint(1, total - 1)
    return [
        {"method": "voucher", "amount_minor": first},
        {"method": "card", "amount_minor": total - first},
    ]
