"""Columnar snapshots of the ledger: table schemas, decoding of ledger rows, filters (no I/O).

Two tables (docs/analytics.md): `documents`, one row per recorded document, and `items`, one
row per line item. Files live under <dir>/<table>/day=YYYY-MM-DD/shard=N/ (day = the local
date printed on the receipt) and are named part-<first seq>-<last seq>.parquet after the ledger
page they come from; every column, shard and day included, is also inside the files. The
watermark file records, per shard, the last sequence the snapshot holds; readers ignore rows
beyond it (left by an interrupted export, which the next export removes). Reading and writing
the files is posray.adapters.parquet_snapshot.
"""

from __future__ import annotations


import polars as pl

from posray.domain.errors import AuditDivergence
from posray.domain.merkle import leaf_hash

TABLES = ("documents", "items")
RECORD_VERSIONS = (1, 2)  # posray.domain.chain: the layout is the same, only the code's rule differs

_VAT_LINE = pl.Struct({"rate_bp": pl.Int32, "gross_minor": pl.Int64, "vat_minor": pl.Int64})
RECORD_DTYPE = pl.Struct({
    "accepted_at": pl.String,
    "code": pl.String,
    "seq": pl.Int64,
    "shard": pl.Int64,
    "v": pl.Int64,
    "document": pl.Struct({
        "terminal_id": pl.String,
        "counter": pl.Int64,
        "issued_at": pl.String,
        "type": pl.String,
        "currency": pl.String,
        "items": pl.List(pl.Struct({
            "name": pl.String, "qty_milli": pl.Int64, "unit_price_minor": pl.Int64,
            "amount_minor": pl.Int64, "vat_rate_bp": pl.Int32, "sku": pl.String, "category": pl.String,
        })),
        "payments": pl.List(pl.Struct({"method": pl.String, "amount_minor": pl.Int64})),
        "total_minor": pl.Int64,
        "vat": pl.List(_VAT_LINE),
        "refers_to": pl.String,
    }),
})

# Who and when: the same columns, in the same order, in both tables.
_WHO = {"merchant_id": pl.String, "store": pl.String, "terminal_id": pl.String}
_WHEN = {
    "type": pl.String, "currency": pl.String, "issued_at": pl.Datetime("us", "UTC"),
    "utc_offset_min": pl.Int16, "issued_local": pl.Datetime("us"), "issued_local_date": pl.Date,
}
DOCUMENTS_SCHEMA = pl.Schema({
    "shard": pl.Int32, "seq": pl.Int64, "batch_no": pl.Int64, "leaf_index": pl.Int32,
    "code": pl.String, **_WHO, "counter": pl.Int64, **_WHEN, "accepted_at": pl.Datetime("ms", "UTC"),
    "total_minor": pl.Int64, "vat_minor": pl.Int64, "vat": pl.List(_VAT_LINE),
    "cash_minor": pl.Int64, "card_minor": pl.Int64, "other_minor": pl.Int64,
    "item_count": pl.Int32, "refers_to": pl.String,
})
ITEMS_SCHEMA = pl.Schema({
    "shard": pl.Int32, "seq": pl.Int64, "line_no": pl.Int32, **_WHO, **_WHEN,
    "name": pl.String, "sku": pl.String, "category": pl.String, "qty_milli": pl.Int64,
    "unit_price_minor": pl.Int64, "amount_minor": pl.Int64, "vat_rate_bp": pl.Int32,
})
SCHEMAS = {"documents": DOCUMENTS_SCHEMA, "items": ITEMS_SCHEMA}
# Mobile wallets settle through card networks, so they count as card; vouchers and the rest
# are "other".
CARD_METHODS = ("card", "mobile")


