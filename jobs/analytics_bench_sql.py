"""The fiscal and retail results as DuckDB SQL over the snapshot's Parquet files, the benchmark's third engine.

Each query is the SQL of one function of posray.analytics.fiscal or retail (same columns, same
definitions: net = sales - refunds, corrections apart, the median and the nearest 90th
percentile as Polars define them: element round((n - 1) x 0.9) of the sorted values, which
DuckDB's quantile_disc does not pick); jobs.analytics_bench checks that they agree. DuckDB is an
optional dependency (`pip install duckdb`, or posray's `bench` extra), imported only here.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from posray.adapters.parquet_snapshot import read_watermark

_SIGN = "(CASE type WHEN 'sale' THEN 1 WHEN 'refund' THEN -1 ELSE 0 END)"
_SALE = "(CASE WHEN type = 'sale' THEN 1 ELSE 0 END)"
_PERIODS = {"day": "issued_local_date", "week": "date_trunc('week', issued_local_date)::DATE",
            "month": "date_trunc('month', issued_local_date)::DATE"}

_TOTALS = """
WITH t AS (
  SELECT merchant_id, currency, {period} AS period_start,
    sum({sale}) AS sales_count, sum(CASE WHEN type = 'sale' THEN total_minor ELSE 0 END) AS sales_gross_minor,
    sum(CASE WHEN type = 'refund' THEN 1 ELSE 0 END) AS refunds_count,
    sum(CASE WHEN type = 'refund' THEN total_minor ELSE 0 END) AS refunds_gross_minor,
    sum(CASE WHEN type = 'correction' THEN 1 ELSE 0 END) AS corrections_count,
    sum(CASE WHEN type = 'correction' THEN total_minor ELSE 0 END) AS corrections_gross_minor,
    sum({sign} * total_minor) AS net_gross_minor, sum({sign} * vat_minor) AS net_vat_minor,
    sum({sign} * cash_minor) AS net_cash_minor, sum({sign} * card_minor) AS net_card_minor,
    sum({sign} * other_minor) AS net_other_minor
  FROM documents GROUP BY ALL)
SELECT *, net_gross_minor - net_vat_minor AS net_excl_vat_minor,
  CASE WHEN sales_gross_minor <> 0 THEN refunds_gross_minor / sales_gross_minor END AS refund_ratio,
  CASE WHEN net_cash_minor + net_card_minor + net_other_minor <> 0
       THEN net_cash_minor / (net_cash_minor + net_card_minor + net_other_minor) END AS cash_share
FROM t ORDER BY merchant_id, currency, period_start"""

_VAT_BY_RATE = """
WITH v AS (
  SELECT merchant_id, currency, {period} AS period_start, type, unnest(vat) AS v
  FROM documents WHERE type IN ('sale', 'refund'))
SELECT merchant_id, currency, period_start, v.rate_bp AS rate_bp,
  sum(CASE WHEN type = 'sale' THEN v.gross_minor ELSE 0 END) AS sales_gross_minor,
  sum(CASE WHEN type = 'refund' THEN v.gross_minor ELSE 0 END) AS refunds_gross_minor,
  sum({sign} * v.gross_minor) AS net_gross_minor, sum({sign} * v.vat_minor) AS net_vat_minor,
  sum({sign} * v.gross_minor) - sum({sign} * v.vat_minor) AS net_excl_vat_minor
FROM v GROUP BY ALL ORDER BY merchant_id, currency, period_start, rate_bp"""

_BY_DAY = """
SELECT currency, issued_local_date AS date, isodow(issued_local_date) AS weekday,
  sum({sign} * total_minor) AS net_revenue_minor,
  sum(CASE WHEN type = 'refund' THEN total_minor ELSE 0 END) AS refunds_minor, sum({sale}) AS receipts
FROM documents GROUP BY currency, issued_local_date"""

RETAIL_SQL = {
    "revenue_by_hour": """
WITH d AS (SELECT currency, count(DISTINCT issued_local_date) AS days FROM documents GROUP BY currency),
h AS (SELECT currency, hour(issued_local) AS hour, sum({sign} * total_minor) AS net_revenue_minor,
        sum({sale}) AS receipts FROM documents GROUP BY ALL)
SELECT h.currency, hour, net_revenue_minor, receipts, days, net_revenue_minor / days AS avg_daily_revenue_minor
FROM h JOIN d ON h.currency = d.currency ORDER BY h.currency, hour""",
    "revenue_by_day": _BY_DAY + " ORDER BY currency, date",
    "revenue_by_weekday": """
WITH day AS (""" + _BY_DAY + """)
SELECT currency, weekday, ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][weekday] AS weekday_name,
  count(*) AS days, sum(net_revenue_minor) AS net_revenue_minor,
  sum(net_revenue_minor) / count(*) AS avg_revenue_minor, sum(receipts) / count(*) AS avg_receipts
FROM day GROUP BY currency, weekday ORDER BY currency, weekday""",
    "top_products": """
