"""Charts of the demand forecast (posray.analytics.demand), as matplotlib Figures.

Same conventions as posray.analytics.charts: object API, amounts drawn in major units of the
currency each axis names.
"""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from posray.analytics.charts import PALETTE, date_ticks, legend_below, major, new_figure, thousands

MODEL_LABELS = {"seasonal_naive": "Seasonal naive (same weekday last week)",
                "weekday_mean": "Weekday mean (same weekday, up to 4 weeks)"}
_MODEL_COLOURS = {"seasonal_naive": PALETTE[3], "weekday_mean": PALETTE[1]}


def overview(history: pl.DataFrame, currency: str, model: str, wape: float | None = None) -> Figure:
    """Daily sales of all stores: history, the held-out week with both models' forecasts of
    it, and the chosen model's forecast of the next week (posray.analytics.demand
    .history_and_forecast)."""
    frame = history.filter(pl.col("currency") == currency).sort("date")
    dates, periods = frame["date"].to_list(), frame["period"].to_list()
    accuracy = f" (WAPE {wape:.1%} per store and category)" if wape is not None else ""
    figure, axes = new_figure("Daily sales: backtest and next week's forecast",
                              f"all stores, sale lines incl. VAT; next week: {model.replace('_', ' ')}{accuracy}")
    for name, colour in (("holdout", "#e8eef6"), ("forecast", "#f6efe2")):
        spots = [i for i, p in enumerate(periods) if p == name]
        if spots:
            axes.axvspan(spots[0] - 0.5, spots[-1] + 0.5, color=colour, zorder=0)
    xs = range(len(dates))
    actual = [major(v, currency) if v is not None else 0 for v in frame["actual_minor"]]
    axes.bar(xs, actual, color=[PALETTE[5] if p == "history" else PALETTE[0] for p in periods], width=0.75,
             zorder=2, label="Sold (grey: history, blue: held-out week)")
    forecast = frame["forecast_minor"].to_list()
    axes.bar(xs, [major(v or 0, currency) for v in forecast], width=0.75, zorder=2, color="none",
             edgecolor=_MODEL_COLOURS[model], hatch="//", label="Forecast of next week")
    for name in MODEL_LABELS:
        points = [(i, major(v, currency)) for i, (p, v) in enumerate(zip(periods, frame[name]))
                  if p == "holdout" and v is not None]
        if points:
            axes.plot(*zip(*points), marker="o", color=_MODEL_COLOURS[name], zorder=3,
                      label=f"Backtest: {MODEL_LABELS[name]}")
    date_ticks(axes, dates)
    axes.set_xlabel("Date (local; shaded: held-out week, then forecast week)")
    axes.set_ylabel(f"Sold per day ({currency})")
    thousands(axes.yaxis)
    axes.grid(axis="y", alpha=0.3, zorder=1)
    legend_below(figure, ncols=2)
    return figure


def error_by_category(errors: pl.DataFrame, currency: str, top: int = 20) -> Figure:
    """Grouped horizontal bars: WAPE of each model per category over the held-out week
    (errors of the store-category series, from forecast_errors(..., by=[currency, category]))."""
    frame = errors.filter(pl.col("currency") == currency)
    order = (frame.group_by("category").agg(pl.col("actual_minor").max())
             .sort("actual_minor", descending=True).head(top).reverse())
    categories, sold = order["category"].to_list(), order["actual_minor"].to_list()
    figure, axes = new_figure("Forecast error per category, held-out week",
                              "WAPE of the daily store-category forecasts; label: amount sold that week",
                              size=(9.5, 1.2 + 0.42 * max(len(categories), 3)))
    height = 0.38
    for offset, name in ((-height / 2, "seasonal_naive"), (height / 2, "weekday_mean")):
        wape = dict(frame.filter(pl.col("model") == name).select("category", "wape").iter_rows())
        axes.barh([i + offset for i in range(len(categories))], [wape.get(c) or 0 for c in categories],
                  height=height, color=_MODEL_COLOURS[name], label=MODEL_LABELS[name])
    axes.set_yticks(list(range(len(categories))))
    axes.set_yticklabels([f"{c} ({major(s, currency):,.0f} {currency})" for c, s in zip(categories, sold)], fontsize=8)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("WAPE: sum of absolute daily errors / amount sold (%)")
    axes.grid(axis="x", alpha=0.3)
    legend_below(figure, ncols=2)
    return figure


def next_week_by_store(outlook: pl.DataFrame, currency: str, top: int = 20) -> Figure:
    """Horizontal bars per store: next week's forecast, against what it sold in the held-out
    week, labelled with the model's store-level error (demand.store_outlook)."""
    frame = outlook.filter(pl.col("currency") == currency).head(top).reverse()
    figure, axes = new_figure(f"Next week's sales forecast per store (top {frame.height})",
                              "all categories; grey: sold in the held-out week; label: WAPE of that store's backtest",
                              size=(9.5, 1.2 + 0.42 * max(frame.height, 3)))
    ys = range(frame.height)
    forecast = [major(v, currency) for v in frame["forecast_minor"]]
    axes.barh(ys, [major(v or 0, currency) for v in frame["held_out_minor"]], height=0.8, color="#dddddd",
              label="Sold in the held-out week")
    axes.barh(ys, forecast, height=0.45, color=PALETTE[0], label="Forecast of next week")
    for y, (value, wape) in enumerate(zip(forecast, frame["wape"].to_list())):
        axes.text(value, y, f"  WAPE {wape:.0%}" if wape is not None else "", va="center", fontsize=7)
    axes.set_yticks(list(ys))
    axes.set_yticklabels(frame["store"].to_list(), fontsize=8)
    axes.set_xlabel(f"Sales per week incl. VAT ({currency})")
    thousands(axes.xaxis)
    axes.grid(axis="x", alpha=0.3)
    legend_below(figure, ncols=2)
    return figure