def decode_page(page) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The documents and items rows of one ledger page (posray.adapters.pg_snapshot.LedgerPage).

    Each record is checked against its stored leaf hash and its (shard, seq) right after
    being read, so a snapshot never carries a row the audit would reject.

    Raises:
        AuditDivergence: a record does not match its leaf hash, position or format version.
    """
    for seq, record, stored in zip(page.seq, page.record, page.leaf_hash):
        if leaf_hash(record) != stored:
            raise AuditDivergence(f"shard {page.shard} seq {seq}: record does not match its leaf hash")
    raw = pl.DataFrame(
        {"seq": page.seq, "batch_no": page.batch_no, "leaf_index": page.leaf_index,
         "merchant_id": page.merchant_id, "store": page.store, "record": page.record},
        schema={"seq": pl.Int64, "batch_no": pl.Int64, "leaf_index": pl.Int32,
                "merchant_id": pl.String, "store": pl.String, "record": pl.Binary},
    ).with_columns(pl.col("record").cast(pl.String).str.json_decode(RECORD_DTYPE))
    bad = raw.filter(
        (pl.col("record").struct.field("seq") != pl.col("seq"))
        | (pl.col("record").struct.field("shard") != page.shard)
        | ~pl.col("record").struct.field("v").is_in(RECORD_VERSIONS)
    )
    if bad.height:
        raise AuditDivergence(f"shard {page.shard} seq {bad['seq'][0]}: record names another position or version")
    flat = raw.select(
        pl.lit(page.shard, pl.Int32).alias("shard"), "seq", "batch_no", "leaf_index",
        "merchant_id", "store",
        pl.col("record").struct.field("code"),
        pl.col("record").struct.field("accepted_at"),
        pl.col("record").struct.field("document"),
    ).unnest("document")
    return documents_frame(flat), items_frame(flat)


def documents_frame(flat: pl.DataFrame) -> pl.DataFrame:
    """Documents rows from decoded records (one column per document member)."""
    amount = pl.element().struct.field("amount_minor")
    method = pl.element().struct.field("method")

    def paid(condition) -> pl.Expr:
        return pl.col("payments").list.eval(pl.when(condition).then(amount).otherwise(0)).list.sum()

    return flat.with_columns(_when_columns()).select(
        "shard", "seq", "batch_no", "leaf_index", "code", *_WHO, "counter", *_WHEN,
        pl.col("accepted_at").str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="ms")
        .dt.replace_time_zone("UTC"),
        "total_minor",
        pl.col("vat").list.eval(pl.element().struct.field("vat_minor")).list.sum().alias("vat_minor"),
        "vat",
        paid(method == "cash").alias("cash_minor"),
        paid(method.is_in(CARD_METHODS)).alias("card_minor"),
        paid(~method.is_in(("cash",) + CARD_METHODS)).alias("other_minor"),
        pl.col("items").list.len().alias("item_count"),
        "refers_to",
    ).cast(DOCUMENTS_SCHEMA)


def items_frame(flat: pl.DataFrame) -> pl.DataFrame:
    """Items rows (one per line, numbered from 0 in receipt order) from decoded records."""
    return (
        flat.with_columns(_when_columns())
        .select("shard", "seq", *_WHO, *_WHEN, "items")
        .explode("items")
        .with_columns(pl.int_range(pl.len(), dtype=pl.Int32).over("seq").alias("line_no"))
        .unnest("items")
        .select(ITEMS_SCHEMA.names())
        .cast(ITEMS_SCHEMA)
    )


def _when_columns() -> list[pl.Expr]:
    """issued_at as UTC, the terminal's UTC offset, and the local wall time and date."""
    iso = pl.col("issued_at")
    offset = iso.str.extract(r"(Z|[+-]\d{2}:\d{2})$", 1)
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    offset_min = pl.when(offset == "Z").then(0).otherwise(
        sign * (offset.str.slice(1, 2).cast(pl.Int32, strict=False) * 60
                + offset.str.slice(4, 2).cast(pl.Int32, strict=False))
    )
    fraction_us = iso.str.extract(r"\.(\d{1,6})", 1).str.pad_end(6, "0").cast(pl.Int64, strict=False).fill_null(0)
    local = iso.str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us") + pl.duration(microseconds=fraction_us)
    return [
        offset_min.cast(pl.Int16).alias("utc_offset_min"),
        local.alias("issued_local"),
        local.dt.date().alias("issued_local_date"),
        (local - pl.duration(minutes=offset_min)).dt.replace_time_zone("UTC").alias("issued_at"),
    ]


def restrict(frame: pl.LazyFrame, since=None, until=None, merchants=None) -> pl.LazyFrame:
    """Rows whose local issue date is within [since, until] (either open) of `merchants`."""
    if since is not None:
        frame = frame.filter(pl.col("issued_local_date") >= since)
    if until is not None:
        frame = frame.filter(pl.col("issued_local_date") <= until)
    if merchants:
        frame = frame.filter(pl.col("merchant_id").is_in(list(merchants)))
    return frame
