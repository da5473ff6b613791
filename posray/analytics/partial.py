"""Fiscal and retail results per partition of a snapshot's days, and their merge into the results over all days.

A partition is a set of whole days, so every Parquet file (one day, one shard) belongs to one
partition and partitions can be computed apart: in Ray tasks, on other machines. Each partition
yields small partial aggregates (sums, counts, distinct days, value histograms); merging them
gives exactly what posray.analytics.fiscal and retail give over all the rows (floats up to
summation order). Partitions must not share a day: days counted per partition are added.
"""

from __future__ import annotations

import polars as pl

from posray.analytics import fiscal, retail

FISCAL = ("totals", "vat_by_rate")
RETAIL = ("revenue_by_hour", "revenue_by_day", "revenue_by_weekday", "top_products", "top_categories",
          "basket_sizes", "basket_values", "basket_summary", "stores")
BASKET_BIN_MINOR = 500
_ALL = 2**31 - 1
_TYPE = pl.col("type")
_SIGN = pl.when(_TYPE == "sale").then(1).when(_TYPE == "refund").then(-1).otherwise(0)


def fiscal_results(documents: pl.LazyFrame, period: str = "month") -> dict[str, pl.LazyFrame]:
    """The fiscal job's results (FISCAL) over `documents`."""
    return {"totals": fiscal.totals(documents, period), "vat_by_rate": fiscal.vat_by_rate(documents, period)}


def retail_results(documents: pl.LazyFrame, items: pl.LazyFrame, top: int = 15) -> dict[str, pl.LazyFrame]:
    """The retail job's results (RETAIL) over `documents` and `items`."""
    return {
        "revenue_by_hour": retail.revenue_by_hour(documents), "revenue_by_day": retail.revenue_by_day(documents),
        "revenue_by_weekday": retail.revenue_by_weekday(documents), "top_products": retail.top_products(items, top),
        "top_categories": retail.top_categories(items), "basket_sizes": retail.basket_sizes(documents),
        "basket_values": retail.basket_values(documents, BASKET_BIN_MINOR),
        "basket_summary": retail.basket_summary(documents), "stores": retail.store_comparison(documents),
    }


def fiscal_partials(documents: pl.LazyFrame, period: str = "month") -> dict[str, pl.LazyFrame]:
    """One partition's fiscal partial aggregates: the fiscal results themselves (all sums)."""
    return fiscal_results(documents, period)


def retail_partials(documents: pl.LazyFrame, items: pl.LazyFrame) -> dict[str, pl.LazyFrame]:
    """One partition's retail partial aggregates: the results that add up (every product
    ranked), a histogram of basket values per merchant and the stores' raw sums."""
    results = retail_results(documents, items, _ALL)
    sales = documents.filter(_TYPE == "sale")
    # Per merchant and currency, one row of lists: the strings travel once, not once per value.
    results["basket_summary"] = (
        sales.group_by("merchant_id", "currency", "total_minor")
        .agg(pl.len().cast(pl.Int64).alias("baskets"), pl.col("item_count").cast(pl.Int64).sum().alias("lines"))
        .group_by("merchant_id", "currency").agg("total_minor", "baskets", "lines")
    )
    results["stores"] = documents.group_by("merchant_id", retail.store_key(), "currency").agg(
        (_SIGN * pl.col("total_minor")).sum().alias("net_revenue_minor"),
        (_TYPE == "sale").sum().cast(pl.Int64).alias("receipts"),
        pl.col("issued_local_date").n_unique().cast(pl.Int64).alias("days"),
        pl.when(_TYPE == "sale").then(pl.col("total_minor")).otherwise(0).sum().alias("_sales"),
        pl.when(_TYPE == "refund").then(pl.col("total_minor")).otherwise(0).sum().alias("_refunds"),
        (_SIGN * pl.col("cash_minor")).sum().alias("_cash"),
        (_SIGN * (pl.col("cash_minor") + pl.col("card_minor") + pl.col("other_minor"))).sum().alias("_paid"),
    )
    return results


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator != 0).then(numerator / denominator).otherwise(None)


def _stack(parts: list[dict[str, pl.DataFrame]], name: str) -> pl.DataFrame:
    return pl.concat([p[name] for p in parts], how="vertical")


def merge_fiscal(parts: list[dict[str, pl.DataFrame]]) -> dict[str, pl.DataFrame]:
    """fiscal_results over all partitions, from their fiscal_partials."""
    totals = _stack(parts, "totals")
    keys = ["merchant_id", "currency", "period_start"]
    sums = [c for c in totals.columns if c.endswith(("_count", "_minor"))]
    totals = (
        totals.group_by(keys).agg(pl.col(sums).sum())
        .with_columns(
            _ratio(pl.col("refunds_gross_minor"), pl.col("sales_gross_minor")).alias("refund_ratio"),
            _ratio(pl.col("net_cash_minor"),
                   pl.col("net_cash_minor") + pl.col("net_card_minor") + pl.col("net_other_minor")).alias("cash_share"))
        .select(totals.columns).sort(keys)
    )
    rates = _stack(parts, "vat_by_rate")
    rate_keys = keys + ["rate_bp"]
    rates = rates.group_by(rate_keys).agg(pl.exclude(rate_keys).sum()).select(rates.columns).sort(rate_keys)
    return {"totals": totals, "vat_by_rate": rates}


