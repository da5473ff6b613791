"""A self-contained HTML report: charts embedded as PNG data, result tables, no external files."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import datetime, timezone

import polars as pl

from posray.analytics.charts import major

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} .meta{color:#666;margin-top:0} h2{margin-top:2.2rem;border-bottom:1px solid #ddd}
figure{margin:1rem 0} figcaption{color:#555;font-size:.9rem} img{max-width:100%}
table{border-collapse:collapse;font-size:.82rem;margin:.5rem 0} td,th{padding:.2rem .6rem;border-bottom:1px solid #eee}
td.n{text-align:right;font-variant-numeric:tabular-nums} th{text-align:left;background:#f6f6f6}
"""


_PERCENT = ("share", "refund_ratio", "cash_share", "wape", "mape", "bias", "peer_median", "peer_mad")


@dataclass(slots=True)
class Report:
    """Sections in order: each a heading with charts (PNG bytes, caption) and tables."""

    title: str
    subtitle: str
    sections: list = field(default_factory=list)

    def section(self, heading: str, text: str = "") -> None:
        self.sections.append(("h2", heading, text))

    def chart(self, png: bytes, caption: str) -> None:
        self.sections.append(("img", png, caption))

    def table(self, frame: pl.DataFrame, rows_max: int = 50) -> None:
        self.sections.append(("table", frame.head(rows_max), frame.height))

    def to_html(self) -> str:
        created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(self.title)}</title>"
                 f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
                 f"<p class=meta>{html.escape(self.subtitle)} · generated {created}</p>"]
        for kind, a, b in self.sections:
            if kind == "h2":
                parts.append(f"<h2>{html.escape(a)}</h2>" + (f"<p>{html.escape(b)}</p>" if b else ""))
            elif kind == "img":
                data = base64.b64encode(a).decode()
                parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(b)}'>"
                             f"<figcaption>{html.escape(b)}</figcaption></figure>")
            else:
                parts.append(_table_html(a, b))
        parts.append("</body></html>")
        return "\n".join(parts)


def _table_html(frame: pl.DataFrame, total_rows: int) -> str:
    """Amount columns (*_minor) shown in major units of the row's currency, ratios as %."""
    columns = frame.columns
    currencies = set(frame["currency"].to_list()) if "currency" in columns else set()
    unit = currencies.pop() if len(currencies) == 1 else "currency units"
    head = "".join(f"<th>{html.escape(_heading(c, unit))}</th>" for c in columns)
    rows = []
    for row in frame.iter_rows(named=True):
        cells = "".join(_cell(c, row[c], row.get("currency") or "EUR") for c in columns)
        rows.append(f"<tr>{cells}</tr>")
    more = f"<p class=meta>first {frame.height} of {total_rows} rows</p>" if total_rows > frame.height else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _heading(column: str, unit: str) -> str:
    if column.endswith("_minor"):
        return column[: -len("_minor")].replace("_", " ") + f" ({unit})"
    return column.replace("_", " ")


def _cell(column: str, value, currency: str) -> str:
    if value is None:
        return "<td></td>"
    if column.endswith("_minor"):
        return f"<td class=n>{major(value, currency):,.2f}</td>"
    if column in _PERCENT:
        return f"<td class=n>{value:.1%}</td>"
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 0.01
        return f"<td class=n>{value:.2g}</td>" if small else f"<td class=n>{value:,.2f}</td>"
    if isinstance(value, int):
        return f"<td class=n>{value:,}</td>"
    return f"<td>{html.escape(str(value))}</td>"
