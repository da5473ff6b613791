"""The bulk snapshot writer: the snapshot's exact schema and layout, consistent documents, and the
distributions of the document generator going through the ledger record and snapshot decoder."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from posray.synthetic.bulk import read_manifest, write_bulk_snapshot
from posray.analytics.snapshot import DOCUMENTS_SCHEMA, ITEMS_SCHEMA
from posray.adapters.parquet_snapshot import part_files, read_watermark, scan_table
from posray.synthetic.world import GeneratorConfig, build_world
from posray.domain.codes import CodeKey, legacy_code
from tests.unit.analytics_generated import generated

CONFIG = GeneratorConfig(seed=3, merchants=6, start=date(2026, 3, 2), days=14, documents=4000, shard_count=4,
                         anomalies=False)


@pytest.fixture(scope="module")
def bulk(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bulk")
    written = write_bulk_snapshot(folder, CONFIG)
    return folder, written, scan_table(folder, "documents").collect(), scan_table(folder, "items").collect()


class TestLayout:
    def test_tables_have_exactly_the_snapshot_schema_in_the_files_and_through_scan_table(self, bulk):
        folder, _, documents, items = bulk
        assert documents.schema == DOCUMENTS_SCHEMA and items.schema == ITEMS_SCHEMA
        for table, schema in (("documents", DOCUMENTS_SCHEMA), ("items", ITEMS_SCHEMA)):
            for _, _, path in part_files(folder, table)[:5]:
                assert pl.read_parquet_schema(path) == dict(schema)

    def test_one_file_per_table_day_and_shard_named_after_its_sequence_range(self, bulk):
        folder, written, documents, items = bulk
        for table, frame in (("documents", documents), ("items", items)):
            files = part_files(folder, table)
            assert len(files) == documents.select("issued_local_date", "shard").n_unique()
            for shard, first_seq, path in files:
                rows = pl.read_parquet(path)
                day = date.fromisoformat(path.parent.parent.name.removeprefix("day="))
                assert set(rows["shard"]) == {shard} and set(rows["issued_local_date"]) == {day}
                assert path.name == f"part-{first_seq:012d}-{rows['seq'].max():012d}.parquet"
                assert rows["seq"].min() == first_seq
        assert written.files == 2 * len(part_files(folder, "documents"))
        assert (written.documents, written.items) == (documents.height, items.height)

    def test_the_watermark_holds_each_shards_last_sequence_and_the_manifest_the_configuration(self, bulk):
        folder, _, documents, _ = bulk
        last = dict(documents.group_by("shard").agg(pl.col("seq").max()).iter_rows())
        assert read_watermark(folder) == last
        assert read_manifest(folder)["documents"] == CONFIG.documents

    def test_the_same_configuration_writes_the_same_rows(self, bulk, tmp_path):
        write_bulk_snapshot(tmp_path, CONFIG)
        assert scan_table(tmp_path, "documents").collect().sort("shard", "seq").equals(bulk[2].sort("shard", "seq"))
        assert scan_table(tmp_path, "items").collect().sort("shard", "seq", "line_no").equals(
            bulk[3].sort("shard", "seq", "line_no"))

    def test_real_receipt_codes_when_given_the_code_key(self, tmp_path):
        key = CodeKey(bytes(range(32)))
        small = GeneratorConfig(seed=3, merchants=3, days=2, documents=150, shard_count=2)
        write_bulk_snapshot(tmp_path, small, code_key=key)
        documents = scan_table(tmp_path, "documents").collect()
        codes = documents.select("shard", "seq", "code").iter_rows()
        assert all(code == legacy_code(key, shard, seq) for shard, seq, code in codes)


class TestDocuments:
    def test_totals_vat_lines_payments_and_item_counts_add_up(self, bulk):
        _, _, documents, items = bulk
        lines = items.group_by("shard", "seq").agg(pl.col("amount_minor").sum().alias("lines"), pl.len().alias("n"))
        joined = documents.join(lines, on=["shard", "seq"])
        assert joined.height == documents.height
        assert (joined["total_minor"] == joined["lines"]).all() and (joined["item_count"] == joined["n"]).all()
        def vat_sum(field: str) -> pl.Expr:
            return pl.col("vat").list.eval(pl.element().struct.field(field)).list.sum().alias(field)

        vat = documents.select(pl.col("total_minor").alias("g"), pl.col("vat_minor").alias("v"),
                               vat_sum("gross_minor"), vat_sum("vat_minor"))
        assert (vat["g"] == vat["gross_minor"]).all() and (vat["v"] == vat["vat_minor"]).all()
        paid = documents["cash_minor"] + documents["card_minor"] + documents["other_minor"]
        assert (paid == documents["total_minor"]).all()

    def test_line_amounts_and_vat_are_rounded_half_up_like_the_domain(self, bulk):
        from posray.domain.transaction import line_amount, vat_included

        _, _, documents, items = bulk
        for qty, price, amount in items.select("qty_milli", "unit_price_minor", "amount_minor").head(2000).iter_rows():
            assert amount == line_amount(qty, price)
        for lines in documents["vat"].head(2000):
            assert all(line["vat_minor"] == vat_included(line["gross_minor"], line["rate_bp"]) for line in lines)

    def test_sequences_follow_acceptance_per_shard_and_counters_issue_order_per_terminal(self, bulk):
        _, _, documents, _ = bulk
        for _, rows in documents.sort("seq").group_by("shard"):
            assert rows["seq"].to_list() == list(range(1, rows.height + 1))
            assert rows["accepted_at"].is_sorted()
        for _, rows in documents.sort("counter").group_by("terminal_id"):
            assert rows["counter"].to_list() == list(range(1, rows.height + 1))
            assert rows["issued_at"].is_sorted()
        world = build_world(CONFIG)
        shard_of = {t.terminal_id: t.shard for t in world.terminals}
        assert all(shard_of[t] == s for t, s in documents.select("terminal_id", "shard").unique().iter_rows())

    def test_refunds_and_corrections_name_an_earlier_sale_of_the_same_terminal(self, bulk):
        _, _, documents, _ = bulk
        sales = documents.filter(pl.col("type") == "sale").select("code", pl.col("terminal_id").alias("t"),
                                                                  pl.col("issued_at").alias("at"))
        others = documents.filter(pl.col("type") != "sale")
        assert others.height and documents.filter(pl.col("type") == "sale")["refers_to"].is_null().all()
        named = others.join(sales, left_on="refers_to", right_on="code")
        assert named.height == others.height
        assert (named["terminal_id"] == named["t"]).all() and (named["at"] <= named["issued_at"]).all()

    def test_times_are_local_shop_hours_with_the_central_european_offset(self, bulk):
        _, _, documents, _ = bulk
        kinds = {m.merchant_id: m.kind for m in build_world(CONFIG).merchants}
        columns = ("merchant_id", "issued_local", "utc_offset_min", "issued_at")
        for merchant, local, offset, utc in documents.select(columns).iter_rows():
            open_h, close_h = kinds[merchant].hours[local.weekday()]
            assert open_h * 3600 <= local.hour * 3600 + local.minute * 60 + local.second < close_h * 3600
            assert utc.replace(tzinfo=None) == local - timedelta(minutes=offset)
        accepted = documents["accepted_at"].cast(pl.Int64) - documents["issued_at"].cast(pl.Int64) // 1000
        assert accepted.min() >= 80 and accepted.max() <= 1500


class TestLikeTheGenerator:
    """The generator's documents, recorded and decoded as the snapshot export does, against the
    bulk rows of the same configuration: another draw of the same world and habits."""

    @pytest.fixture(scope="class")
    def reference(self):
        _, documents, items = generated(CONFIG)
        return documents, items

    def test_both_have_the_same_columns_merchants_stores_terminals_and_products(self, bulk, reference):
        documents, items = reference
        assert documents.schema == bulk[2].schema and items.schema == bulk[3].schema
        for column in ("merchant_id", "store", "terminal_id", "currency", "utc_offset_min"):
            assert set(bulk[2][column]) == set(documents[column]), column
        sold = lambda frame: set(frame.filter(pl.col("type") == "sale").select("sku", "name", "category").iter_rows())
        assert sold(bulk[3]) == sold(items)
        assert set(bulk[3]["vat_rate_bp"]) == set(items["vat_rate_bp"])

    @pytest.mark.parametrize("measure, tolerance", [
        (pl.len(), 0.06),
        (pl.col("total_minor").filter(pl.col("type") == "sale").mean(), 0.08),
        (pl.col("item_count").filter(pl.col("type") == "sale").mean(), 0.06),
        ((pl.col("cash_minor") > 0).mean(), 0.08),
        ((pl.col("other_minor") > 0).mean(), 0.6),
        ((pl.col("type") == "refund").mean(), 0.35),
    ])
    def test_volumes_baskets_and_payments_match_within_sampling_noise(self, bulk, reference, measure, tolerance):
        ours, theirs = bulk[2].select(measure).item(), reference[0].select(measure).item()
        assert ours == pytest.approx(theirs, rel=tolerance)

    def test_each_kind_sells_the_same_share_of_the_revenue_and_each_weekday_of_the_receipts(self, bulk, reference):
        def shares(frame, key):
            return dict(frame.group_by(key).agg(pl.len()).with_columns(pl.col("len") / pl.col("len").sum()).iter_rows())

        kind = pl.col("merchant_id").str.split("-").list.get(1).alias("kind")
        weekday = pl.col("issued_local_date").dt.weekday().alias("weekday")
        hour = pl.col("issued_local").dt.hour().alias("hour")
        for key in (kind, weekday, hour):
            ours, theirs = shares(bulk[2], key), shares(reference[0], key)
            assert ours.keys() == theirs.keys()
            assert all(abs(ours[k] - theirs[k]) < 0.02 for k in ours), key
