"""Shared unit-test fixtures: no Ray, and a builder of documents whose numbers add up."""

from __future__ import annotations

import pytest
import ray

from posray.domain.transaction import line_amount, vat_included

ISSUED_AT = "2026-11-26T10:15:00+01:00"
ISSUED_AT_MS = 1_795_684_500_000  # 20783 days + 9 h 15 min after the epoch (UTC)


@pytest.fixture(autouse=True)
def _forbid_ray_init(monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("unit tests must not call ray.init; move the test to tests/cluster")

    monkeypatch.setattr(ray, "init", refuse)


def build_document(lines=((1000, 1200, 2000), (2500, 199, 700)), methods=("card",), **fields):
    """A consistent sale: `lines` are (qty_milli, unit_price_minor, vat_rate_bp).

    Amounts, VAT lines and payments are computed so that every rule holds; the payment is split
    over `methods`, the remainder on the last one. `fields` override top-level members.
    """
    items, gross_by_rate = [], {}
    for n, (qty_milli, unit_price_minor, rate_bp) in enumerate(lines):
        amount = line_amount(qty_milli, unit_price_minor)
        items.append(
            {
                "name": f"article {n}",
                "qty_milli": qty_milli,
                "unit_price_minor": unit_price_minor,
                "amount_minor": amount,
                "vat_rate_bp": rate_bp,
            }
        )
        gross_by_rate[rate_bp] = gross_by_rate.get(rate_bp, 0) + amount
    total = sum(gross_by_rate.values())
    share = total // len(methods)
    payments = [{"method": m, "amount_minor": share} for m in methods]
    payments[-1]["amount_minor"] = total - share * (len(methods) - 1)
    vat = [
        {"rate_bp": rate, "gross_minor": gross, "vat_minor": vat_included(gross, rate)}
        for rate, gross in sorted(gross_by_rate.items())
    ]
    document = {
        "terminal_id": "T-0001",
        "counter": 1,
        "issued_at": ISSUED_AT,
        "type": "sale",
        "currency": "EUR",
        "items": items,
        "payments": payments,
        "total_minor": total,
        "vat": vat,
        "mac": "0" * 64,
    }
    document.update(fields)
    return document


@pytest.fixture
def make_document():
    """The document builder as a fixture, so test modules need not import conftest."""
    return build_document
