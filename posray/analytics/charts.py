"""Charts of the fiscal and retail results, as matplotlib Figures (the caller saves them).

Amounts arrive in minor units and are drawn in major units of their currency, which every
axis names. Uses matplotlib's object API (no pyplot), so no global state and no display.
"""

from __future__ import annotations

import io
from datetime import date

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

# ISO 4217 currencies whose minor unit is not the hundredth.
_MINOR_DIGITS = {"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
                 "BIF": 0, "CLP": 0, "ISK": 0, "JPY": 0, "KRW": 0, "PYG": 0, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0}
_VAT_COLOURS = {0: "#9e9e9e", 500: "#8fbc8f", 1000: "#4682b4", 1300: "#daa520", 2000: "#c0504d"}
PALETTE = ("#4682b4", "#c0504d", "#8fbc8f", "#daa520", "#7f6a93", "#9e9e9e")
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def major(amount_minor, currency: str) -> float:
    """Minor units as a float in major units (cents -> euros)."""
    return amount_minor / 10 ** _MINOR_DIGITS.get(currency, 2)


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG (110 dpi, tight), what the jobs write and the reports embed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def new_figure(title: str, subtitle: str = "", size=(9.5, 5.0)):
    """A Figure and its one Axes in the house style: bold title left, grey subtitle under it."""
    figure = Figure(figsize=size, layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=12, fontweight="bold", pad=20 if subtitle else 8)
    if subtitle:
        # Offset in points, not in axes fractions, so tall charts keep the same gap under the title.
        axes.annotate(subtitle, xy=(0, 1), xycoords="axes fraction", xytext=(0, 5), textcoords="offset points",
                      fontsize=9, color="#555555", va="bottom")
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def legend_below(figure: Figure, ncols: int) -> None:
    """The figure's legend in one row under the plot, without a frame."""
    figure.legend(loc="outside lower center", ncols=ncols, frameon=False)


def thousands(axis) -> None:
    """Tick labels with thousands separators and no decimals."""
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _rate_label(rate_bp: int) -> str:
    return f"VAT {rate_bp / 100:g} %"


def date_ticks(axes, dates: list[date]) -> None:
    """ISO date labels for bars at positions 0..n-1, at most about 30 of them."""
    step = max(1, (len(dates) + 29) // 30)  # at most about 30 labels
    axes.set_xticks(range(0, len(dates), step))
    axes.set_xticklabels([d.isoformat() for d in dates[::step]], rotation=45, ha="right", fontsize=8)


def turnover_by_vat_rate(period_vat: pl.DataFrame, currency: str, period: str, scope: str = "all merchants") -> Figure:
    """Stacked bars: net turnover (gross, sales minus refunds) per period, split by VAT rate."""
    return _stacked_by_rate(period_vat, currency, period, "net_gross_minor",
                            f"Net turnover by VAT rate, per {period}", f"gross, sales minus refunds; {scope}",
                            f"Net turnover incl. VAT ({currency})")


def vat_by_period(period_vat: pl.DataFrame, currency: str, period: str, scope: str = "all merchants") -> Figure:
    """Stacked bars: VAT collected (net of refunds) per period, split by rate."""
    return _stacked_by_rate(period_vat, currency, period, "net_vat_minor",
                            f"VAT collected per {period}", f"net of refunds; {scope}",
                            f"VAT ({currency})")


def _stacked_by_rate(frame: pl.DataFrame, currency: str, period: str, column: str, title: str,
                     subtitle: str, ylabel: str) -> Figure:
    frame = frame.filter(pl.col("currency") == currency)
    periods = frame["period_start"].unique().sort().to_list()
    figure, axes = new_figure(title, subtitle)
    bottom = [0.0] * len(periods)
    for rate in frame["rate_bp"].unique().sort().to_list():
        by_period = dict(frame.filter(pl.col("rate_bp") == rate).select("period_start", column).iter_rows())
        heights = [major(by_period.get(p, 0), currency) for p in periods]
        axes.bar(range(len(periods)), heights, bottom=bottom, label=_rate_label(rate),
                 color=_VAT_COLOURS.get(rate), width=0.7)
        bottom = [b + h for b, h in zip(bottom, heights)]
    date_ticks(axes, periods)
    axes.set_xlabel("Date (local)" if period == "day" else f"{period.capitalize()} starting (local date)")
    axes.set_ylabel(ylabel)
    thousands(axes.yaxis)
    axes.grid(axis="y", alpha=0.3)
    legend_below(figure, ncols=5)
    return figure


def merchant_turnover(totals: pl.DataFrame, currency: str, top: int = 15) -> Figure:
    """Horizontal bars per merchant: sales and refunds (gross) over the whole selection."""
    merchants = (
        totals.filter(pl.col("currency") == currency)
        .group_by("merchant_id")
        .agg(pl.col("sales_gross_minor", "refunds_gross_minor", "net_gross_minor").sum())
        .sort("net_gross_minor", descending=True).head(top).reverse()
    )
    figure, axes = new_figure(f"Turnover per merchant (top {min(top, merchants.height)})",
                           "gross; refunds drawn to the left", size=(9.5, 0.9 + 0.38 * max(merchants.height, 3)))
    ys = range(merchants.height)
    axes.barh(ys, [major(v, currency) for v in merchants["sales_gross_minor"]], color=PALETTE[0], label="Sales")
    axes.barh(ys, [-major(v, currency) for v in merchants["refunds_gross_minor"]], color=PALETTE[1], label="Refunds")
    axes.set_yticks(list(ys))
    axes.set_yticklabels(merchants["merchant_id"].to_list(), fontsize=8)
    axes.set_xlabel(f"Gross amount incl. VAT ({currency})")
    thousands(axes.xaxis)
    axes.axvline(0, color="black", linewidth=0.8)
    axes.grid(axis="x", alpha=0.3)
    axes.legend(frameon=False, loc="lower right")
    return figure


def payment_mix(totals: pl.DataFrame, currency: str, top: int = 15) -> Figure:
    """100 % horizontal bars per merchant: shares of net amounts paid in cash, card, other."""
    mix = (
        totals.filter(pl.col("currency") == currency)
        .group_by("merchant_id")
        .agg(pl.col("net_cash_minor", "net_card_minor", "net_other_minor", "net_gross_minor").sum())
        .sort("net_gross_minor", descending=True).head(top).reverse()
    )
    paid = (mix["net_cash_minor"] + mix["net_card_minor"] + mix["net_other_minor"]).to_list()
    figure, axes = new_figure("Cash vs card, per merchant", "share of net amount paid (sales minus refunds)",
                           size=(9.5, 0.9 + 0.38 * max(mix.height, 3)))
    left = [0.0] * mix.height
    for column, label, colour in (("net_cash_minor", "Cash", PALETTE[3]), ("net_card_minor", "Card and mobile", PALETTE[0]),
                                  ("net_other_minor", "Voucher and other", PALETTE[5])):
        shares = [v / p if p else 0.0 for v, p in zip(mix[column].to_list(), paid)]
        axes.barh(range(mix.height), shares, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, shares)]
    axes.set_yticks(list(range(mix.height)))
    axes.set_yticklabels(mix["merchant_id"].to_list(), fontsize=8)
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("Share of net amount paid (%)")
    legend_below(figure, ncols=3)
    return figure


