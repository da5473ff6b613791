"""A generated world's snapshot tables drawn with numpy and written straight to Parquet, for benchmarks at scale.

posray.synthetic.generator writes ~8,000 signed documents/s through the ledger: ten million take
half an hour. This draws the same world (posray.synthetic.world, the catalogues) with the same
habits (volume per terminal and weekday, opening hours and intraday peaks, baskets by popularity
with merged repeats, weighed goods, cash/mobile/card by amount, vouchers, refunds of all or one
line of an earlier sale, small corrections), one day and merchant kind at a time, as arrays
(posray.synthetic.bulk_draw); numbers them as the ledger would (counters per terminal, sequences
and batches per shard in acceptance order); and writes the `documents` and `items` tables with
the snapshot's exact schema and layout, one part file per day and shard, as a snapshot exported
once a day would hold them, plus the watermark.
The random streams differ from the generator's, so the rows are another draw of the same
distributions. Not drawn: planted anomalies, offline terminals (everything is accepted within
80 ms-1.5 s), refunds of sales of earlier days. Receipt codes are readable stand-ins
("B" + shard + seq) unless a code key is given: the analytics never read them.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from posray.synthetic.bulk_draw import Catalogue, concat, draw_kind_day, half_up_div, ragged_arange
from posray.synthetic.catalogue import KINDS
from posray.analytics.snapshot import DOCUMENTS_SCHEMA, ITEMS_SCHEMA
from posray.adapters.parquet_snapshot import part_path, write_watermark
from posray.synthetic.world import GeneratorConfig, World, build_world, utc_offset_min

TYPES = ("sale", "refund", "correction")
METHODS = ("cash", "mobile", "card")
BATCH_MAX = 2000
MANIFEST_FILE = "_bulk.json"
_DAY_S = 86_400
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class BulkWritten:
    """What write_bulk_snapshot wrote."""

    documents: int
    items: int
    files: int
    seconds: float


class _Terminals:
    """The world's terminals as arrays (a terminal is its index) and each kind's terminals."""

    def __init__(self, world: World):
        ts = world.terminals
        self.terminal_id = pl.Series([t.terminal_id for t in ts], dtype=pl.String)
        self.merchant_id = pl.Series([t.merchant_id for t in ts], dtype=pl.String)
        self.store = pl.Series([t.store_id for t in ts], dtype=pl.String)
        self.shard = np.array([t.shard for t in ts], np.int64)
        self.by_kind = {k.name: (np.array([t.index for t in ts if t.kind.name == k.name], np.int64),
                                 np.array([t.intensity for t in ts if t.kind.name == k.name])) for k in KINDS}


@dataclass(slots=True)
class _Positions:
    """Where each terminal's counter and each shard's sequence and batch numbering stand."""

    counter: np.ndarray
    next_seq: np.ndarray
    next_batch: np.ndarray


def _day(cat: Catalogue, terminals: _Terminals, config: GeneratorConfig, scale: float, day: date):
    """Every kind's documents and lines of `day`; `owner` is the terminal index. None if all closed."""
    weekday, parts = day.weekday(), []
    for number, kind in enumerate(KINDS):
        owners, intensity = terminals.by_kind[kind.name]
        if kind.hours[weekday] is None or not owners.size:
            continue
        rng = np.random.default_rng([config.seed, day.toordinal(), number])
        docs, lines = draw_kind_day(cat, kind, weekday, scale * intensity * kind.weekday_weight[weekday], rng)
        parts.append((docs | {"owner": owners[docs["owner"]]}, lines))
    return concat(parts) if parts else None


def _number(docs, lines, shard_of: np.ndarray, at: _Positions, accepted_ms: np.ndarray):
    """Counters per terminal in issue order; documents re-ordered by shard and acceptance and
    given their sequence, batch and leaf index; lines and originals follow."""
    n, owner = docs["sec"].size, docs["owner"]
    by_issue = np.lexsort((np.arange(n), docs["sec"], owner))
    counter = np.empty(n, np.int64)
    counter[by_issue] = at.counter[owner[by_issue]] + _rank_in_runs(owner[by_issue])
    at.counter += np.bincount(owner, minlength=at.counter.size)
    shard = shard_of[owner]
    order = np.lexsort((counter, owner, accepted_ms, shard))
    rank = _rank_in_runs(shard[order]) - 1
    position = np.empty(n, np.int64)
    position[order] = np.arange(n)
    out = {k: v[order] for k, v in docs.items()} | {
        "counter": counter[order], "accepted_ms": accepted_ms[order], "shard": shard[order],
        "seq": at.next_seq[shard[order]] + rank, "batch_no": at.next_batch[shard[order]] + rank // BATCH_MAX,
        "leaf_index": rank % BATCH_MAX}
    out["orig"] = np.where(out["orig"] >= 0, position[np.maximum(out["orig"], 0)], -1)
    per_shard = np.bincount(shard, minlength=at.next_seq.size)
    at.next_seq += per_shard
    at.next_batch += -(-per_shard // BATCH_MAX)
    line_order = np.argsort(position[lines["doc"]], kind="stable")
    return out, {k: v[line_order] for k, v in lines.items()} | {"doc": position[lines["doc"]][line_order]}


def _rank_in_runs(keys: np.ndarray) -> np.ndarray:
    """1, 2, 3, ... within each run of equal consecutive keys."""
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, keys.size])
    return ragged_arange(lengths) + 1


