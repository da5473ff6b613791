"""Charts of the integrity checks (posray.analytics.integrity), as matplotlib Figures.

Same conventions as posray.analytics.charts. A chart of a check that found nothing says so
instead of drawing empty axes.
"""

from __future__ import annotations

import zlib
from datetime import timedelta

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from posray.analytics.charts import PALETTE, legend_below, new_figure

_FLAG = PALETTE[1]


def _nothing(axes, what: str) -> None:
    axes.text(0.5, 0.5, f"No {what} found", transform=axes.transAxes, ha="center", va="center", color="#555555")
    axes.set_yticks([])


def _height(rows: int) -> tuple[float, float]:
    return (9.5, 1.3 + 0.42 * max(rows, 3))


def _rows(axes, labels: list[str]) -> None:
    """One labelled row per bar; a few bars stay thin and centred instead of filling the chart."""
    axes.set_yticks(list(range(len(labels))))
    axes.set_yticklabels(labels, fontsize=8)
    axes.set_ylim(-1 if len(labels) < 3 else -0.6, len(labels) if len(labels) < 3 else len(labels) - 0.4)


def refund_ratios(refunds: pl.DataFrame, sales_min: int) -> Figure:
    """Dots per terminal (size: sales) at its refunds per sale, one row per peer group, with
    the group's median; flagged terminals in red and named (integrity.refund_outliers)."""
    frame = refunds.filter(pl.col("sales") >= sales_min)
    groups = frame["peer_group"].unique().sort().to_list()
    figure, axes = new_figure("Refunds per sale, per terminal, against its peer group",
                              f"terminals with at least {sales_min} sales; dot size: sales; line: the group's median; "
                              "red: flagged; hollow: too few peers to judge", size=_height(len(groups)))
    if frame.is_empty():
        _nothing(axes, "terminal with enough sales")
        axes.set_xlabel("Refunds per sale (%)")
        return figure
    row = {g: i for i, g in enumerate(groups)}
    biggest = max(frame["sales"].max(), 1)
    for r in frame.sort("terminal_id").iter_rows(named=True):
        y = row[r["peer_group"]] + (zlib.crc32(r["terminal_id"].encode()) % 7 - 3) * 0.05  # spread a group's dots
        colour = _FLAG if r["flagged"] else PALETTE[0]
        axes.scatter(r["refund_ratio"], y, s=20 + 180 * r["sales"] / biggest, alpha=0.7, zorder=3,
                     color=colour if r["judged"] else "none", edgecolor="white" if r["judged"] else colour)
        if r["flagged"]:
            axes.annotate(f"{r['terminal_id']} ({r['refunds']:,} refunds / {r['sales']:,} sales)", (r["refund_ratio"], y),
                          xytext=(6, 6), textcoords="offset points", fontsize=8, color=_FLAG)
    medians = frame.group_by("peer_group").agg(pl.col("peer_median").first())
    for group, median in medians.iter_rows():
        axes.plot([median, median], [row[group] - 0.3, row[group] + 0.3], color="black", linewidth=1.2, zorder=2)
    axes.set_yticks(list(range(len(groups))))
    axes.set_yticklabels(groups, fontsize=8)
    axes.set_ylim(-0.6, len(groups) - 0.4)
    axes.set_xlim(left=0)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    axes.set_xlabel("Refunds per sale (%)")
    axes.set_ylabel("Peer group")
    axes.grid(axis="x", alpha=0.3)
    return figure


def late_uploads(late: pl.DataFrame, late_after: timedelta, top: int = 25) -> Figure:
    """One row per backlog (terminal, upload day): the span of local dates its documents were
    issued on, and the day they were uploaded (integrity.late_uploads)."""
    frame = late.sort("late_documents", descending=True).head(top).sort("uploaded_on", "terminal_id", descending=True)
    hours = late_after.total_seconds() / 3600
    figure, axes = new_figure("Late uploads: issued offline, uploaded later",
                              f"documents accepted more than {hours:g} h after issue; bar: local dates issued, "
                              "dot: upload day", size=_height(frame.height))
    if frame.is_empty():
        _nothing(axes, "late uploads")
        axes.set_xlabel("Local date")
        return figure
    for y, r in enumerate(frame.iter_rows(named=True)):
        start, end = r["first_issued_date"], r["last_issued_date"] + timedelta(days=1)
        axes.barh(y, end - start, left=start, height=0.6, color=PALETTE[3])
        axes.plot(r["uploaded_on"] + timedelta(hours=12), y, "o", color=_FLAG)
        axes.annotate(f"{r['late_documents']:,} documents, up to {r['delay_h_max']:,.0f} h late",
                      (r["uploaded_on"] + timedelta(hours=12), y), xytext=(8, -3), textcoords="offset points", fontsize=8)
    _rows(axes, frame["terminal_id"].to_list())
    first, last = frame["first_issued_date"].min(), frame["uploaded_on"].max()
    span = max((last - first).days, 7)
    axes.set_xlim(first - timedelta(days=1), last + timedelta(days=1 + span * 0.4))  # room for the labels
    axes.set_xlabel("Local date")
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    return figure


def counter_gaps(gaps: pl.DataFrame, top: int = 25) -> Figure:
    """Horizontal bars: counters missing per terminal, labelled with the number of gaps."""
    frame = (gaps.group_by("terminal_id").agg(pl.col("missing").sum(), pl.len().alias("gaps"))
             .sort("missing", "terminal_id", descending=[True, False]).head(top).reverse())
    figure, axes = new_figure("Missing document counters per terminal",
                              "counters skipped between two recorded documents: possible unreported sales",
                              size=_height(frame.height))
    if frame.is_empty():
        _nothing(axes, "counter gaps")
    else:
        axes.barh(range(frame.height), frame["missing"].to_list(), height=0.6, color=_FLAG)
        for y, (missing, runs) in enumerate(zip(frame["missing"].to_list(), frame["gaps"].to_list())):
            axes.text(missing, y, f"  in {runs} gap{'s' if runs > 1 else ''}", va="center", fontsize=8)
        _rows(axes, frame["terminal_id"].to_list())
        axes.set_xmargin(0.15)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("Counters missing")
    axes.grid(axis="x", alpha=0.3)
    return figure


def duplicates(pairs: pl.DataFrame, window: timedelta, top: int = 25) -> Figure:
    """Stacked horizontal bars per terminal: duplicate-looking pairs that chance explains
    poorly, and those it could explain (integrity.duplicate_receipts)."""
    frame = (pairs.group_by("terminal_id").agg(pl.col("unlikely_by_chance").sum().alias("unlikely"), pl.len().alias("pairs"))
             .sort("unlikely", "pairs", "terminal_id", descending=[True, True, False]).head(top).reverse())
    figure, axes = new_figure("Duplicate-looking receipts per terminal",
                              f"same items, total and payment within {window.total_seconds():g} s under different counters",
                              size=_height(frame.height))
    if frame.is_empty():
        _nothing(axes, "duplicate-looking receipts")
    else:
        ys = range(frame.height)
        unlikely = frame["unlikely"].to_list()
        axes.barh(ys, unlikely, height=0.6, color=_FLAG, label="Unlikely by chance")
        axes.barh(ys, [p - u for p, u in zip(frame["pairs"].to_list(), unlikely)], left=unlikely, height=0.6,
                  color=PALETTE[5], label="Could be chance (common basket, busy till)")
        _rows(axes, frame["terminal_id"].to_list())
        legend_below(figure, ncols=2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("Pairs of receipts")
    axes.grid(axis="x", alpha=0.3)
    return figure