def revenue_by_hour(by_hour: pl.DataFrame, currency: str) -> Figure:
    """Bars: average net revenue per trading day in each local hour."""
    frame = by_hour.filter(pl.col("currency") == currency)
    days = frame["days"].max() if frame.height else 0
    figure, axes = new_figure("Revenue by hour of day", f"average per trading day over {days} days, net of refunds")
    axes.bar(frame["hour"].to_list(), [major(v, currency) for v in frame["avg_daily_revenue_minor"]],
             color=PALETTE[0], width=0.8)
    axes.set_xticks(range(0, 24))
    axes.set_xlim(-0.6, 23.6)
    axes.set_xlabel("Hour of day (local time, hour starting)")
    axes.set_ylabel(f"Net revenue per day ({currency})")
    thousands(axes.yaxis)
    axes.grid(axis="y", alpha=0.3)
    return figure


def revenue_by_day(by_day: pl.DataFrame, currency: str) -> Figure:
    """Bars per date (weekends shaded) of net revenue, with refunds below the axis."""
    frame = by_day.filter(pl.col("currency") == currency).sort("date")
    dates = frame["date"].to_list()
    figure, axes = new_figure("Revenue per day", "net of refunds; refunds drawn below zero; weekends shaded")
    for i, d in enumerate(dates):
        if d.weekday() >= 5:
            axes.axvspan(i - 0.5, i + 0.5, color="#eeeeee", zorder=0)
    axes.bar(range(len(dates)), [major(v, currency) for v in frame["net_revenue_minor"]], color=PALETTE[0],
             label="Net revenue", zorder=2)
    axes.bar(range(len(dates)), [-major(v, currency) for v in frame["refunds_minor"]], color=PALETTE[1],
             label="Refunds", zorder=2)
    date_ticks(axes, dates)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xlabel("Date (local)")
    axes.set_ylabel(f"Amount incl. VAT ({currency})")
    thousands(axes.yaxis)
    axes.grid(axis="y", alpha=0.3, zorder=1)
    axes.legend(frameon=False, loc="upper left")
    return figure


def revenue_by_weekday(by_weekday: pl.DataFrame, currency: str) -> Figure:
    """Bars: average net revenue per trading day of each weekday."""
    frame = by_weekday.filter(pl.col("currency") == currency)
    values = dict(zip(frame["weekday"].to_list(), frame["avg_revenue_minor"].to_list()))
    figure, axes = new_figure("Revenue by weekday", "average per trading day, net of refunds")
    axes.bar(WEEKDAY_NAMES, [major(values.get(d, 0), currency) for d in range(1, 8)], color=PALETTE[0])
    axes.set_xlabel("Weekday")
    axes.set_ylabel(f"Net revenue per day ({currency})")
    thousands(axes.yaxis)
    axes.grid(axis="y", alpha=0.3)
    return figure


