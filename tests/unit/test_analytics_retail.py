"""Retail analytics on hand-built documents and items, against hand-computed results."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from posray.analytics import retail
from tests.unit.analytics_frames import documents, items

MON, TUE, NEXT_MON = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 9)
DOCS = documents(
    {"local": datetime(2026, 3, 2, 9, 15), "vat": [(2000, 1000)], "paid": {"cash": 1000}, "item_count": 2, "store": "s-a"},
    {"local": datetime(2026, 3, 2, 9, 45), "vat": [(2000, 3000)], "item_count": 1, "store": "s-a"},
    {"local": datetime(2026, 3, 3, 17, 5), "vat": [(2000, 2000)], "item_count": 3, "terminal_id": "t2"},
    {"local": datetime(2026, 3, 3, 10, 0), "vat": [(2000, 500)], "paid": {"cash": 500}, "type": "refund", "store": "s-a"},
    {"local": datetime(2026, 3, 3, 17, 30), "vat": [(2000, 100)], "type": "correction", "terminal_id": "t2"},
    {"local": datetime(2026, 3, 9, 9, 10), "vat": [(2000, 12000)], "merchant_id": "m2", "store": "s-b", "terminal_id": "t3"},
)
ITEMS = items(
    {"seq": 1, "local": datetime(2026, 3, 2, 9, 15), "sku": "A", "name": "Apple", "category": "fruit", "amount_minor": 500},
    {"seq": 1, "local": datetime(2026, 3, 2, 9, 15), "sku": "B", "name": "Bread", "category": "bakery", "amount_minor": 500, "line_no": 1},
    {"seq": 2, "local": datetime(2026, 3, 2, 9, 45), "sku": "C", "name": "Cheese", "category": "dairy", "amount_minor": 3000},
    {"seq": 3, "local": datetime(2026, 3, 3, 17, 5), "sku": "A", "name": "Apple", "category": "fruit", "amount_minor": 1000, "qty_milli": 2000},
    {"seq": 3, "local": datetime(2026, 3, 3, 17, 5), "sku": "B", "name": "Bread", "category": "bakery", "amount_minor": 500, "line_no": 1},
    {"seq": 3, "local": datetime(2026, 3, 3, 17, 5), "sku": "D", "name": "Dish soap", "category": None, "amount_minor": 500, "line_no": 2},
    {"seq": 4, "local": datetime(2026, 3, 3, 10, 0), "sku": "C", "name": "Cheese", "category": "dairy", "amount_minor": 500, "type": "refund"},
    {"seq": 5, "local": datetime(2026, 3, 3, 17, 30), "sku": "A", "name": "Apple", "category": "fruit", "amount_minor": 100, "type": "correction"},
    {"seq": 6, "local": datetime(2026, 3, 9, 9, 10), "sku": "E", "name": "Espresso machine", "category": "household", "amount_minor": 12000},
)


def rows(frame, *columns):
    return frame.collect().select(*columns).rows()


class TestRevenueOverTime:
    def test_by_hour_nets_refunds_and_averages_over_trading_days(self):
        assert rows(retail.revenue_by_hour(DOCS), "hour", "net_revenue_minor", "receipts", "days",
                    "avg_daily_revenue_minor") == [
            (9, 16000, 3, 3, pytest.approx(16000 / 3)), (10, -500, 0, 3, pytest.approx(-500 / 3)),
            (17, 2000, 1, 3, pytest.approx(2000 / 3))]

    def test_by_day_shows_refunds_and_weekdays(self):
        assert rows(retail.revenue_by_day(DOCS), "date", "weekday", "net_revenue_minor", "refunds_minor", "receipts") == [
            (MON, 1, 4000, 0, 2), (TUE, 2, 1500, 500, 1), (NEXT_MON, 1, 12000, 0, 1)]

    def test_by_weekday_averages_over_the_days_of_that_weekday(self):
        assert rows(retail.revenue_by_weekday(DOCS), "weekday_name", "days", "net_revenue_minor",
                    "avg_revenue_minor", "avg_receipts") == [
            ("Mon", 2, 16000, 8000.0, 1.5), ("Tue", 1, 1500, 1500.0, 1.0)]


class TestProducts:
    def test_top_products_rank_by_net_revenue_and_stop_at_n(self):
        assert rows(retail.top_products(ITEMS, 3), "rank", "sku", "net_revenue_minor", "net_qty_milli", "sale_lines") == [
            (1, "E", 12000, 1000, 1), (2, "C", 2500, 0, 1), (3, "A", 1500, 3000, 2)]

    def test_categories_share_the_net_revenue_and_name_missing_ones(self):
        result = rows(retail.top_categories(ITEMS), "category", "net_revenue_minor", "share")
        assert result == [("household", 12000, pytest.approx(12000 / 17500)), ("dairy", 2500, pytest.approx(2500 / 17500)),
                          ("fruit", 1500, pytest.approx(1500 / 17500)), ("bakery", 1000, pytest.approx(1000 / 17500)),
                          ("(none)", 500, pytest.approx(500 / 17500))]


class TestBaskets:
    def test_sizes_count_sales_by_lines(self):
        assert rows(retail.basket_sizes(DOCS), "item_count", "baskets", "share") == [(1, 2, 0.5), (2, 1, 0.25), (3, 1, 0.25)]

    def test_values_fall_in_bins_and_the_last_bin_is_open_ended(self):
        assert rows(retail.basket_values(DOCS, bin_minor=1000, bins_max=5), "bin_start_minor", "baskets") == [
            (1000, 1), (2000, 1), (3000, 1), (4000, 1)]
        with pytest.raises(ValueError):
            retail.basket_values(DOCS, bin_minor=0)

    def test_summary_per_merchant(self):
        assert rows(retail.basket_summary(DOCS), "merchant_id", "baskets", "mean_lines", "mean_value_minor",
                    "median_value_minor", "p90_value_minor") == [
            ("m1", 3, 2.0, 2000.0, 2000.0, 3000.0), ("m2", 1, 1.0, 12000.0, 12000.0, 12000.0)]


class TestStores:
    def test_stores_compare_revenue_per_day_basket_refunds_and_cash(self):
        result = retail.store_comparison(DOCS).collect().to_dicts()
        assert [(r["merchant_id"], r["store"]) for r in result] == [("m2", "s-b"), ("m1", "t2"), ("m1", "s-a")]
        s_a = result[2]
        assert (s_a["net_revenue_minor"], s_a["receipts"], s_a["days"]) == (3500, 2, 2)
        assert (s_a["revenue_per_day_minor"], s_a["avg_basket_minor"]) == (1750.0, 2000.0)
        assert s_a["refund_ratio"] == pytest.approx(500 / 4000)
        assert s_a["cash_share"] == pytest.approx(500 / 3500)
        # a terminal without a store label stands for its own store; its correction is not revenue
        assert (result[1]["net_revenue_minor"], result[1]["refund_ratio"], result[1]["cash_share"]) == (2000, 0.0, 0.0)
