"""Render a Grafana dashboard's time-series panels to one PNG, from its own PromQL, without Grafana.

Usage:
    python scripts/render_dashboard.py --prometheus http://127.0.0.1:9090 \\
        --start 2026-11-26T04:35:00Z --end 2026-11-26T04:41:00Z \\
        [--dashboard docs/grafana/posray-dashboard.json] [--out docs/grafana/posray-dashboard.png] \\
        [--scrape-interval 2s] [--var SessionName=session_...] [--rate-interval 40s]

    (or --last 10m instead of --start/--end)

Every panel's targets are sent to the Prometheus HTTP API (`/api/v1/query_range`) exactly as
written in the dashboard, after substituting Grafana's variables the way Grafana would:

- template variables (`$SessionName`, `${SessionName}`, `[[SessionName]]`): `--var NAME=VALUE`,
  else the variable's `allValue` when it includes "All" (`.*` if it has none), else its current
  value; the `datasource` variable is not used in expressions;
- `$__interval`: the panel's min interval (`"interval"`), at least the query step;
- `$__rate_interval`: Grafana's rule, max($__interval + scrape interval, 4 x scrape interval),
  where the scrape interval is the panel's min interval if set, else `--scrape-interval`
  (the data source's setting); `--rate-interval` overrides it;
- `$__range`: the length of the time range.

The panels are drawn where the dashboard's gridPos puts them (24 columns), with the panel's
title, unit (fieldConfig.defaults.unit), min, stacking, fill opacity and a Grafana-style legend
table (the legendFormat names and the legend's calcs: last non-null, max, mean, ...).
Only what posray's dashboard uses is supported: `timeseries` panels and rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

GRID_COLUMNS = 24
REPO = Path(__file__).resolve().parents[1]
DEFAULT_DASHBOARD = REPO / "docs" / "grafana" / "posray-dashboard.json"
DEFAULT_OUT = REPO / "docs" / "grafana" / "posray-dashboard.png"
MAX_POINTS = 400  # Grafana asks for about one point per pixel; a few hundred are plenty here

# Grafana's dark theme and its classic palette.
THEME = {
    "page": "#111217", "panel": "#181b1f", "border": "#2b2f36", "text": "#ccccdc",
    "muted": "#8e8e99", "grid": "#2c3036", "title": "#e6e6f0",
}
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0",
           "#37872d", "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477"]
CALC_NAMES = {"lastNotNull": "Last *", "last": "Last", "max": "Max", "min": "Min", "mean": "Mean",
              "firstNotNull": "First *", "sum": "Total"}


# ----------------------------------------------------------------------------------------------
# Pure parts: durations, variables, legends, units, layout (tested in tests/unit).
# ----------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration: "500ms", "10s", "1m30s", "2h"; ">10s" as 10 s."""
    text = text.strip().lstrip("><=")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """A duration PromQL accepts: whole seconds ("40s"), milliseconds below one second."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    return f"{math.ceil(seconds - 1e-9)}s"


def rate_interval_s(interval_s: float, scrape_interval_s: float) -> float:
    """Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval)."""
    return max(interval_s + scrape_interval_s, 4 * scrape_interval_s)


def query_step_s(range_s: float, min_interval_s: float = 0.0, max_points: int = MAX_POINTS) -> float:
    """The query step ($__interval): range / points, at least the panel's min interval, >= 1 s."""
    return max(1.0, min_interval_s, math.ceil(range_s / max_points))


TICK_STEPS_S = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


def tick_seconds(range_s: float, max_ticks: int = 10) -> int:
    """Seconds between time-axis ticks: the smallest round step giving at most max_ticks ticks."""
    return next((step for step in TICK_STEPS_S if range_s / step <= max_ticks), TICK_STEPS_S[-1])


