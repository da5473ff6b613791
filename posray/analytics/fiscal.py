"""Fiscal analytics over the snapshot's documents: what each merchant owes and how it was paid.

Polars LazyFrame -> LazyFrame, no I/O. Conventions (docs/analytics.md): amounts are integer
minor units of the document's currency, grouped by currency; a period is the local date printed
on the receipt (day), its ISO week (starting Monday) or its month. Net figures are sales minus
refunds. Corrections are counted and summed apart and left out of the net: the wire format does
not say in which direction a correction goes.
"""

from __future__ import annotations

import polars as pl

PERIODS = ("day", "week", "month")
_TYPE = pl.col("type")
_SIGN = pl.when(_TYPE == "sale").then(1).when(_TYPE == "refund").then(-1).otherwise(0)


def period_start(period: str) -> pl.Expr:
    """The first local date of the document's period, as column `period_start`."""
    day = pl.col("issued_local_date")
    if period == "day":
        expr = day
    elif period == "week":
        expr = day.dt.truncate("1w")
    elif period == "month":
        expr = day.dt.truncate("1mo")
    else:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    return expr.alias("period_start")


def _sum_if(value: str, doc_type: str) -> pl.Expr:
    return pl.when(_TYPE == doc_type).then(pl.col(value)).otherwise(0).sum()


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    return pl.when(denominator != 0).then(numerator / denominator).otherwise(None)


def totals(documents: pl.LazyFrame, period: str = "month") -> pl.LazyFrame:
    """Per merchant, currency and period: sales, refunds, corrections, net turnover and VAT,
    and the net amounts paid in cash, by card (and mobile wallets) and otherwise.

    Columns: merchant_id, currency, period_start, sales_count, sales_gross_minor,
    refunds_count, refunds_gross_minor, corrections_count, corrections_gross_minor,
    net_gross_minor, net_vat_minor, net_excl_vat_minor, net_cash_minor, net_card_minor,
    net_other_minor, refund_ratio (refunds / sales gross), cash_share (net cash / net paid).
    """
    signed = [(_SIGN * pl.col(c)).sum().alias(f"net_{c}") for c in ("cash_minor", "card_minor", "other_minor")]
    return (
        documents.group_by("merchant_id", "currency", period_start(period))
        .agg(
            (_TYPE == "sale").sum().cast(pl.Int64).alias("sales_count"),
            _sum_if("total_minor", "sale").alias("sales_gross_minor"),
            (_TYPE == "refund").sum().cast(pl.Int64).alias("refunds_count"),
            _sum_if("total_minor", "refund").alias("refunds_gross_minor"),
            (_TYPE == "correction").sum().cast(pl.Int64).alias("corrections_count"),
            _sum_if("total_minor", "correction").alias("corrections_gross_minor"),
            (_SIGN * pl.col("total_minor")).sum().alias("net_gross_minor"),
            (_SIGN * pl.col("vat_minor")).sum().alias("net_vat_minor"),
            *signed,
        )
        .with_columns(
            (pl.col("net_gross_minor") - pl.col("net_vat_minor")).alias("net_excl_vat_minor"),
            _ratio(pl.col("refunds_gross_minor"), pl.col("sales_gross_minor")).alias("refund_ratio"),
            _ratio(pl.col("net_cash_minor"),
                   pl.col("net_cash_minor") + pl.col("net_card_minor") + pl.col("net_other_minor")).alias("cash_share"),
        )
        .select(
            "merchant_id", "currency", "period_start", "sales_count", "sales_gross_minor",
            "refunds_count", "refunds_gross_minor", "corrections_count", "corrections_gross_minor",
            "net_gross_minor", "net_vat_minor", "net_excl_vat_minor", "net_cash_minor",
            "net_card_minor", "net_other_minor", "refund_ratio", "cash_share",
        )
        .sort("merchant_id", "currency", "period_start")
    )


def vat_by_rate(documents: pl.LazyFrame, period: str = "month") -> pl.LazyFrame:
    """Per merchant, currency, period and VAT rate: gross of sales and of refunds, and the net
    gross, VAT and amount excluding VAT (what a VAT return asks for).

    Columns: merchant_id, currency, period_start, rate_bp, sales_gross_minor,
    refunds_gross_minor, net_gross_minor, net_vat_minor, net_excl_vat_minor.
    """
    gross, vat = pl.col("vat").struct.field("gross_minor"), pl.col("vat").struct.field("vat_minor")
    return (
        documents.filter(_TYPE.is_in(("sale", "refund")))
        .select("merchant_id", "currency", period_start(period), "type", "vat")
        .explode("vat")
        .group_by("merchant_id", "currency", "period_start", pl.col("vat").struct.field("rate_bp"))
        .agg(
            pl.when(_TYPE == "sale").then(gross).otherwise(0).sum().alias("sales_gross_minor"),
            pl.when(_TYPE == "refund").then(gross).otherwise(0).sum().alias("refunds_gross_minor"),
            (_SIGN * gross).sum().alias("net_gross_minor"),
            (_SIGN * vat).sum().alias("net_vat_minor"),
        )
        .with_columns((pl.col("net_gross_minor") - pl.col("net_vat_minor")).alias("net_excl_vat_minor"))
        .sort("merchant_id", "currency", "period_start", "rate_bp")
    )


def period_vat(vat_rates: pl.LazyFrame) -> pl.LazyFrame:
    """All merchants together: per currency, period and rate, the sums of vat_by_rate."""
    return (
        vat_rates.group_by("currency", "period_start", "rate_bp")
        .agg(pl.col("^(sales|refunds|net)_.*_minor$").sum())
        .sort("currency", "period_start", "rate_bp")
    )
