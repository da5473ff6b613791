"""Integrity checks: hand-built cases against the documented rules, then the generator's planted
anomalies found exactly, with nothing else flagged, on small generated histories."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import polars as pl
import pytest

from posray.analytics import integrity
from posray.synthetic.generator import GeneratorConfig
from tests.unit.analytics_frames import OFFSET_MIN, documents, items
from tests.unit.analytics_generated import generated, merchant_kinds

MON = datetime(2026, 3, 2, 10, 0)


def utc(local: datetime) -> datetime:
    """The UTC time of a local time of the test documents (naive, as the frame builder takes it)."""
    return local - timedelta(minutes=OFFSET_MIN)


def sale(local: datetime, counter: int, terminal_id: str = "t1", *, late_s: float = 1.0, **fields) -> dict:
    return {"local": local, "vat": [(2000, 1000)], "counter": counter, "terminal_id": terminal_id,
            "accepted_at": utc(local) + timedelta(seconds=late_s), **fields}


class TestCounterGaps:
    def test_missing_runs_are_listed_per_terminal_and_a_late_start_is_no_gap(self):
        docs = documents(*(sale(MON + timedelta(minutes=c), c) for c in (1, 2, 5, 6, 9)),
                         *(sale(MON + timedelta(minutes=c), c, "t2") for c in (3, 4)))
        gaps = integrity.counter_gaps(docs).collect()
        assert gaps.select("terminal_id", "first_missing", "last_missing", "missing").rows() == [
            ("t1", 3, 4, 2), ("t1", 7, 8, 2)]
        assert gaps["before_issued_at"][0] == utc(MON + timedelta(minutes=2)).replace(tzinfo=timezone.utc)
        assert gaps["after_issued_at"][0] == utc(MON + timedelta(minutes=5)).replace(tzinfo=timezone.utc)

    def test_consecutive_counters_have_no_gap_whatever_the_order_of_arrival(self):
        docs = documents(*(sale(MON + timedelta(minutes=c), c) for c in (3, 1, 2)))
        assert integrity.counter_gaps(docs).collect().is_empty()


class TestLateUploads:
    def test_a_backlog_is_one_row_with_its_issue_dates_and_delays(self):
        wed_0830 = utc(datetime(2026, 3, 4, 8, 30))
        docs = documents(
            sale(MON, 1, "t1"),
            sale(MON, 1, "t2", late_s=(wed_0830 - utc(MON)).total_seconds()),
            sale(MON + timedelta(days=1, hours=1), 2, "t2", late_s=(wed_0830 - utc(MON + timedelta(days=1, hours=1))).total_seconds()),
            sale(MON + timedelta(days=2, hours=1), 3, "t2"),
        )
        late = integrity.late_uploads(docs).collect().row(0, named=True)
        assert integrity.late_uploads(docs).collect().height == 1
        assert (late["terminal_id"], late["uploaded_on"], late["late_documents"]) == ("t2", date(2026, 3, 4), 2)
        assert (late["first_issued_date"], late["last_issued_date"]) == (date(2026, 3, 2), date(2026, 3, 3))
        assert late["delay_h_max"] == pytest.approx(46.5)
        assert late["delay_h_median"] == pytest.approx((46.5 + 21.5) / 2)

    def test_the_threshold_is_strict_and_configurable(self):
        docs = documents(sale(MON, 1, late_s=59 * 60), sale(MON, 2, late_s=61 * 60))
        assert integrity.late_uploads(docs).collect()["late_documents"].to_list() == [1]
        assert integrity.late_uploads(docs, timedelta(minutes=30)).collect()["late_documents"].to_list() == [2]


def refund_docs(terminals: dict[tuple[str, str], tuple[int, int]]) -> pl.LazyFrame:
    """`sales` sales and `refunds` refunds for each (merchant, terminal)."""
    rows = []
    for (merchant, terminal), (sales, refunds) in terminals.items():
        for n in range(sales + refunds):
            rows.append(sale(MON + timedelta(minutes=n), n + 1, terminal, merchant_id=merchant,
                             type="sale" if n < sales else "refund"))
    return documents(*rows)


class TestRefundOutliers:
    TERMINALS = {("b1", "b1-t1"): (100, 1), ("b1", "b1-t2"): (100, 0), ("b2", "b2-t1"): (100, 1),
                 ("b2", "b2-t2"): (100, 25), ("b2", "b2-t3"): (20, 10),
                 ("f1", "f1-t1"): (100, 5), ("f1", "f1-t2"): (100, 6), ("f2", "f2-t1"): (100, 4)}
    KINDS = pl.LazyFrame({"merchant_id": ["b1", "b2", "f1", "f2"], "kind": ["bakery", "bakery", "fashion", "fashion"]})

    def test_a_terminal_far_above_its_kind_is_flagged_with_the_documented_score(self):
        result = integrity.refund_outliers(refund_docs(self.TERMINALS), self.KINDS).collect()
        assert result.filter("flagged")["terminal_id"].to_list() == ["b2-t2"]
        top = result.row(0, named=True)
        # bakery ratios of terminals with 30+ sales: 0.01, 0, 0.01, 0.25 -> median 0.01, MAD 0.005;
        # the other bakery tills refund 2 per 300 sales, so
        # scale = max(1.4826 * 0.005, sqrt(p (1 - p) / 100) with p = 2/300, 0.005)
        assert (top["terminal_id"], top["peer_group"], top["peers"], top["judged"]) == ("b2-t2", "bakery", 4, True)
        assert (top["peer_median"], top["peer_mad"]) == (pytest.approx(0.01), pytest.approx(0.005))
        p = 2 / 300
        assert top["z"] == pytest.approx(0.24 / max(1.4826 * 0.005, (p * (1 - p) / 100) ** 0.5, 0.005))

    def test_a_handful_of_refunds_is_never_flagged_however_few_the_peers_refund(self):
        terminals = {("b1", f"b1-t{n}"): (100, 0) for n in range(4)} | {("b1", "b1-t9"): (40, 4)}
        result = integrity.refund_outliers(refund_docs(terminals)).collect()
        assert result.row(0, named=True)["terminal_id"] == "b1-t9"
        assert result["z"][0] > integrity.REFUND_K and not result["flagged"].any()

    def test_few_sales_and_small_groups_are_never_flagged_and_kinds_have_their_own_norm(self):
        result = integrity.refund_outliers(refund_docs(self.TERMINALS), self.KINDS).collect()
        by_terminal = {r["terminal_id"]: r for r in result.iter_rows(named=True)}
        assert by_terminal["b2-t3"]["refund_ratio"] == 0.5 and not by_terminal["b2-t3"]["flagged"]  # 20 sales
        assert by_terminal["f1-t2"]["z"] < 1  # 6 % is normal among fashion shops
        # each merchant its own group: b2 has two terminals with 30+ sales, too few to judge
        alone = integrity.refund_outliers(refund_docs(self.TERMINALS)).collect()
        assert not alone["flagged"].any()
        assert set(alone["peer_group"]) == {"b1", "b2", "f1", "f2"}

    def test_k_sets_how_far_above_counts(self):
        result = integrity.refund_outliers(refund_docs(self.TERMINALS), self.KINDS, k=30).collect()
        assert not result["flagged"].any()


def basket_docs(*baskets) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Sales of t1 from (seconds after MON, [(sku, qty), ...], payment method)."""
    docs, lines = [], []
    for seq, (after_s, basket, method) in enumerate(baskets, start=1):
        local = MON + timedelta(seconds=after_s)
        total = sum(100 * qty for _, qty in basket)
        docs.append(sale(local, seq, vat=[(2000, total)], paid={method: total}, item_count=len(basket)))
        for line_no, (sku, qty) in enumerate(basket):
            lines.append({"seq": seq, "line_no": line_no, "local": local, "sku": sku, "name": sku, "category": "c",
                          "qty_milli": 1000 * qty, "unit_price_minor": 100, "amount_minor": 100 * qty})
    return documents(*docs), items(*lines)