WITH p AS (
  SELECT currency, sku, name, category, sum({sign} * amount_minor) AS net_revenue_minor,
    sum({sign} * qty_milli) AS net_qty_milli, sum({sale}) AS sale_lines
  FROM items WHERE type IN ('sale', 'refund') GROUP BY ALL),
r AS (SELECT *, row_number() OVER (PARTITION BY currency ORDER BY net_revenue_minor DESC,
        sku ASC NULLS LAST, name ASC NULLS LAST) AS rank FROM p)
SELECT * FROM r WHERE rank <= {top} ORDER BY currency, rank""",
    "top_categories": """
WITH c AS (
  SELECT currency, coalesce(category, '(none)') AS category, sum({sign} * amount_minor) AS net_revenue_minor
  FROM items WHERE type IN ('sale', 'refund') GROUP BY ALL)
SELECT *, net_revenue_minor / sum(net_revenue_minor) OVER (PARTITION BY currency) AS share
FROM c ORDER BY currency, net_revenue_minor DESC, category""",
    "basket_sizes": """
WITH s AS (SELECT item_count, count(*) AS baskets FROM documents WHERE type = 'sale' GROUP BY item_count)
SELECT *, baskets / sum(baskets) OVER () AS share FROM s ORDER BY item_count""",
    "basket_values": """
SELECT currency, least(total_minor // {bin}, {bins_max} - 1) * {bin} AS bin_start_minor, count(*) AS baskets
FROM documents WHERE type = 'sale' GROUP BY ALL ORDER BY currency, bin_start_minor""",
    "basket_summary": """
SELECT merchant_id, currency, count(*) AS baskets, avg(item_count) AS mean_lines,
  avg(total_minor) AS mean_value_minor, median(total_minor) AS median_value_minor,
  list_sort(list(total_minor))[CAST(floor((count(*) - 1) * 0.9 + 0.5) AS BIGINT) + 1] AS p90_value_minor
FROM documents WHERE type = 'sale' GROUP BY merchant_id, currency ORDER BY merchant_id, currency""",
    "stores": """
WITH s AS (
  SELECT merchant_id, coalesce(store, terminal_id) AS store, currency,
    sum({sign} * total_minor) AS net_revenue_minor, sum({sale}) AS receipts,
    count(DISTINCT issued_local_date) AS days,
    sum(CASE WHEN type = 'sale' THEN total_minor ELSE 0 END) AS sales,
    sum(CASE WHEN type = 'refund' THEN total_minor ELSE 0 END) AS refunds,
    sum({sign} * cash_minor) AS cash, sum({sign} * (cash_minor + card_minor + other_minor)) AS paid
  FROM documents GROUP BY ALL)
SELECT merchant_id, store, currency, net_revenue_minor, receipts, days,
  net_revenue_minor / days AS revenue_per_day_minor,
  CASE WHEN receipts > 0 THEN sales / receipts END AS avg_basket_minor,
  CASE WHEN sales > 0 THEN refunds / sales END AS refund_ratio,
  CASE WHEN paid <> 0 THEN cash / paid END AS cash_share
FROM s ORDER BY revenue_per_day_minor DESC, merchant_id, store""",
}
FISCAL_SQL = {"totals": _TOTALS, "vat_by_rate": _VAT_BY_RATE}


class DuckDBEngine:
    """One DuckDB connection with views `documents` and `items` over a snapshot's Parquet
    files (rows at or below the watermark, as scan_table reads them).

    Raises:
        ModuleNotFoundError: duckdb is not installed.
    """

    def __init__(self, snapshot_dir: Path, threads: int | None = None):
        import duckdb

        self._con = duckdb.connect()
        if threads:
            self._con.execute(f"SET threads = {int(threads)}")
        marks = read_watermark(snapshot_dir)
        limit = "CASE shard " + " ".join(f"WHEN {s} THEN {q}" for s, q in marks.items()) + " ELSE -1 END"
        for table in ("documents", "items"):
            files = str(Path(snapshot_dir) / table / "day=*" / "shard=*" / "part-*.parquet").replace("'", "''")
            self._con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{files}', "
                              f"hive_partitioning = false) WHERE seq <= {limit}")

    def fiscal(self, period: str = "month") -> dict[str, pl.DataFrame]:
        """The fiscal results (posray.analytics.partial.FISCAL)."""
        return {name: self._query(sql, period=_PERIODS[period]) for name, sql in FISCAL_SQL.items()}

    def retail(self, top: int = 15, bin_minor: int = 500, bins_max: int = 40) -> dict[str, pl.DataFrame]:
        """The retail results (posray.analytics.partial.RETAIL)."""
        return {name: self._query(sql, top=top, bin=bin_minor, bins_max=bins_max) for name, sql in RETAIL_SQL.items()}

    def _query(self, sql: str, **values) -> pl.DataFrame:
        return self._con.sql(sql.format(sign=_SIGN, sale=_SALE, **values)).pl()

    def close(self) -> None:
        self._con.close()