def top_products(products: pl.DataFrame, currency: str) -> Figure:
    """Horizontal bars: the best-selling products by net revenue."""
    frame = products.filter(pl.col("currency") == currency).sort("rank", descending=True)
    labels = [f"{n} ({c})" if c else n for n, c in zip(frame["name"].to_list(), frame["category"].to_list())]
    figure, axes = new_figure(f"Top {frame.height} products by revenue", "net of refunds, all stores in the selection",
                           size=(9.5, 0.9 + 0.38 * max(frame.height, 3)))
    axes.barh(range(frame.height), [major(v, currency) for v in frame["net_revenue_minor"]], color=PALETTE[0])
    axes.set_yticks(list(range(frame.height)))
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_xlabel(f"Net revenue incl. VAT ({currency})")
    thousands(axes.xaxis)
    axes.grid(axis="x", alpha=0.3)
    return figure


def categories(by_category: pl.DataFrame, currency: str, top: int = 20) -> Figure:
    """Horizontal bars: net revenue per product category, with its share."""
    frame = by_category.filter(pl.col("currency") == currency).head(top).reverse()
    figure, axes = new_figure("Revenue by category", "net of refunds; share of total in brackets",
                           size=(9.5, 0.9 + 0.38 * max(frame.height, 3)))
    axes.barh(range(frame.height), [major(v, currency) for v in frame["net_revenue_minor"]], color=PALETTE[2])
    axes.set_yticks(list(range(frame.height)))
    axes.set_yticklabels([f"{c} ({s:.0%})" for c, s in zip(frame["category"].to_list(), frame["share"].to_list())], fontsize=8)
    axes.set_xlabel(f"Net revenue incl. VAT ({currency})")
    thousands(axes.xaxis)
    axes.grid(axis="x", alpha=0.3)
    return figure


def basket_sizes(sizes: pl.DataFrame) -> Figure:
    """Bars: how many baskets have 1, 2, ... lines."""
    figure, axes = new_figure("Basket size", "sales only; lines per receipt")
    axes.bar(sizes["item_count"].to_list(), sizes["baskets"].to_list(), color=PALETTE[4])
    axes.set_xlabel("Lines on the receipt")
    axes.set_ylabel("Receipts")
    thousands(axes.yaxis)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(axis="y", alpha=0.3)
    return figure


def basket_values(values: pl.DataFrame, currency: str, bin_minor: int) -> Figure:
    """Histogram bars of basket values; the last bar holds every larger basket."""
    frame = values.filter(pl.col("currency") == currency)
    width = major(bin_minor, currency)
    starts = [major(v, currency) for v in frame["bin_start_minor"]]
    figure, axes = new_figure("Basket value", f"sales only; bins of {width:,.2f} {currency}, last bin open-ended")
    counts = frame["baskets"].to_list()
    axes.bar(starts, counts, width=width * 0.9, align="edge", color=PALETTE[4])
    if starts:
        axes.annotate(f"{starts[-1]:,.0f}+", (starts[-1] + width / 2, counts[-1]), ha="center", va="bottom", fontsize=8)
    axes.set_xlabel(f"Receipt total incl. VAT ({currency})")
    axes.set_ylabel("Receipts")
    thousands(axes.yaxis)
    thousands(axes.xaxis)
    axes.grid(axis="y", alpha=0.3)
    return figure


def stores(comparison: pl.DataFrame, currency: str, top: int = 20) -> Figure:
    """Horizontal bars: net revenue per trading day of each store, annotated with basket and refunds."""
    frame = comparison.filter(pl.col("currency") == currency).head(top).reverse()
    figure, axes = new_figure(f"Stores by revenue per trading day (top {frame.height})",
                           "net of refunds; label: average basket, refund ratio",
                           size=(9.5, 0.9 + 0.38 * max(frame.height, 3)))
    values = [major(v, currency) for v in frame["revenue_per_day_minor"]]
    axes.barh(range(frame.height), values, color=PALETTE[0])
    for y, (value, basket, refunds) in enumerate(zip(values, frame["avg_basket_minor"].to_list(),
                                                    frame["refund_ratio"].to_list())):
        note = f" {major(basket or 0, currency):,.2f} {currency}/basket, {refunds or 0:.1%} refunds"
        axes.text(value, y, note, va="center", fontsize=7)
    axes.set_yticks(list(range(frame.height)))
    axes.set_yticklabels(frame["store"].to_list(), fontsize=8)
    axes.set_xlabel(f"Net revenue per trading day ({currency})")
    axes.set_xlim(0, max(values, default=1) * 1.45)
    thousands(axes.xaxis)
    axes.grid(axis="x", alpha=0.3)
    return figure
