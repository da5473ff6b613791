"""Builders of small snapshot frames (documents, items) for the analytics unit tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from posray.analytics.snapshot import DOCUMENTS_SCHEMA, ITEMS_SCHEMA
from posray.domain.transaction import vat_included

OFFSET_MIN = 60


def _when(local: datetime) -> dict:
    return {
        "issued_local": local,
        "issued_local_date": local.date(),
        "utc_offset_min": OFFSET_MIN,
        "issued_at": local - timedelta(minutes=OFFSET_MIN),
    }


def documents(*rows: dict) -> pl.LazyFrame:
    """Documents rows: give `local` (datetime), `vat` [(rate_bp, gross)], `paid` {cash|card|other: amount}."""
    built = []
    for seq, row in enumerate(rows, start=1):
        row = dict(row)
        lines = row.pop("vat")
        total = sum(gross for _, gross in lines)
        paid = row.pop("paid", {"card": total})
        built.append({
            "shard": 0, "seq": seq, "batch_no": 0, "leaf_index": seq - 1, "code": f"CODE{seq:016d}",
            "merchant_id": "m1", "store": None, "terminal_id": "t1", "counter": seq, "type": "sale",
            "currency": "EUR", "accepted_at": row["local"], "total_minor": total,
            "vat_minor": sum(vat_included(g, r) for r, g in lines),
            "vat": [{"rate_bp": r, "gross_minor": g, "vat_minor": vat_included(g, r)} for r, g in lines],
            "cash_minor": paid.get("cash", 0), "card_minor": paid.get("card", 0), "other_minor": paid.get("other", 0),
            "item_count": 1, "refers_to": None,
            **_when(row.pop("local")), **row,
        })
    frame = pl.DataFrame(built, schema_overrides={"issued_at": pl.Datetime("us"), "accepted_at": pl.Datetime("ms")})
    return frame.with_columns(
        pl.col("issued_at").dt.replace_time_zone("UTC"), pl.col("accepted_at").dt.replace_time_zone("UTC"),
    ).select(DOCUMENTS_SCHEMA.names()).cast(DOCUMENTS_SCHEMA).lazy()


def items(*rows: dict) -> pl.LazyFrame:
    """Item rows: give `seq`, `local`, `sku`, `name`, `category`, `amount_minor` (and `type`, `qty_milli`)."""
    built = []
    for row in rows:
        row = dict(row)
        built.append({
            "shard": 0, "line_no": 0, "merchant_id": "m1", "store": None, "terminal_id": "t1", "type": "sale",
            "currency": "EUR", "qty_milli": 1000, "unit_price_minor": row["amount_minor"], "vat_rate_bp": 2000,
            **_when(row.pop("local")), **row,
        })
    frame = pl.DataFrame(built, schema_overrides={"issued_at": pl.Datetime("us")})
    return frame.with_columns(pl.col("issued_at").dt.replace_time_zone("UTC")).select(ITEMS_SCHEMA.names()).cast(ITEMS_SCHEMA).lazy()
