"""Snapshot decoding (ledger rows -> documents and items tables), layout, watermark and reads."""

from __future__ import annotations

from datetime import date, datetime, timezone

import polars as pl
import pytest

from posray.adapters.pg_snapshot import LedgerPage
from posray.analytics.snapshot import DOCUMENTS_SCHEMA, ITEMS_SCHEMA, decode_page, restrict
from posray.adapters.parquet_snapshot import part_files, part_path, read_watermark, scan_table, write_watermark
from posray.domain.chain import record_bytes
from posray.domain.errors import LedgerCorrupted
from posray.domain.merkle import leaf_hash
from posray.domain.transaction import canonical_document

ACCEPTED_MS = 1_772_409_600_123  # 2026-03-02T00:00:00.123Z


def page(documents: list[dict], shard: int = 3, first_seq: int = 10, stores=None, records=None) -> LedgerPage:
    seqs = list(range(first_seq, first_seq + len(documents)))
    made = records or [
        record_bytes(shard, seq, f"CODE{seq:016d}", ACCEPTED_MS + seq, canonical_document(doc))
        for seq, doc in zip(seqs, documents)
    ]
    return LedgerPage(
        shard=shard, seq=seqs, batch_no=[7] * len(seqs), leaf_index=list(range(len(seqs))),
        merchant_id=["m-1"] * len(seqs), store=stores or ["store-a"] * len(seqs),
        record=made, leaf_hash=[leaf_hash(r) for r in made],
    )


@pytest.fixture
def two_documents(make_document):
    sale = make_document(
        lines=((1000, 1200, 2000), (2500, 199, 1000)), methods=("cash", "card"),
        issued_at="2026-03-02T00:30:00.250+01:00", counter=5,
    )
    refund = make_document(
        lines=((1000, 300, 1000),), methods=("voucher", "mobile"), issued_at="2026-03-02T09:15:00Z",
        type="refund", counter=6, refers_to="A" * 20,
    )
    return sale, refund


class TestDecodePage:
    def test_documents_have_the_documented_schema_and_positions(self, two_documents):
        documents, items = decode_page(page(two_documents))
        assert documents.schema == DOCUMENTS_SCHEMA and items.schema == ITEMS_SCHEMA
        assert documents.select("shard", "seq", "batch_no", "leaf_index", "code").rows() == [
            (3, 10, 7, 0, "CODE0000000000000010"), (3, 11, 7, 1, "CODE0000000000000011")]
        assert documents["merchant_id"].to_list() == ["m-1", "m-1"]

    def test_issue_times_keep_the_local_date_and_convert_to_utc(self, two_documents):
        documents, _ = decode_page(page(two_documents))
        sale, refund = documents.row(0, named=True), documents.row(1, named=True)
        # 00:30 local at +01:00 is still the previous day in UTC; the local date is the receipt's.
        assert sale["issued_at"] == datetime(2026, 3, 1, 23, 30, 0, 250_000, tzinfo=timezone.utc)
        assert sale["issued_local"] == datetime(2026, 3, 2, 0, 30, 0, 250_000)
        assert (sale["issued_local_date"], sale["utc_offset_min"]) == (date(2026, 3, 2), 60)
        assert refund["issued_at"] == datetime(2026, 3, 2, 9, 15, tzinfo=timezone.utc)
        assert refund["utc_offset_min"] == 0
        assert sale["accepted_at"] == datetime(2026, 3, 2, 0, 0, 0, 133_000, tzinfo=timezone.utc)

    def test_payments_split_into_cash_card_and_other_and_vat_is_summed(self, two_documents):
        sale_doc, refund_doc = two_documents
        documents, _ = decode_page(page(two_documents))
        sale, refund = documents.row(0, named=True), documents.row(1, named=True)
        # sale: 1200 + 498 (2.5 x 199 rounded half up) = 1698, split half cash, rest card
        assert (sale["total_minor"], sale["cash_minor"], sale["card_minor"], sale["other_minor"]) == (1698, 849, 849, 0)
        assert sale["vat_minor"] == 200 + 45  # 1200 at 20 %, 498 at 10 %
        assert sale["vat"] == [{"rate_bp": 1000, "gross_minor": 498, "vat_minor": 45},
                               {"rate_bp": 2000, "gross_minor": 1200, "vat_minor": 200}]
        # refund: voucher is "other", mobile counts as card
        assert (refund["cash_minor"], refund["card_minor"], refund["other_minor"]) == (0, 150, 150)
        assert (refund["type"], refund["refers_to"], refund["item_count"]) == ("refund", "A" * 20, 1)
        assert sale["refers_to"] is None and sale_doc["counter"] == sale["counter"]

    def test_items_are_one_row_per_line_numbered_in_receipt_order(self, two_documents):
        _, items = decode_page(page(two_documents))
        assert items.select("seq", "line_no", "amount_minor", "vat_rate_bp", "type").rows() == [
            (10, 0, 1200, 2000, "sale"), (10, 1, 498, 1000, "sale"), (11, 0, 300, 1000, "refund")]
        assert items["issued_local_date"].to_list() == [date(2026, 3, 2)] * 3
        assert items["store"].to_list() == ["store-a"] * 3

    def test_a_record_that_does_not_match_its_leaf_hash_is_refused(self, two_documents):
        tampered = page(two_documents)
        records = list(tampered.record)
        records[1] = records[1].replace(b'"total_minor":300', b'"total_minor":30')
        bad = LedgerPage(**{**{f: getattr(tampered, f) for f in tampered.__slots__}, "record": records})
        with pytest.raises(LedgerCorrupted, match="seq 11"):
            decode_page(bad)

    def test_a_record_naming_another_position_is_refused(self, two_documents):
        moved = [record_bytes(3, 99, "X" * 20, ACCEPTED_MS, canonical_document(d)) for d in two_documents]
        with pytest.raises(LedgerCorrupted, match="another position"):
            decode_page(page(two_documents, records=moved))


