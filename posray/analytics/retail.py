"""Retail analytics over the snapshot: when revenue comes in, what sells, baskets and stores.

Polars LazyFrame -> LazyFrame, no I/O. Revenue is net: sales minus refunds, in minor units of
each currency (corrections are left out, as in posray.analytics.fiscal). Times are the local
wall-clock time printed on the receipt. A basket is one sale; its size is its number of lines.
"""

from __future__ import annotations

import polars as pl

_TYPE = pl.col("type")
_SIGN = pl.when(_TYPE == "sale").then(1).when(_TYPE == "refund").then(-1).otherwise(0)
_NET = (_SIGN * pl.col("total_minor")).sum().alias("net_revenue_minor")
_RECEIPTS = (_TYPE == "sale").sum().cast(pl.Int64).alias("receipts")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def store_key() -> pl.Expr:
    """The store of a document: its terminal's registered label, else the terminal itself."""
    return pl.coalesce(pl.col("store"), pl.col("terminal_id")).alias("store")


def revenue_by_hour(documents: pl.LazyFrame) -> pl.LazyFrame:
    """Per currency and local hour (0-23): net revenue, receipts, and the average net revenue
    per trading day (days = distinct local dates with any document in the data).

    Columns: currency, hour, net_revenue_minor, receipts, days, avg_daily_revenue_minor.
    """
    return (
        documents.with_columns(
            pl.col("issued_local").dt.hour().cast(pl.Int8).alias("hour"),
            pl.col("issued_local_date").n_unique().over("currency").alias("days"),
        )
        .group_by("currency", "hour")
        .agg(_NET, _RECEIPTS, pl.col("days").first())
        .with_columns((pl.col("net_revenue_minor") / pl.col("days")).alias("avg_daily_revenue_minor"))
        .sort("currency", "hour")
    )


def revenue_by_day(documents: pl.LazyFrame) -> pl.LazyFrame:
    """Per currency and local date: net revenue, refunds and receipts.

    Columns: currency, date, weekday (1 = Monday), net_revenue_minor, refunds_minor, receipts.
    """
    return (
        documents.group_by("currency", pl.col("issued_local_date").alias("date"))
        .agg(
            _NET,
            pl.when(_TYPE == "refund").then(pl.col("total_minor")).otherwise(0).sum().alias("refunds_minor"),
            _RECEIPTS,
        )
        .with_columns(pl.col("date").dt.weekday().cast(pl.Int8).alias("weekday"))
        .select("currency", "date", "weekday", "net_revenue_minor", "refunds_minor", "receipts")
        .sort("currency", "date")
    )


def revenue_by_weekday(documents: pl.LazyFrame) -> pl.LazyFrame:
    """Per currency and weekday: days seen, total and average net revenue and receipts per day.

    Averages are over the dates of that weekday that have documents (closed days don't count).
    Columns: currency, weekday (1 = Monday), weekday_name, days, net_revenue_minor,
    avg_revenue_minor, avg_receipts.
    """
    return (
        revenue_by_day(documents)
        .group_by("currency", "weekday")
        .agg(
            pl.len().cast(pl.Int64).alias("days"),
            pl.col("net_revenue_minor").sum(),
            pl.col("receipts").sum(),
        )
        .with_columns(
            pl.col("weekday").replace_strict(dict(enumerate(WEEKDAYS, 1)), return_dtype=pl.String).alias("weekday_name"),
            (pl.col("net_revenue_minor") / pl.col("days")).alias("avg_revenue_minor"),
            (pl.col("receipts") / pl.col("days")).alias("avg_receipts"),
        )
        .select("currency", "weekday", "weekday_name", "days", "net_revenue_minor", "avg_revenue_minor", "avg_receipts")
        .sort("currency", "weekday")
    )


def _net_lines(items: pl.LazyFrame) -> pl.LazyFrame:
    return items.filter(_TYPE.is_in(("sale", "refund"))).with_columns(
        (_SIGN * pl.col("amount_minor")).alias("net_minor"),
        (_SIGN * pl.col("qty_milli")).alias("net_qty_milli"),
    )


def top_products(items: pl.LazyFrame, n: int = 15) -> pl.LazyFrame:
    """The `n` products with the highest net revenue, per currency (ties broken by sku, name).

    A product is (sku, name, category). Columns: currency, rank, sku, name, category,
    net_revenue_minor, net_qty_milli, sale_lines.
    """
    return (
        _net_lines(items)
        .group_by("currency", "sku", "name", "category")
        .agg(
            pl.col("net_minor").sum().alias("net_revenue_minor"),
            pl.col("net_qty_milli").sum(),
            (_TYPE == "sale").sum().cast(pl.Int64).alias("sale_lines"),
        )
        .sort("currency", "net_revenue_minor", "sku", "name", descending=[False, True, False, False], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("currency").alias("rank"))
        .filter(pl.col("rank") <= n)
        .select("currency", "rank", "sku", "name", "category", "net_revenue_minor", "net_qty_milli", "sale_lines")
    )