def template_values(dashboard: dict, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Each template variable's value as it goes into a PromQL expression."""
    overrides = overrides or {}
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable.get("name")
        if not name or variable.get("type") == "datasource":
            continue
        if name in overrides:
            values[name] = overrides[name]
            continue
        current = variable.get("current") or {}
        value = current.get("value")
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else "(" + "|".join(map(str, value)) + ")"
        if variable.get("includeAll") and (value in (None, "", "$__all")):
            value = variable.get("allValue") or ".*"
        values[name] = "" if value is None else str(value)
    for name, value in overrides.items():
        values.setdefault(name, value)
    return values


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace $name, ${name}, ${name:format} and [[name]] by their values (longest name first).

    An unknown variable is left as it is, so that Prometheus reports the mistake.
    """
    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in variables:
            return variables[name]
        # `$__rate_intervalx` is not a thing, but `$SessionNameFoo` could be `$SessionName` + "Foo":
        # Grafana matches the longest known name at the start, and so does this.
        if match.group(3):
            for known in sorted(variables, key=len, reverse=True):
                if name.startswith(known):
                    return variables[known] + name[len(known):]
        return match.group(0)

    return _VARIABLE.sub(replace, expr)


def builtin_variables(range_s: float, step_s: float, panel_interval_s: float | None,
                      scrape_interval_s: float, rate_interval: float | None = None) -> dict[str, str]:
    """$__interval, $__rate_interval, $__range (and their _ms/_s forms) for one panel."""
    interval = max(step_s, panel_interval_s or 0.0)
    scrape = panel_interval_s or scrape_interval_s
    rate = rate_interval if rate_interval is not None else rate_interval_s(interval, scrape)
    return {
        "__interval": format_duration(interval), "__interval_ms": str(round(interval * 1000)),
        "__rate_interval": format_duration(rate), "__rate_interval_ms": str(round(rate * 1000)),
        "__range": format_duration(range_s), "__range_s": str(round(range_s)),
        "__range_ms": str(round(range_s * 1000)),
    }


_LEGEND = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def legend_label(legend_format: str | None, labels: dict[str, str]) -> str:
    """Grafana's legend: {{label}} filled in; without a format, the series' labels."""
    if legend_format and legend_format != "__auto":
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend_format).strip()
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    name = labels.get("__name__", "")
    if not shown:
        return name or "value"
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"


def _scaled(value: float, steps: list[tuple[float, str]], digits: int) -> str:
    for factor, suffix in steps:
        if abs(value) >= factor:
            return f"{_trim(value / factor, digits)}{suffix}"
    return _trim(value, digits)


def _trim(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


SI = [(1e12, " T"), (1e9, " B"), (1e6, " Mil"), (1e3, " K")]


def format_value(value: float | None, unit: str | None, digits: int = 2) -> str:
    """A value as Grafana shows it for the units posray uses (ms, s, short, reqps, count:X, ...)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    unit = unit or "short"
    if unit == "ms":
        if abs(value) >= 60_000:
            return f"{_trim(value / 60_000, digits)} min"
        if abs(value) >= 1000:
            return f"{_trim(value / 1000, digits)} s"
        return f"{_trim(value, digits)} ms"
    if unit == "s":
        if abs(value) >= 3600:
            return f"{_trim(value / 3600, digits)} hour"
        if abs(value) >= 60:
            return f"{_trim(value / 60, digits)} min"
        return f"{_trim(value, digits)} s"
    if unit in ("reqps", "rps"):
        return f"{_scaled(value, SI, digits)} req/s".replace("  ", " ")
    if unit == "cps":
        return f"{_scaled(value, SI, digits)} c/s".replace("  ", " ")
    if unit == "percentunit":
        return f"{_trim(value * 100, digits)}%"
    if unit == "percent":
        return f"{_trim(value, digits)}%"
    if unit == "bytes":
        return _scaled(value, [(2**40, " TiB"), (2**30, " GiB"), (2**20, " MiB"), (2**10, " KiB")],
                       digits) + ("" if abs(value) >= 1024 else " B")
    if unit.startswith(("count:", "suffix:")):
        kind, _, suffix = unit.partition(":")
        number = _scaled(value, SI, digits) if kind == "count" else _trim(value, digits)
        return f"{number} {suffix}".replace("  ", " ")
    if unit.startswith("prefix:"):
        return unit.partition(":")[2] + _trim(value, digits)
    return _scaled(value, SI, digits).strip()


@dataclass(frozen=True)
class Layout:
    """Where the grid goes on the page, in inches."""

    width_in: float = 20.0
    row_in: float = 0.46          # one grid unit of height
    header_in: float = 1.05
    footer_in: float = 0.35
    margin_in: float = 0.16
    gap_in: float = 0.12          # between panels

    def page_height_in(self, rows: int) -> float:
        return self.header_in + rows * self.row_in + self.footer_in

    def rect(self, grid_pos: dict, rows: int) -> tuple[float, float, float, float]:
        """(left, bottom, width, height) of a gridPos as fractions of the page (matplotlib's)."""
        page_h = self.page_height_in(rows)
        column_in = (self.width_in - 2 * self.margin_in) / GRID_COLUMNS
        x, y = grid_pos.get("x", 0), grid_pos.get("y", 0)
        w, h = grid_pos.get("w", 12), grid_pos.get("h", 8)
        left = self.margin_in + x * column_in + self.gap_in / 2
        width = w * column_in - self.gap_in
        top = self.header_in + y * self.row_in + self.gap_in / 2
        height = h * self.row_in - self.gap_in
        bottom = page_h - top - height
        return left / self.width_in, bottom / page_h, width / self.width_in, height / page_h


def grid_rows(panels: list[dict]) -> int:
    """The dashboard's height in grid units: the lowest panel edge."""
    return max((p.get("gridPos", {}).get("y", 0) + p.get("gridPos", {}).get("h", 8) for p in panels),
               default=0)


def flatten_panels(dashboard: dict) -> list[dict]:
    """Top-level panels plus those inside collapsed rows (Grafana nests them there)."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
    return out


def legend_calc(calc: str, values: list[float]) -> float | None:
    """One of the legend's reducers over a series (None when it has no number)."""
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    if not numbers:
        return None
    if calc in ("lastNotNull", "last"):
        return numbers[-1]
    if calc in ("firstNotNull", "first"):
        return numbers[0]
    if calc == "max":
        return max(numbers)
    if calc == "min":
        return min(numbers)
    if calc == "mean":
        return sum(numbers) / len(numbers)
    if calc == "sum":
        return sum(numbers)
    raise ValueError(f"unsupported legend calc {calc!r}")


def parse_time(text: str) -> float:
    """Unix seconds from "now", "now-10m", a Unix timestamp or an ISO 8601 time (UTC if no zone)."""
    now = dt.datetime.now(dt.timezone.utc).timestamp()
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - parse_duration(text[4:])
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


# ----------------------------------------------------------------------------------------------
# Prometheus.
# ----------------------------------------------------------------------------------------------

@dataclass
class Series:
    label: str
    times: list[float]
    values: list[float]
    ref: str = ""


@dataclass
class PanelData:
    series: list[Series] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


def query_range(prometheus: str, expr: str, start: float, end: float, step: float,
                timeout_s: float = 30) -> list[dict]:
    """The `result` of /api/v1/query_range (a matrix); raises RuntimeError with Prometheus' error."""
    params = urllib.parse.urlencode({"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                     "step": f"{step:g}"})
    url = prometheus.rstrip("/") + "/api/v1/query_range?" + params
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


def fetch_panel(prometheus: str, panel: dict, variables: dict[str, str], start: float, end: float,
                scrape_interval_s: float, rate_interval: float | None) -> PanelData:
    range_s = end - start
    panel_interval = parse_duration(panel["interval"]) if panel.get("interval") else None
    step = query_step_s(range_s, panel_interval or 0.0)
    builtins = builtin_variables(range_s, step, panel_interval, scrape_interval_s, rate_interval)
    data = PanelData()
    for target in panel.get("targets", []):
        if target.get("hide") or not target.get("expr"):
            continue
        expr = substitute(target["expr"], {**variables, **builtins})
        data.queries.append(expr)
        try:
            result = query_range(prometheus, expr, start, end, step)
        except (RuntimeError, OSError) as e:
            data.errors.append(f"{target.get('refId', '?')}: {e}")
            continue
        for item in sorted(result, key=lambda r: sorted(r["metric"].items())):
            times = [float(t) for t, _ in item["values"]]
            values = [float(v) for _, v in item["values"]]
            data.series.append(Series(legend_label(target.get("legendFormat"), item["metric"]),
                                      times, values, target.get("refId", "")))
    return data


# ----------------------------------------------------------------------------------------------
# Drawing.
# ----------------------------------------------------------------------------------------------

def _fill_gaps(times: list[float], values: list[float], step: float) -> tuple[list, list]:
    """Insert NaN where Prometheus returned no point, so lines break like Grafana's."""
    out_t, out_v = [], []
    for i, (t, v) in enumerate(zip(times, values)):
        if i and t - times[i - 1] > 1.5 * step:
            out_t.append(times[i - 1] + step)
            out_v.append(float("nan"))
        out_t.append(t)
        out_v.append(v)
    return out_t, out_v


def draw_dashboard(dashboard: dict, data: dict[int, PanelData], start: float, end: float, out: Path,
                   subtitle: str, footer: str, layout: Layout = Layout(), dpi: int = 110) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    panels = flatten_panels(dashboard)
    rows = grid_rows(panels)
    page_h = layout.page_height_in(rows)
    fig = plt.figure(figsize=(layout.width_in, page_h), facecolor=THEME["page"])
    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9})

    def inch_x(inches):
        return inches / layout.width_in

    def inch_y(inches):
        return inches / page_h

    # Header: the dashboard's title, its description, the time range and the variables.
    fig.text(inch_x(layout.margin_in + 0.05), 1 - inch_y(0.38), dashboard.get("title", "dashboard"),
             color=THEME["title"], fontsize=19, fontweight="bold", va="center")
    fig.text(inch_x(layout.margin_in + 0.05), 1 - inch_y(0.75), dashboard.get("description", ""),
             color=THEME["muted"], fontsize=10, va="center")
    span = (f"{_utc(start):%Y-%m-%d %H:%M:%S} to {_utc(end):%H:%M:%S} UTC "
            f"({format_duration(end - start)})")
    fig.text(1 - inch_x(layout.margin_in + 0.05), 1 - inch_y(0.38), span, color=THEME["text"],
             fontsize=12, ha="right", va="center")
    fig.text(1 - inch_x(layout.margin_in + 0.05), 1 - inch_y(0.75), subtitle, color=THEME["muted"],
             fontsize=9.5, ha="right", va="center")
    fig.text(inch_x(layout.margin_in + 0.05), inch_y(layout.footer_in / 2), footer,
             color=THEME["muted"], fontsize=8.5, va="center")

    for panel in panels:
        left, bottom, width, height = layout.rect(panel.get("gridPos", {}), rows)
        if panel.get("type") == "row":
            fig.text(left + inch_x(0.05), bottom + height / 2, panel.get("title", ""),
                     color=THEME["title"], fontsize=12, fontweight="bold", va="center")
            continue
        fig.add_artist(FancyBboxPatch((left, bottom), width, height, transform=fig.transFigure,
                                      boxstyle="round,pad=0,rounding_size=0.002",
                                      facecolor=THEME["panel"], edgecolor=THEME["border"],
                                      linewidth=0.8, zorder=-10))
        fig.text(left + inch_x(0.12), bottom + height - inch_y(0.2), panel.get("title", ""),
                 color=THEME["title"], fontsize=11, fontweight="bold", va="center")
        panel_data = data.get(panel.get("id"), PanelData())
        if panel.get("type") != "timeseries":
            fig.text(left + width / 2, bottom + height / 2, f"panel type {panel.get('type')!r} not rendered",
                     color=THEME["muted"], ha="center", va="center")
            continue
        _draw_timeseries(fig, panel, panel_data, (left, bottom, width, height), start, end,
                         inch_x, inch_y, mdates, FuncFormatter, MaxNLocator)

    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor=THEME["page"])
    plt.close(fig)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


