"""Fiscal analytics on hand-built documents, against hand-computed totals."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from posray.analytics import fiscal
from tests.unit.analytics_frames import documents

# m1: two sales, a refund and a correction in March (1 March is a Sunday); m2: one sale in April.
DOCS = documents(
    {"local": datetime(2026, 3, 1, 10), "vat": [(2000, 1200)], "paid": {"cash": 1200}},
    {"local": datetime(2026, 3, 2, 11), "vat": [(2000, 600), (1000, 1100)], "paid": {"card": 1700}},
    {"local": datetime(2026, 3, 3, 12), "vat": [(2000, 600)], "paid": {"card": 600}, "type": "refund"},
    {"local": datetime(2026, 3, 4, 13), "vat": [(1000, 220)], "paid": {"cash": 220}, "type": "correction"},
    {"local": datetime(2026, 4, 1, 9), "vat": [(0, 500)], "paid": {"other": 500}, "merchant_id": "m2"},
)


def rows(frame, *columns):
    return frame.collect().select(*columns).rows()


class TestTotals:
    def test_monthly_totals_net_refunds_and_keep_corrections_apart(self):
        march, april = fiscal.totals(DOCS, "month").collect().to_dicts()
        assert (march["merchant_id"], march["period_start"]) == ("m1", date(2026, 3, 1))
        assert (march["sales_count"], march["sales_gross_minor"]) == (2, 2900)
        assert (march["refunds_count"], march["refunds_gross_minor"]) == (1, 600)
        assert (march["corrections_count"], march["corrections_gross_minor"]) == (1, 220)
        # VAT: 1200 -> 200, 600 -> 100, 1100 at 10 % -> 100; the refund gives 100 back.
        assert (march["net_gross_minor"], march["net_vat_minor"], march["net_excl_vat_minor"]) == (2300, 300, 2000)
        assert (march["net_cash_minor"], march["net_card_minor"], march["net_other_minor"]) == (1200, 1100, 0)
        assert march["refund_ratio"] == pytest.approx(600 / 2900)
        assert march["cash_share"] == pytest.approx(1200 / 2300)
        assert (april["merchant_id"], april["net_other_minor"], april["net_vat_minor"], april["cash_share"]) == \
               ("m2", 500, 0, 0.0)

    def test_weeks_start_on_monday_and_days_are_local_dates(self):
        assert rows(fiscal.totals(DOCS, "week"), "merchant_id", "period_start", "net_gross_minor") == [
            ("m1", date(2026, 2, 23), 1200), ("m1", date(2026, 3, 2), 1100), ("m2", date(2026, 3, 30), 500)]
        by_day = rows(fiscal.totals(DOCS, "day"), "period_start", "sales_count", "corrections_count", "refund_ratio")
        assert by_day[:4] == [(date(2026, 3, 1), 1, 0, 0.0), (date(2026, 3, 2), 1, 0, 0.0),
                              (date(2026, 3, 3), 0, 0, None), (date(2026, 3, 4), 0, 1, None)]

    def test_currencies_are_never_added_together(self):
        mixed = documents(
            {"local": datetime(2026, 3, 2, 10), "vat": [(2000, 1000)]},
            {"local": datetime(2026, 3, 2, 11), "vat": [(2000, 700)], "currency": "CHF"},
        )
        assert rows(fiscal.totals(mixed), "currency", "net_gross_minor") == [("CHF", 700), ("EUR", 1000)]

    def test_an_unknown_period_is_refused(self):
        with pytest.raises(ValueError, match="period must be one of"):
            fiscal.totals(DOCS, "year")


class TestVatByRate:
    def test_each_rate_nets_refunds_and_leaves_corrections_out(self):
        assert rows(fiscal.vat_by_rate(DOCS), "merchant_id", "period_start", "rate_bp", "sales_gross_minor",
                    "refunds_gross_minor", "net_gross_minor", "net_vat_minor", "net_excl_vat_minor") == [
            ("m1", date(2026, 3, 1), 1000, 1100, 0, 1100, 100, 1000),
            ("m1", date(2026, 3, 1), 2000, 1800, 600, 1200, 200, 1000),
            ("m2", date(2026, 4, 1), 0, 500, 0, 500, 0, 500),
        ]

    def test_period_vat_adds_merchants_up_per_rate(self):
        two_merchants = documents(
            {"local": datetime(2026, 3, 2, 10), "vat": [(2000, 1200)]},
            {"local": datetime(2026, 3, 9, 10), "vat": [(2000, 2400), (1000, 110)], "merchant_id": "m2"},
        )
        assert rows(fiscal.period_vat(fiscal.vat_by_rate(two_merchants)), "period_start", "rate_bp",
                    "net_gross_minor", "net_vat_minor") == [
            (date(2026, 3, 1), 1000, 110, 10), (date(2026, 3, 1), 2000, 3600, 600)]