class TestDuplicateReceipts:
    def test_the_same_basket_total_and_payment_within_the_window_is_a_pair(self):
        docs, lines = basket_docs(
            (0, [("A", 1), ("B", 2)], "card"),
            (30, [("B", 2), ("A", 1)], "card"),     # same multiset, lines in another order: a pair
            (100, [("A", 1), ("B", 2)], "card"),    # 70 s after the previous one: outside the window
            (110, [("A", 2), ("B", 1)], "card"),    # same total, other quantities
            (120, [("A", 2), ("B", 1)], "cash"),    # same basket, paid otherwise
        )
        pairs = integrity.duplicate_receipts(docs, lines).collect()
        assert pairs.select("first_counter", "second_counter", "seconds_apart", "same_content").rows() == [(1, 2, 30.0, 3)]
        wider = integrity.duplicate_receipts(docs, lines, timedelta(seconds=80)).collect()
        assert wider.select("first_counter", "second_counter").rows() == [(1, 2), (2, 3)]

    def test_chance_is_estimated_from_how_common_the_basket_is_and_how_busy_the_till(self):
        docs, lines = basket_docs((0, [("A", 1)], "card"), (20, [("A", 1)], "card"), (40, [("B", 1)], "card"),
                                  (4000, [("C", 1)], "card"))
        pair = integrity.duplicate_receipts(docs, lines).collect().row(0, named=True)
        # N = 4 documents, k = mean number of others in the minute before each = (0 + 1 + 2 + 0) / 4,
        # n = 2 with this content: n (n - 1) k / (N - 1)
        assert pair["expected_by_chance"] == pytest.approx(2 * 1 * 0.75 / 3)
        assert not pair["unlikely_by_chance"]