def _draw_timeseries(fig, panel, panel_data: PanelData, rect, start, end, inch_x, inch_y,
                     mdates, FuncFormatter, MaxNLocator) -> None:
    left, bottom, width, height = rect
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    unit = defaults.get("unit")
    custom = defaults.get("custom", {})
    stacked = custom.get("stacking", {}).get("mode", "none") not in ("none", None)
    fill = custom.get("fillOpacity", 0) / 100
    line_width = custom.get("lineWidth", 1) * 1.1
    legend = panel.get("options", {}).get("legend", {})
    show_legend = legend.get("showLegend", True) and legend.get("displayMode") != "hidden"
    calcs = legend.get("calcs", [])
    series = panel_data.series

    # Legend table under the graph: one row per series, two columns of rows if they are many.
    row_in = 0.185
    columns = 1 if len(series) <= 5 else 2
    legend_rows = math.ceil(len(series) / columns) if show_legend and series else 0
    legend_h = inch_y(0.1 + (legend_rows + 1) * row_in) if legend_rows else 0
    title_h = inch_y(0.42)
    axis_left, axis_bottom = left + inch_x(0.62), bottom + legend_h + inch_y(0.3)
    axes = fig.add_axes((axis_left, axis_bottom, left + width - inch_x(0.14) - axis_left,
                         bottom + height - title_h - axis_bottom))
    axes.set_facecolor(THEME["panel"])
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.grid(True, color=THEME["grid"], linewidth=0.6)
    axes.tick_params(colors=THEME["muted"], labelsize=8, length=0)
    axes.tick_params(axis="x", pad=6)
    axes.tick_params(axis="y", pad=6)
    axes.set_xlim(_utc(start), _utc(end))
    tick = tick_seconds(end - start)
    if tick < 60:
        locator = mdates.SecondLocator(bysecond=list(range(0, 60, tick)))
    elif tick < 3600:
        locator = mdates.MinuteLocator(byminute=list(range(0, 60, tick // 60)))
    else:
        locator = mdates.HourLocator(byhour=list(range(0, 24, max(1, tick // 3600))))
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if end - start < 600 else "%H:%M",
                                                        tz=dt.timezone.utc))
    axes.yaxis.set_major_locator(MaxNLocator(nbins=4, min_n_ticks=3))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, unit, 2)))

    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    if not series:
        message = "No data" if not panel_data.errors else "\n".join(panel_data.errors)[:300]
        axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center",
                  color=THEME["muted"], fontsize=11 if not panel_data.errors else 8, wrap=True)
        axes.set_ylim(0, 1)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: ""))
    elif stacked:
        grid = sorted({t for s in series for t in s.times})
        below = [0.0] * len(grid)
        for s, color in zip(series, colors):
            by_time = dict(zip(s.times, s.values))
            top = [b + (0.0 if math.isnan(by_time.get(t, math.nan)) else by_time[t]) for b, t in zip(below, grid)]
            when = [_utc(t) for t in grid]
            axes.fill_between(when, below, top, color=color, alpha=fill, linewidth=0, step=None)
            axes.plot(when, top, color=color, linewidth=line_width)
            below = top
    else:
        for s, color in zip(series, colors):
            times, values = _fill_gaps(s.times, s.values, (s.times[1] - s.times[0]) if len(s.times) > 1 else 1)
            when = [_utc(t) for t in times]
            axes.plot(when, values, color=color, linewidth=line_width)
            if fill:
                axes.fill_between(when, 0, values, color=color, alpha=fill, linewidth=0)
    if series:
        low = defaults.get("min")
        top = max((v for s in series for v in s.values if not math.isnan(v)), default=0)
        if stacked:
            top = axes.get_ylim()[1]
        axes.set_ylim(bottom=low if low is not None else None,
                      top=defaults.get("max", top * 1.12 if top > 0 else 1))

    if not legend_rows:
        return
    # Legend: a header line with the calcs' names, then the rows.
    x0, x1 = left + inch_x(0.14), left + width - inch_x(0.14)
    column_w = (x1 - x0) / columns
    calc_w = inch_x(0.95)
    y_header = bottom + legend_h - inch_y(0.16)
    for c in range(columns):
        cx = x0 + c * column_w
        for k, calc in enumerate(calcs):
            fig.text(cx + column_w - inch_x(0.12) - (len(calcs) - 1 - k) * calc_w, y_header,
                     CALC_NAMES.get(calc, calc), color=THEME["muted"], fontsize=8, ha="right",
                     va="center", fontweight="bold")
    for i, (s, color) in enumerate(zip(series, colors)):
        c, r = divmod(i, legend_rows)
        cx = x0 + c * column_w
        y = y_header - (r + 1) * inch_y(row_in)
        fig.add_artist(_swatch(fig, cx, y, inch_x(0.16), inch_y(0.045), color))
        fig.text(cx + inch_x(0.22), y, s.label, color=THEME["text"], fontsize=8.5, va="center")
        for k, calc in enumerate(calcs):
            fig.text(cx + column_w - inch_x(0.12) - (len(calcs) - 1 - k) * calc_w, y,
                     format_value(legend_calc(calc, s.values), unit), color=THEME["text"],
                     fontsize=8.5, ha="right", va="center")


