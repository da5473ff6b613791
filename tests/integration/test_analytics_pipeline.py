"""Generated history -> ledger -> incremental Parquet snapshot -> fiscal, retail and integrity jobs.

Runs in a database of its own (other integration tests write ledger rows into the shared one)
and without Ray. Every figure is checked against sums computed here from the generated
documents themselves.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import date

import asyncpg
import polars as pl
import pytest

from jobs import demand as demand_job
from jobs import fiscal as fiscal_job
from jobs import integrity as integrity_job
from jobs import retail as retail_job
from jobs.snapshot import export_snapshot
from posray.adapters.pg import create_pool
from posray.adapters.pg_audit import PgAuditSource
from posray.services.loading import load_into_ledger
from posray.synthetic.generator import GeneratorConfig, build_world
from posray.adapters.parquet_snapshot import part_files, read_watermark, scan_table
from posray.domain.note import NoteSigner, NoteVerifier
from posray.services.audit import audit_shard
from posray.settings import Settings
from tests.conftest import private_database

FIRST = GeneratorConfig(seed=11, merchants=6, start=date(2026, 3, 2), days=10, documents=2500, shard_count=4)
SECOND = GeneratorConfig(seed=11, merchants=6, start=date(2026, 3, 12), days=3, documents=700, shard_count=4)
SETTINGS = Settings(public_base_url="http://posray.test")


@pytest.fixture(scope="module")
def analytics_dsn(run_id):
    """A database for this module alone, dropped afterwards."""
    with private_database(f"posray_{run_id}_analytics") as dsn:
        yield dsn


@pytest.fixture(scope="module")
def pipeline(analytics_dsn, seed_file, tmp_path_factory):
    """Load, snapshot, snapshot again, load more, snapshot again; keep what each step did."""
    snapshot = tmp_path_factory.mktemp("analytics") / "snapshot"
    first, second, loading, exporting = [], [], [], []
    loaded_first = load_into_ledger(analytics_dsn, seed_file, FIRST, settings=SETTINGS, sink=first.append,
                                    progress=loading.append)
    runs = [export_snapshot(analytics_dsn, snapshot, page_rows=700, progress=lambda *p: exporting.append(p))]
    files_after_first = sorted(p for t in ("documents", "items") for _, _, p in part_files(snapshot, t))
    runs.append(export_snapshot(analytics_dsn, snapshot, page_rows=700))
    files_after_rerun = sorted(p for t in ("documents", "items") for _, _, p in part_files(snapshot, t))
    loaded_second = load_into_ledger(analytics_dsn, seed_file, SECOND, settings=SETTINGS, sink=second.append)
    runs.append(export_snapshot(analytics_dsn, snapshot, page_rows=700))
    return {
        "snapshot": snapshot, "first": first, "second": second, "runs": runs,
        "loaded": (loaded_first, loaded_second), "files": (files_after_first, files_after_rerun),
        "progress": (loading, exporting),
    }


def lines_of(accepted) -> int:
    return sum(len(a.document["items"]) for a in accepted)


class TestLoading:
    def test_the_loader_records_every_generated_document_and_registers_the_world(self, pipeline, analytics_dsn):
        first, second = pipeline["loaded"]
        assert first.documents == len(pipeline["first"]) and second.documents == len(pipeline["second"])
        assert first.terminals_registered == len(build_world(FIRST).terminals) and second.terminals_registered == 0

        async def stored():
            conn = await asyncpg.connect(analytics_dsn)
            try:
                return (await conn.fetchval("SELECT count(*) FROM ledger_entries"),
                        await conn.fetchval("SELECT count(DISTINCT (terminal_id, counter)) FROM ledger_entries"),
                        await conn.fetchval("SELECT count(*) FROM terminals WHERE label IS NOT NULL"))
            finally:
                await conn.close()

        total = len(pipeline["first"]) + len(pipeline["second"])
        # the second window continues every terminal's counters: no (terminal, counter) twice
        assert asyncio.run(stored()) == (total, total, len(build_world(FIRST).terminals))

    def test_the_loader_reports_progress_with_growing_counts_up_to_every_document(self, pipeline):
        loading, _ = pipeline["progress"]
        assert loading == sorted(loading) and len(loading) >= 2
        assert loading[-1] == pipeline["loaded"][0].documents

    def test_the_loaded_ledger_passes_the_audit(self, pipeline, analytics_dsn, seed_file):
        from posray.adapters.keyfile import load_keys

        keys = load_keys(seed_file)
        verifier = NoteVerifier.from_verifier_key(NoteSigner(SETTINGS.log_key_name, keys.signing_seed).verifier_key())

        async def audit():
            pool = await create_pool(analytics_dsn)
            try:
                results = []
                for shard in range(FIRST.shard_count):
                    async with PgAuditSource(pool).snapshot() as reader:
                        results.append(await audit_shard(reader, shard, verifier, SETTINGS.log_origin(shard), keys.code))
                return results
            finally:
                await pool.close()

        results = asyncio.run(audit())
        assert all(r.ok for r in results), [r.first_divergence for r in results if not r.ok]
        assert sum(r.documents for r in results) == len(pipeline["first"]) + len(pipeline["second"])
        assert all(r.checkpoints >= 1 for r in results if r.documents)


class TestSnapshot:
    def test_the_first_export_takes_everything_and_a_rerun_adds_nothing(self, pipeline):
        first_run, rerun, _ = pipeline["runs"]
        assert (first_run.documents, first_run.items) == (len(pipeline["first"]), lines_of(pipeline["first"]))
        assert not first_run.failed
        assert (rerun.documents, rerun.items, rerun.exported) == (0, 0, [])
        assert pipeline["files"][0] == pipeline["files"][1]

    def test_the_export_reports_progress_per_page_up_to_every_ledger_row(self, pipeline):
        _, exporting = pipeline["progress"]
        done = [d for d, _ in exporting]
        assert done == sorted(done) and len(done) >= 4  # 2500 rows in 4 shards, pages of 700
        assert {t for _, t in exporting} == {pipeline["runs"][0].documents} == {done[-1]}

    def test_a_later_export_adds_exactly_the_new_documents(self, pipeline):
        third = pipeline["runs"][2]
        assert (third.documents, third.items) == (len(pipeline["second"]), lines_of(pipeline["second"]))
        documents = scan_table(pipeline["snapshot"], "documents").collect()
        every = pipeline["first"] + pipeline["second"]
        assert documents.height == len(every)
        assert documents.select(pl.struct("shard", "seq").n_unique()).item() == len(every)
        assert set(documents["code"]) == {a.code for a in every}
        last = defaultdict(int)
        for a in every:
            last[a.shard] = max(last[a.shard], a.seq)
        assert read_watermark(pipeline["snapshot"]) == dict(last)

    def test_files_left_by_an_interrupted_export_are_ignored_then_removed(self, pipeline, analytics_dsn):
        snapshot = pipeline["snapshot"]
        shard, _, existing = part_files(snapshot, "documents")[0]
        # What a crash leaves: rows past the watermark, written before the watermark moved.
        stray = existing.parent / f"part-{1_000_001:012d}-{1_000_009:012d}.parquet"
        pl.read_parquet(existing).with_columns(pl.col("seq") + 1_000_000).write_parquet(stray)
        before = scan_table(snapshot, "documents").select(pl.len()).collect().item()
        assert before == len(pipeline["first"]) + len(pipeline["second"])  # beyond the watermark: not read
        run = export_snapshot(analytics_dsn, snapshot)
        assert run.removed_files == 1 and not stray.exists() and run.documents == 0

    def test_the_snapshot_keeps_what_integrity_checks_need(self, pipeline):
        anomalies = pipeline["loaded"][0].anomalies
        documents = scan_table(pipeline["snapshot"], "documents").filter(
            pl.col("issued_local_date") < SECOND.start).collect()
        gaps = documents.filter(pl.col("terminal_id") == anomalies["counter_gaps"]["terminal_id"])["counter"]
        assert sorted(set(range(1, gaps.max() + 1)) - set(gaps)) == sorted(anomalies["counter_gaps"]["missing_counters"])
        late = documents.filter(pl.col("terminal_id") == build_world(FIRST).planted.late_upload)
        assert (late["accepted_at"] - late["issued_at"]).max().total_seconds() > 86_400


def expected_by(accepted, key) -> dict:
    """Per key: sales and refunds gross, net VAT and net cash, computed from the documents."""
    out = defaultdict(Counter)
    for a in accepted:
        doc = a.document
        sign = {"sale": 1, "refund": -1}.get(doc["type"], 0)
        k = key(a)
        out[k][doc["type"]] += doc["total_minor"]
        out[k]["net_vat"] += sign * sum(v["vat_minor"] for v in doc["vat"])
        out[k]["net_cash"] += sign * sum(p["amount_minor"] for p in doc["payments"] if p["method"] == "cash")
    return out


class TestJobs:
    @pytest.fixture(scope="class")
    def reports(self, pipeline, tmp_path_factory):
        out = tmp_path_factory.mktemp("reports")
        common = ["--data-dir", str(out / "data"), "--snapshot", str(pipeline["snapshot"]), "--out", str(out)]
        assert fiscal_job.main(common + ["--period", "month"]) == 0
        assert retail_job.main(common + ["--top", "5"]) == 0
        return out

    def test_fiscal_totals_match_sums_of_the_documents(self, pipeline, reports):
        merchant_of = {t.terminal_id: t.merchant_id for t in build_world(FIRST).terminals}
        every = pipeline["first"] + pipeline["second"]
        expected = expected_by(every, lambda a: (merchant_of[a.document["terminal_id"]], a.document["issued_at"][:7]))
        totals = pl.read_parquet(reports / "fiscal" / "totals.parquet")
        assert totals.height == len(expected)
        for row in totals.iter_rows(named=True):
            want = expected[(row["merchant_id"], row["period_start"].isoformat()[:7])]
            assert (row["sales_gross_minor"], row["refunds_gross_minor"], row["corrections_gross_minor"]) == \
                   (want["sale"], want["refund"], want["correction"])
            assert row["net_gross_minor"] == want["sale"] - want["refund"]
            assert (row["net_vat_minor"], row["net_cash_minor"]) == (want["net_vat"], want["net_cash"])

    def test_vat_by_rate_matches_the_documents_vat_lines(self, pipeline, reports):
        expected = Counter()
        for a in pipeline["first"] + pipeline["second"]:
            sign = {"sale": 1, "refund": -1}.get(a.document["type"], 0)
            for line in a.document["vat"]:
                expected[line["rate_bp"]] += sign * line["vat_minor"]
        vat = pl.read_parquet(reports / "fiscal" / "vat_by_rate.parquet")
        got = vat.group_by("rate_bp").agg(pl.col("net_vat_minor").sum()).rows()
        assert dict(got) == {rate: amount for rate, amount in expected.items()}

    def test_retail_revenue_by_day_and_products_match_the_documents(self, pipeline, reports):
        every = pipeline["first"] + pipeline["second"]
        expected = expected_by(every, lambda a: a.document["issued_at"][:10])
        by_day = pl.read_parquet(reports / "retail" / "revenue_by_day.parquet")
        assert {r["date"].isoformat(): r["net_revenue_minor"] for r in by_day.iter_rows(named=True)} == \
               {day: e["sale"] - e["refund"] for day, e in expected.items()}
        products = Counter()
        for a in every:
            sign = {"sale": 1, "refund": -1}.get(a.document["type"], 0)
            for item in a.document["items"]:
                products[item["sku"]] += sign * item["amount_minor"]
        top = pl.read_parquet(reports / "retail" / "top_products.parquet")
        assert top["sku"].to_list() == [sku for sku, _ in products.most_common(5)]
        assert top["net_revenue_minor"].to_list() == [amount for _, amount in products.most_common(5)]

    def test_retail_baskets_and_stores_match_the_documents(self, pipeline, reports):
        sales = [a.document for a in pipeline["first"] + pipeline["second"] if a.document["type"] == "sale"]
        sizes = pl.read_parquet(reports / "retail" / "basket_sizes.parquet")
        assert dict(sizes.select("item_count", "baskets").rows()) == dict(Counter(len(d["items"]) for d in sales))
        store_of = {t.terminal_id: t.store_id for t in build_world(FIRST).terminals}
        stores = pl.read_parquet(reports / "retail" / "stores.parquet")
        assert set(stores["store"]) == {store_of[d["terminal_id"]] for d in sales}

    def test_reports_have_their_charts_and_an_html_page_embedding_them(self, reports):
        for job, charts in (("fiscal", 4), ("retail", 8)):
            pngs = list((reports / job).glob("*.png"))
            assert len(pngs) == charts and all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
            page = (reports / job / "report.html").read_text()
            assert page.count("data:image/png;base64,") == charts

    def test_integrity_finds_the_planted_gaps_late_uploads_and_duplicates_of_both_loads(self, pipeline, tmp_path):
        assert integrity_job.main(["--data-dir", str(tmp_path), "--snapshot", str(pipeline["snapshot"]),
                                   "--out", str(tmp_path)]) == 0
        first, second = (summary.anomalies for summary in pipeline["loaded"])
        gaps = pl.read_parquet(tmp_path / "integrity" / "counter_gaps.parquet")
        missing = [c for r in gaps.iter_rows(named=True) for c in range(r["first_missing"], r["last_missing"] + 1)]
        assert set(gaps["terminal_id"]) == {first["counter_gaps"]["terminal_id"]}
        assert missing == sorted(first["counter_gaps"]["missing_counters"] + second["counter_gaps"]["missing_counters"])
        late = pl.read_parquet(tmp_path / "integrity" / "late_uploads.parquet")
        assert set(late["terminal_id"]) == {e["terminal_id"] for e in first["late_uploads"] + second["late_uploads"]}
        pairs = pl.read_parquet(tmp_path / "integrity" / "duplicates.parquet")
        planted = first["duplicates"]["terminal_id"]
        assert {(planted, a, b) for a, b in first["duplicates"]["pairs"] + second["duplicates"]["pairs"]} <= \
               set(pairs.select("terminal_id", "first_counter", "second_counter").rows())

    def test_the_demand_job_needs_a_full_week_with_sales_before_it(self, pipeline, tmp_path, capsys):
        # 13 days from a Monday: the last full week has no week before it to be forecast from.
        assert demand_job.main(["--data-dir", str(tmp_path), "--snapshot", str(pipeline["snapshot"]),
                                "--out", str(tmp_path)]) == 1
        assert "no full week (Monday to Sunday) of sales with a day of sales before it" in capsys.readouterr().err

    def test_a_job_without_a_snapshot_says_so(self, tmp_path, capsys):
        assert fiscal_job.main(["--data-dir", str(tmp_path), "--snapshot", str(tmp_path / "none"),
                                "--out", str(tmp_path)]) == 1
        assert "no documents" in capsys.readouterr().err