# Two merchants of each kind, so every terminal has peers of its kind.
GENERATED = [
    GeneratorConfig(seed=3, merchants=12, start=date(2026, 3, 2), days=14, documents=4000, shard_count=4),
    GeneratorConfig(seed=8, merchants=12, start=date(2026, 3, 9), days=14, documents=4000, shard_count=4),
]


@pytest.fixture(scope="module", params=GENERATED, ids=["seed3", "seed8"])
def world_and_frames(request):
    history, docs, lines = generated(request.param)
    return history, docs.lazy(), lines.lazy()


class TestPlantedAnomalies:
    def test_the_skipped_counters_are_found_exactly_and_nowhere_else(self, world_and_frames):
        history, docs, _ = world_and_frames
        gaps = integrity.counter_gaps(docs).collect()
        planted = history.anomalies["counter_gaps"]
        assert set(gaps["terminal_id"]) == {planted["terminal_id"]}
        found = [c for r in gaps.iter_rows(named=True) for c in range(r["first_missing"], r["last_missing"] + 1)]
        assert found == sorted(planted["missing_counters"])

    def test_every_offline_terminal_and_only_those_upload_late_their_backlog_the_morning_after(self, world_and_frames):
        history, docs, _ = world_and_frames
        late = integrity.late_uploads(docs).collect()
        episodes = {e["terminal_id"]: e for e in history.anomalies["late_uploads"]}
        assert sorted(late["terminal_id"]) == sorted(episodes)
        for row in late.iter_rows(named=True):
            episode = episodes[row["terminal_id"]]
            first, last = date.fromisoformat(episode["first_day"]), date.fromisoformat(episode["last_day"])
            assert row["uploaded_on"] == last + timedelta(days=1)
            assert first <= row["first_issued_date"] <= row["last_issued_date"] <= last
        planted = late.filter(pl.col("terminal_id") == history.world.planted.late_upload)
        assert planted["delay_h_max"][0] > 72

    def test_only_the_refund_heavy_terminal_is_flagged_among_its_peers(self, world_and_frames):
        history, docs, _ = world_and_frames
        refunds = integrity.refund_outliers(docs, merchant_kinds(history.world)).collect()
        assert refunds.filter("flagged")["terminal_id"].to_list() == [history.world.planted.refund_heavy]
        assert refunds["z"][0] > 3 * integrity.REFUND_K

    def test_the_duplicated_receipts_are_the_pairs_found_and_none_looks_like_chance(self, world_and_frames):
        history, docs, lines = world_and_frames
        pairs = integrity.duplicate_receipts(docs, lines).collect()
        planted = history.anomalies["duplicates"]
        assert sorted(pairs.select("terminal_id", "first_counter", "second_counter").rows()) == \
               sorted((planted["terminal_id"], a, b) for a, b in planted["pairs"])
        assert pairs["unlikely_by_chance"].all()

    def test_the_terminal_summary_names_each_planted_terminal_for_its_anomaly(self, world_and_frames):
        history, docs, lines = world_and_frames
        planted = history.world.planted
        findings = integrity.by_terminal(
            integrity.counter_gaps(docs), integrity.late_uploads(docs),
            integrity.refund_outliers(docs, merchant_kinds(history.world)),
            integrity.duplicate_receipts(docs, lines)).collect()
        rows = {r["terminal_id"]: r for r in findings.iter_rows(named=True)}
        assert rows[planted.counter_gaps]["missing_counters"] == len(history.anomalies["counter_gaps"]["missing_counters"])
        assert rows[planted.late_upload]["late_documents"] > 0
        assert rows[planted.refund_heavy]["refund_z"] > integrity.REFUND_K
        assert rows[planted.duplicates]["duplicate_pairs"] == len(history.anomalies["duplicates"]["pairs"])
        offline = {e["terminal_id"] for e in history.anomalies["late_uploads"]}
        assert set(rows) == {planted.counter_gaps, planted.refund_heavy, planted.duplicates} | offline


class TestLimits:
    def test_a_terminal_without_enough_peers_of_its_kind_is_not_judged_rather_than_misjudged(self):
        # One merchant per kind: the refund-heavy bakery has no other bakery till to compare with.
        config = GeneratorConfig(seed=11, merchants=6, start=date(2026, 3, 2), days=10, documents=2500, shard_count=4)
        history, docs, _ = generated(config)
        refunds = integrity.refund_outliers(docs.lazy(), merchant_kinds(history.world)).collect()
        heavy = refunds.filter(pl.col("terminal_id") == history.world.planted.refund_heavy).row(0, named=True)
        assert heavy["refund_ratio"] > 0.2 and heavy["peers"] < integrity.PEERS_MIN and not heavy["judged"]
        assert not refunds["flagged"].any()