def _swatch(fig, x, y, w, h, color):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y - h / 2), w, h, transform=fig.transFigure, facecolor=color, edgecolor="none")


# ----------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--dashboard", type=Path, default=DEFAULT_DASHBOARD)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--start", help="ISO 8601 (UTC unless a zone is given), Unix seconds or now-10m")
    parser.add_argument("--end", default="now")
    parser.add_argument("--last", help="instead of --start: this much before --end, e.g. 10m")
    parser.add_argument("--scrape-interval", default="2s",
                        help="the data source's scrape interval, for $__rate_interval (default 2s)")
    parser.add_argument("--rate-interval", help="use this $__rate_interval instead of Grafana's rule")
    parser.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                        help="a template variable's value (default: All, i.e. its allValue)")
    parser.add_argument("--footer", default=None, help="text under the panels")
    parser.add_argument("--dpi", type=int, default=110)
    args = parser.parse_args(argv)

    end = parse_time(args.end)
    if args.last:
        start = end - parse_duration(args.last)
    elif args.start:
        start = parse_time(args.start)
    else:
        parser.error("give --start or --last")
    if end <= start:
        parser.error("the time range is empty")
    dashboard = json.loads(args.dashboard.read_text())
    overrides = dict(item.split("=", 1) for item in args.var)
    variables = template_values(dashboard, overrides)
    scrape = parse_duration(args.scrape_interval)
    rate = parse_duration(args.rate_interval) if args.rate_interval else None

    data: dict[int, PanelData] = {}
    failed = 0
    for panel in flatten_panels(dashboard):
        if panel.get("type") == "row":
            continue
        panel_data = fetch_panel(args.prometheus, panel, variables, start, end, scrape, rate)
        data[panel.get("id")] = panel_data
        for error in panel_data.errors:
            failed += 1
            print(f"panel {panel.get('title')!r}: {error}", file=sys.stderr)
        print(f"{panel.get('title')}: {len(panel_data.series)} series", file=sys.stderr)
        for query in panel_data.queries:
            print(f"    {query}", file=sys.stderr)

    shown_vars = ", ".join(f"{k} = {'All' if v in ('.*', '.+') else v}" for k, v in variables.items())
    one_panel = next((p for p in flatten_panels(dashboard) if p.get("targets")), {})
    interval = parse_duration(one_panel["interval"]) if one_panel.get("interval") else None
    builtins = builtin_variables(end - start, query_step_s(end - start, interval or 0.0), interval, scrape, rate)
    subtitle = (f"{shown_vars}   |   $__rate_interval = {builtins['__rate_interval']}, "
                f"step {builtins['__interval']}")
    footer = args.footer or (
        f"Rendered by scripts/render_dashboard.py from {args.dashboard.name}'s own PromQL "
        f"against Prometheus ({args.prometheus}); not a Grafana screenshot.")
    draw_dashboard(dashboard, data, start, end, args.out, subtitle, footer, dpi=args.dpi)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