class TestLayoutAndReads:
    def write(self, folder, documents: pl.DataFrame, first: int, last: int, shard: int = 3):
        path = part_path(folder, "documents", "2026-03-02", shard, first, last)
        path.parent.mkdir(parents=True, exist_ok=True)
        documents.write_parquet(path)

    def test_part_files_are_named_after_their_ledger_page(self, tmp_path):
        path = part_path(tmp_path, "items", "2026-03-02", 5, 1, 1234)
        assert path == tmp_path / "items" / "day=2026-03-02" / "shard=5" / "part-000000000001-000000001234.parquet"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
        assert part_files(tmp_path, "items") == [(5, 1, path)]

    def test_the_watermark_round_trips_and_a_missing_one_is_empty(self, tmp_path):
        assert read_watermark(tmp_path) == {}
        write_watermark(tmp_path, {0: 12, 3: 7})
        assert read_watermark(tmp_path) == {0: 12, 3: 7}
        assert not list(tmp_path.glob("*.tmp"))

    def test_reads_see_only_rows_up_to_the_watermark(self, tmp_path, two_documents):
        documents, _ = decode_page(page(two_documents))
        self.write(tmp_path, documents.head(1), 10, 10)
        self.write(tmp_path, documents.tail(1), 11, 11)  # as if an export stopped before its watermark
        write_watermark(tmp_path, {3: 10})
        assert scan_table(tmp_path, "documents").collect()["seq"].to_list() == [10]
        write_watermark(tmp_path, {3: 11})
        assert sorted(scan_table(tmp_path, "documents").collect()["seq"].to_list()) == [10, 11]

    def test_an_empty_snapshot_reads_as_an_empty_table_with_the_schema(self, tmp_path):
        frame = scan_table(tmp_path, "items").collect()
        assert frame.is_empty() and frame.schema == ITEMS_SCHEMA
        with pytest.raises(ValueError, match="unknown snapshot table"):
            scan_table(tmp_path, "payments")

    def test_restrict_filters_by_local_date_and_merchant(self, two_documents):
        documents, _ = decode_page(page(two_documents))
        both = pl.concat([documents, documents.with_columns(pl.lit("m-2").alias("merchant_id"),
                                                            pl.lit(date(2026, 3, 5)).alias("issued_local_date"))])
        assert restrict(both.lazy(), since=date(2026, 3, 3)).collect()["merchant_id"].unique().to_list() == ["m-2"]
        assert restrict(both.lazy(), until=date(2026, 3, 2)).collect().height == 2
        assert restrict(both.lazy(), merchants=["m-1"]).collect().height == 2
