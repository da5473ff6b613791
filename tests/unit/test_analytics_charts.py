"""Charts name their units and currency; the HTML report embeds them and formats amounts."""

from __future__ import annotations

import functools
from datetime import datetime

import polars as pl
import pytest

from posray.analytics import charts, fiscal, retail
from posray.analytics.report import Report
from tests.unit.analytics_frames import documents, items

DOCS = documents(
    {"local": datetime(2026, 3, 2, 9), "vat": [(2000, 1234), (1000, 500)], "paid": {"cash": 1734}},
    {"local": datetime(2026, 3, 3, 18), "vat": [(1000, 250)], "type": "refund"},
    {"local": datetime(2026, 3, 7, 11), "vat": [(2000, 990)], "store": "s-b", "merchant_id": "m2"},
)
ITEMS = items({"seq": 1, "local": datetime(2026, 3, 2, 9), "sku": "A", "name": "Apple", "category": "fruit",
               "amount_minor": 1234})


@functools.cache
def all_charts():
    totals = fiscal.totals(DOCS, "week").collect()
    period_vat = fiscal.period_vat(fiscal.vat_by_rate(DOCS, "week")).collect()
    return {
        "turnover_by_vat_rate": charts.turnover_by_vat_rate(period_vat, "EUR", "week"),
        "vat_by_period": charts.vat_by_period(period_vat, "EUR", "week"),
        "merchant_turnover": charts.merchant_turnover(totals, "EUR"),
        "payment_mix": charts.payment_mix(totals, "EUR"),
        "revenue_by_hour": charts.revenue_by_hour(retail.revenue_by_hour(DOCS).collect(), "EUR"),
        "revenue_by_day": charts.revenue_by_day(retail.revenue_by_day(DOCS).collect(), "EUR"),
        "revenue_by_weekday": charts.revenue_by_weekday(retail.revenue_by_weekday(DOCS).collect(), "EUR"),
        "top_products": charts.top_products(retail.top_products(ITEMS).collect(), "EUR"),
        "categories": charts.categories(retail.top_categories(ITEMS).collect(), "EUR"),
        "basket_sizes": charts.basket_sizes(retail.basket_sizes(DOCS).collect()),
        "basket_values": charts.basket_values(retail.basket_values(DOCS).collect(), "EUR", 500),
        "stores": charts.stores(retail.store_comparison(DOCS).collect(), "EUR"),
    }


class TestCharts:
    @pytest.mark.parametrize("name", list(all_charts()))
    def test_every_chart_has_a_title_labelled_axes_and_renders_to_png(self, name):
        figure = all_charts()[name]
        axes = figure.axes[0]
        assert axes.get_title(loc="left")
        assert axes.get_xlabel() and axes.get_ylabel() or axes.get_yticklabels()
        money_label = axes.get_ylabel() if "(" in axes.get_ylabel() else axes.get_xlabel()
        if name not in ("basket_sizes", "payment_mix"):
            assert "(EUR)" in money_label, money_label
        assert charts.png_bytes(figure)[:8] == b"\x89PNG\r\n\x1a\n"

    def test_amounts_are_drawn_in_major_units(self):
        figure = all_charts()["revenue_by_day"]
        heights = sorted(bar.get_height() for bars in figure.axes[0].containers for bar in bars if bar.get_height() > 0)
        assert heights == [pytest.approx(9.90), pytest.approx(17.34)]

    def test_major_units_follow_the_currency(self):
        assert charts.major(12345, "EUR") == 123.45
        assert charts.major(12345, "JPY") == 12345
        assert charts.major(12345, "KWD") == 12.345


class TestReport:
    def test_the_report_embeds_charts_and_shows_amounts_in_the_currency(self):
        report = Report("Fiscal report", "m1 & m2")
        report.section("Turnover")
        report.chart(b"\x89PNG fake", "net <turnover>")
        report.table(pl.DataFrame({"currency": ["EUR"], "net_gross_minor": [123456], "refund_ratio": [0.125]}))
        page = report.to_html()
        assert "data:image/png;base64,iVBORyBmYWtl" in page
        assert "net &lt;turnover&gt;" in page and "m1 &amp; m2" in page
        assert "<th>net gross (EUR)</th>" in page
        assert "1,234.56" in page and "12.5%" in page

    def test_long_tables_say_how_many_rows_are_shown(self):
        report = Report("Retail report", "")
        report.table(pl.DataFrame({"store": [f"s{i}" for i in range(60)]}), rows_max=50)
        assert "first 50 of 60 rows" in report.to_html()