def merge_retail(parts: list[dict[str, pl.DataFrame]], top: int = 15) -> dict[str, pl.DataFrame]:
    """retail_results over all partitions, from their retail_partials.

    Raises:
        ValueError: two partitions hold the same day.
    """
    by_day = _stack(parts, "revenue_by_day").sort("currency", "date")
    if by_day.select(pl.struct("currency", "date").is_duplicated().any()).item():
        raise ValueError("partitions share a day: their distinct days cannot be added")
    return {
        "revenue_by_hour": _merge_hours(parts), "revenue_by_day": by_day,
        "revenue_by_weekday": _merge_weekdays(_stack(parts, "revenue_by_weekday")),
        "top_products": _merge_products(_stack(parts, "top_products"), top),
        "top_categories": _merge_categories(_stack(parts, "top_categories")),
        "basket_sizes": _merge_sizes(_stack(parts, "basket_sizes")),
        "basket_values": _stack(parts, "basket_values").group_by("currency", "bin_start_minor")
        .agg(pl.col("baskets").sum()).sort("currency", "bin_start_minor"),
        "basket_summary": _merge_baskets(_stack(parts, "basket_summary")),
        "stores": _merge_stores(_stack(parts, "stores")),
    }


def _merge_hours(parts) -> pl.DataFrame:
    hours = pl.concat([p["revenue_by_hour"].with_columns(pl.lit(i).alias("_part")) for i, p in enumerate(parts)])
    days = hours.group_by("_part", "currency").agg(pl.col("days").first()).group_by("currency").agg(pl.col("days").sum())
    return (
        hours.group_by("currency", "hour").agg(pl.col("net_revenue_minor").sum(), pl.col("receipts").sum())
        .join(days, on="currency")
        .with_columns((pl.col("net_revenue_minor") / pl.col("days")).alias("avg_daily_revenue_minor"))
        .select(parts[0]["revenue_by_hour"].columns).sort("currency", "hour")
    )


def _merge_weekdays(weekdays: pl.DataFrame) -> pl.DataFrame:
    return (
        weekdays.group_by("currency", "weekday", "weekday_name")
        .agg(pl.col("days").sum(), pl.col("net_revenue_minor").sum(), (pl.col("avg_receipts") * pl.col("days")).sum()
             .round().cast(pl.Int64).alias("receipts"))
        .with_columns((pl.col("net_revenue_minor") / pl.col("days")).alias("avg_revenue_minor"),
                      (pl.col("receipts") / pl.col("days")).alias("avg_receipts"))
        .select(weekdays.columns).sort("currency", "weekday")
    )


def _merge_products(products: pl.DataFrame, top: int) -> pl.DataFrame:
    return (
        products.group_by("currency", "sku", "name", "category")
        .agg(pl.col("net_revenue_minor").sum(), pl.col("net_qty_milli").sum(), pl.col("sale_lines").sum())
        .sort("currency", "net_revenue_minor", "sku", "name", descending=[False, True, False, False], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over("currency").alias("rank"))
        .filter(pl.col("rank") <= top).select(products.columns)
    )


def _merge_categories(categories: pl.DataFrame) -> pl.DataFrame:
    return (
        categories.group_by("currency", "category").agg(pl.col("net_revenue_minor").sum())
        .with_columns((pl.col("net_revenue_minor") / pl.col("net_revenue_minor").sum().over("currency")).alias("share"))
        .sort("currency", "net_revenue_minor", "category", descending=[False, True, False])
    )


def _merge_sizes(sizes: pl.DataFrame) -> pl.DataFrame:
    return (
        sizes.group_by("item_count").agg(pl.col("baskets").sum())
        .with_columns((pl.col("baskets") / pl.col("baskets").sum()).alias("share")).sort("item_count")
    )


def _nth_value(k: pl.Expr) -> pl.Expr:
    """Inside a group of a value histogram sorted by value: the k-th smallest value (0-based)."""
    return pl.col("total_minor").filter(pl.col("_below") + pl.col("baskets") > k).first()


def _merge_baskets(histograms: pl.DataFrame) -> pl.DataFrame:
    """Baskets, mean lines, mean, median and nearest 90th percentile (Polars' definitions) per
    merchant and currency, from their basket value histograms."""
    keys = ["merchant_id", "currency"]
    values = ["total_minor", "baskets", "lines"]
    groups = histograms.group_by(keys).agg(pl.col(values).list.explode(keep_nulls=False, empty_as_null=False))
    groups = groups.with_row_index("_group")
    n = pl.col("baskets").sum()
    # Integer keys only: a value split over partitions spans adjacent rows, which the running
    # count handles as well as one row would.
    stats = (
        groups.select("_group", *values).explode(values).sort("_group", "total_minor")
        .with_columns((pl.col("baskets").cum_sum() - pl.col("baskets")).over("_group").alias("_below"))
        .group_by("_group")
        .agg(
            n.alias("baskets"),
            (pl.col("lines").sum() / n).alias("mean_lines"),
            ((pl.col("total_minor") * pl.col("baskets")).sum() / n).alias("mean_value_minor"),
            ((_nth_value((n - 1) // 2) + _nth_value(n // 2)) / 2).alias("median_value_minor"),
            _nth_value(((n - 1).cast(pl.Float64) * 0.9 + 0.5).floor().cast(pl.Int64))
            .cast(pl.Float64).alias("p90_value_minor"),
        )
    )
    return groups.select("_group", *keys).join(stats, on="_group").drop("_group").sort(keys)


def _merge_stores(stores: pl.DataFrame) -> pl.DataFrame:
    """retail.store_comparison from its raw sums per partition."""
    summed = stores.group_by("merchant_id", "store", "currency").agg(
        pl.exclude("merchant_id", "store", "currency").sum())
    return retail.store_ratios(summed)