def _vat_lines(doc: np.ndarray, vat_bp: np.ndarray, amount: np.ndarray, n: int):
    """The `vat` list column (gross and VAT per rate, rates ascending) and each VAT total."""
    keys, inverse = np.unique(doc * 100_000 + vat_bp, return_inverse=True)
    gross = np.bincount(inverse.ravel(), weights=amount).astype(np.int64)
    rate, owner = keys % 100_000, keys // 100_000
    vat = half_up_div(gross * rate, 10_000 + rate)
    offsets = np.r_[0, np.cumsum(np.bincount(owner, minlength=n))].astype(np.int32)
    structs = pa.StructArray.from_arrays(
        [pa.array(rate, pa.int32()), pa.array(gross, pa.int64()), pa.array(vat, pa.int64())],
        names=["rate_bp", "gross_minor", "vat_minor"])
    column = pl.from_arrow(pa.ListArray.from_arrays(pa.array(offsets), structs)).alias("vat")
    return column, np.bincount(owner, weights=vat, minlength=n).astype(np.int64)


def _codes(shard: np.ndarray, seq: np.ndarray, code_key) -> pl.Series:
    if code_key is not None:
        # Synthetic snapshot files never enter the ledger and hold no canonical documents: their
        # codes name the place only (the version-1 rule), never a document of a real ledger.
        from posray.domain.codes import legacy_code

        return pl.Series([legacy_code(code_key, int(s), int(q)) for s, q in zip(shard, seq)], dtype=pl.String)
    frame = pl.DataFrame({"shard": shard, "seq": seq})
    return frame.select(pl.format("B{}{}", pl.col("shard").cast(pl.String).str.zfill(3),
                                  pl.col("seq").cast(pl.String).str.zfill(16))).to_series()


def _documents(docs, lines, terminals: _Terminals, config: GeneratorConfig, day: date, code_key) -> pl.DataFrame:
    """The `documents` rows of one day's numbered documents."""
    n, owner = docs["sec"].size, docs["owner"]
    vat_column, vat_minor = _vat_lines(lines["doc"], _CAT.vat_bp[lines["product"]], lines["amount"], n)
    total = np.bincount(lines["doc"], weights=lines["amount"], minlength=n).astype(np.int64)
    paid, method = total - docs["voucher"], docs["method"]
    offset = utc_offset_min(day)
    local_us = ((day - _EPOCH).days * _DAY_S + docs["sec"]) * 1_000_000
    codes = _codes(docs["shard"], docs["seq"], code_key)
    orig = docs["orig"]
    return pl.DataFrame({
        "shard": docs["shard"], "seq": docs["seq"], "batch_no": docs["batch_no"], "leaf_index": docs["leaf_index"],
        "code": codes, "merchant_id": terminals.merchant_id.gather(owner), "store": terminals.store.gather(owner),
        "terminal_id": terminals.terminal_id.gather(owner), "counter": docs["counter"],
        "type": _TYPE_NAMES.gather(docs["type"]), "currency": pl.repeat(config.currency, n, eager=True),
        "issued_at": local_us - offset * 60_000_000, "utc_offset_min": np.full(n, offset),
        "issued_local": local_us, "issued_local_date": np.full(n, (day - _EPOCH).days),
        "accepted_at": docs["accepted_ms"], "total_minor": total, "vat_minor": vat_minor, "vat": vat_column,
        "cash_minor": np.where(method == 0, paid, 0), "card_minor": np.where(method > 0, paid, 0),
        "other_minor": docs["voucher"], "item_count": np.bincount(lines["doc"], minlength=n),
        "refers_to": codes.gather(np.maximum(orig, 0)).set(pl.Series(orig < 0), None),
    }).cast({name: dtype for name, dtype in DOCUMENTS_SCHEMA.items() if name != "vat"}).select(DOCUMENTS_SCHEMA.names())


