"""Snapshot frames of a generated history, built in memory (no database): the generator's
documents go through the ledger's record format and the snapshot's decoder, as an export would."""

from __future__ import annotations

import functools
from collections import defaultdict

import polars as pl

from posray.adapters.pg_snapshot import LedgerPage
from posray.synthetic.generator import GeneratorConfig, History, build_world
from posray.analytics.snapshot import decode_page
from posray.domain.chain import record_bytes
from posray.domain.codes import CodeKey
from posray.domain.merkle import leaf_hash

CODE_KEY = CodeKey(bytes(range(32)))


def key_of(terminal_id: str) -> bytes:
    return terminal_id.encode().ljust(32, b"k")


@functools.cache
def generated(config: GeneratorConfig) -> tuple[History, pl.DataFrame, pl.DataFrame]:
    """The history (with its planted anomalies), and its documents and items snapshot tables."""
    world = build_world(config)
    history = History(world, config, code_key=CODE_KEY, key_of=key_of)
    store_of = {t.terminal_id: (t.merchant_id, t.store_id) for t in world.terminals}
    by_shard = defaultdict(list)
    for a in history:
        by_shard[a.shard].append(a)
    documents, items = [], []
    for shard, accepted in sorted(by_shard.items()):
        records = [record_bytes(a.shard, a.seq, a.code, a.accepted_at_ms, a.canonical) for a in accepted]
        page = LedgerPage(
            shard=shard, seq=[a.seq for a in accepted], batch_no=[0] * len(accepted),
            leaf_index=list(range(len(accepted))),
            merchant_id=[store_of[a.document["terminal_id"]][0] for a in accepted],
            store=[store_of[a.document["terminal_id"]][1] for a in accepted],
            record=records, leaf_hash=[leaf_hash(r) for r in records],
        )
        d, i = decode_page(page)
        documents.append(d)
        items.append(i)
    return history, pl.concat(documents), pl.concat(items)


def write_snapshot(folder, config: GeneratorConfig) -> History:
    """A snapshot folder (part files and watermark, as the export writes them) of `config`'s history."""
    from posray.adapters.parquet_snapshot import part_path, write_watermark

    history, documents, items = generated(config)
    marks = {}
    for table, frame in (("documents", documents), ("items", items)):
        for (day, shard), part in frame.group_by("issued_local_date", "shard"):
            first, last = part["seq"].min(), part["seq"].max()
            path = part_path(folder, table, day, shard, first, last)
            path.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(path)
            marks[shard] = max(marks.get(shard, 0), last)
    write_watermark(folder, marks)
    return history


def merchant_kinds(world) -> pl.LazyFrame:
    """merchant_id and kind of a generated world's merchants."""
    return pl.LazyFrame({"merchant_id": [m.merchant_id for m in world.merchants],
                         "kind": [m.kind.name for m in world.merchants]})