def top_categories(items: pl.LazyFrame) -> pl.LazyFrame:
    """Net revenue per category (missing category: "(none)"), highest first, with its share.

    Columns: currency, category, net_revenue_minor, share.
    """
    return (
        _net_lines(items)
        .group_by("currency", pl.col("category").fill_null("(none)"))
        .agg(pl.col("net_minor").sum().alias("net_revenue_minor"))
        .with_columns((pl.col("net_revenue_minor") / pl.col("net_revenue_minor").sum().over("currency")).alias("share"))
        .sort("currency", "net_revenue_minor", "category", descending=[False, True, False])
    )


def basket_sizes(documents: pl.LazyFrame) -> pl.LazyFrame:
    """How many baskets (sales) have 1, 2, ... lines. Columns: item_count, baskets, share."""
    return (
        documents.filter(_TYPE == "sale")
        .group_by("item_count")
        .agg(pl.len().cast(pl.Int64).alias("baskets"))
        .with_columns((pl.col("baskets") / pl.col("baskets").sum()).alias("share"))
        .sort("item_count")
    )


def basket_values(documents: pl.LazyFrame, bin_minor: int = 500, bins_max: int = 40) -> pl.LazyFrame:
    """Distribution of basket values per currency in bins of `bin_minor`; the last bin
    (bins_max - 1) also holds every larger basket. Columns: currency, bin_start_minor, baskets."""
    if bin_minor <= 0 or bins_max <= 0:
        raise ValueError("bin_minor and bins_max must be positive")
    bin_index = pl.min_horizontal(pl.col("total_minor") // bin_minor, pl.lit(bins_max - 1))
    return (
        documents.filter(_TYPE == "sale")
        .group_by("currency", (bin_index * bin_minor).alias("bin_start_minor"))
        .agg(pl.len().cast(pl.Int64).alias("baskets"))
        .sort("currency", "bin_start_minor")
    )


def basket_summary(documents: pl.LazyFrame) -> pl.LazyFrame:
    """Per merchant and currency: baskets, mean lines, mean, median and 90th percentile value.

    Columns: merchant_id, currency, baskets, mean_lines, mean_value_minor, median_value_minor,
    p90_value_minor.
    """
    value = pl.col("total_minor")
    return (
        documents.filter(_TYPE == "sale")
        .group_by("merchant_id", "currency")
        .agg(
            pl.len().cast(pl.Int64).alias("baskets"),
            pl.col("item_count").mean().alias("mean_lines"),
            value.mean().alias("mean_value_minor"),
            value.median().alias("median_value_minor"),
            value.quantile(0.9, interpolation="nearest").alias("p90_value_minor"),
        )
        .sort("merchant_id", "currency")
    )


def store_comparison(documents: pl.LazyFrame) -> pl.LazyFrame:
    """Per store: net revenue, receipts, trading days, revenue per day, average basket,
    refund ratio and cash share, highest revenue per day first.

    Columns: merchant_id, store, currency, net_revenue_minor, receipts, days,
    revenue_per_day_minor, avg_basket_minor, refund_ratio, cash_share.
    """
    sales = pl.when(_TYPE == "sale").then(pl.col("total_minor")).otherwise(0).sum()
    refunds = pl.when(_TYPE == "refund").then(pl.col("total_minor")).otherwise(0).sum()
    paid = (_SIGN * (pl.col("cash_minor") + pl.col("card_minor") + pl.col("other_minor"))).sum()
    return (
        documents.group_by("merchant_id", store_key(), "currency")
        .agg(
            _NET, _RECEIPTS,
            pl.col("issued_local_date").n_unique().cast(pl.Int64).alias("days"),
            sales.alias("_sales"), refunds.alias("_refunds"),
            (_SIGN * pl.col("cash_minor")).sum().alias("_cash"), paid.alias("_paid"),
        )
        .pipe(store_ratios)
    )


def store_ratios(sums):
    """From per-store sums (net revenue, receipts, days, _sales, _refunds, _cash, _paid) to the
    comparison's ratios, highest revenue per day first (a LazyFrame or a DataFrame)."""
    return (
        sums        .with_columns(
            (pl.col("net_revenue_minor") / pl.col("days")).alias("revenue_per_day_minor"),
            pl.when(pl.col("receipts") > 0).then(pl.col("_sales") / pl.col("receipts")).alias("avg_basket_minor"),
            pl.when(pl.col("_sales") > 0).then(pl.col("_refunds") / pl.col("_sales")).alias("refund_ratio"),
            pl.when(pl.col("_paid") != 0).then(pl.col("_cash") / pl.col("_paid")).alias("cash_share"),
        )
        .drop("_sales", "_refunds", "_cash", "_paid")
        .sort("revenue_per_day_minor", "merchant_id", "store", descending=[True, False, False])
    )