def _items(documents: pl.DataFrame, lines) -> pl.DataFrame:
    """The `items` rows of one day: each line with its document's who and when."""
    who_when = [n for n in ITEMS_SCHEMA.names() if n in documents.columns]
    fixed = lines["product"] + np.where(lines["fix"], len(_CAT.price), 0)
    return documents.select(pl.col(who_when).gather(lines["doc"])).with_columns(
        pl.Series("line_no", ragged_arange(documents["item_count"].to_numpy())),
        _NAMES.gather(fixed).alias("name"), _CAT.sku.gather(lines["product"]).alias("sku"),
        _CAT.category.gather(lines["product"]).alias("category"), pl.Series("qty_milli", lines["qty"]),
        pl.Series("unit_price_minor", lines["price"]), pl.Series("amount_minor", lines["amount"]),
        pl.Series("vat_rate_bp", _CAT.vat_bp[lines["product"]]),
    ).select(ITEMS_SCHEMA.names()).cast(ITEMS_SCHEMA)


_CAT = Catalogue(KINDS)
_TYPE_NAMES = pl.Series(TYPES, dtype=pl.String)
_NAMES = pl.concat([_CAT.name, "Correction: " + _CAT.name])


def day_tables(terminals: _Terminals, config: GeneratorConfig, scale: float, day: date, at: _Positions,
               code_key=None) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """The documents and items rows of one day (None when every shop is closed); `at` advances."""
    drawn = _day(_CAT, terminals, config, scale, day)
    if drawn is None:
        return None
    docs, lines = drawn
    rng = np.random.default_rng([config.seed, day.toordinal(), len(KINDS)])
    issued_ms = ((day - _EPOCH).days * _DAY_S + docs["sec"] - utc_offset_min(day) * 60) * 1000
    docs, lines = _number(docs, lines, terminals.shard, at, issued_ms + rng.integers(80, 1501, issued_ms.size))
    documents = _documents(docs, lines, terminals, config, day, code_key)
    return documents, _items(documents, lines)


def expected_sales(world: World, config: GeneratorConfig) -> float:
    """Relative sales volume of the window (intensity x weekday weight over open days)."""
    weekdays = [(config.start + timedelta(days=i)).weekday() for i in range(config.days)]
    return sum(t.intensity * t.kind.weekday_weight[w] for w in weekdays for t in world.terminals
               if t.kind.hours[w] is not None)


def write_bulk_snapshot(folder: Path, config: GeneratorConfig, *, code_key=None) -> BulkWritten:
    """Write the snapshot tables of `config`'s world (about `config.documents` sales) to `folder`.

    One part file per table, day and shard (part-<first seq>-<last seq>.parquet), then the
    watermark and MANIFEST_FILE (the configuration). The folder should be empty.

    Args:
        folder: the snapshot folder (`documents/`, `items/`, `_watermark.json`).
        config: the world and window; `anomalies` is ignored (none are planted).
        code_key: a posray.domain.codes.CodeKey for real receipt codes (slow: ~20 µs each).

    Returns:
        How many documents, items and files were written, and how long it took.
    """
    started = time.perf_counter()
    folder = Path(folder)
    world = build_world(config)
    terminals = _Terminals(world)
    scale = config.documents / max(expected_sales(world, config), 1e-9)
    at = _Positions(np.zeros(len(world.terminals), np.int64), np.ones(config.shard_count, np.int64),
                    np.ones(config.shard_count, np.int64))
    documents = items = files = 0
    # Parquet writing releases the GIL: one day is written while the next is drawn (two days in memory at most).
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for i in range(config.days):
            day = config.start + timedelta(days=i)
            tables = day_tables(terminals, config, scale, day, at, code_key)
            if tables is None:
                continue
            files += pending.result() if pending else 0
            pending = writer.submit(_write_day, folder, day, tables)
            documents, items = documents + tables[0].height, items + tables[1].height
        files += pending.result() if pending else 0
    write_watermark(folder, {s: int(seq) - 1 for s, seq in enumerate(at.next_seq) if seq > 1})
    manifest = asdict(config) | {"start": config.start.isoformat(), "documents_written": documents, "items_written": items}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    return BulkWritten(documents, items, files, time.perf_counter() - started)


def _write_day(folder: Path, day: date, tables: tuple[pl.DataFrame, pl.DataFrame]) -> int:
    """One Parquet file per table and shard, named after the shard's sequence range."""
    files = 0
    documents, items = tables
    ranges = documents.group_by("shard").agg(pl.col("seq").min().alias("first"), pl.col("seq").max().alias("last"))
    for shard, first, last in ranges.iter_rows():
        for table, frame in (("documents", documents), ("items", items)):
            path = part_path(folder, table, day.isoformat(), shard, first, last)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.filter(pl.col("shard") == shard).write_parquet(path, compression="zstd", statistics=True)
            files += 1
    return files


def read_manifest(folder: Path) -> dict | None:
    """The configuration a bulk snapshot was written with, or None if it has none."""
    path = Path(folder) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.exists() else None
