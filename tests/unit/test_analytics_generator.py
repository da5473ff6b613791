"""The retail-world generator: valid signed documents, reproducible, with its planted anomalies."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest

from posray.synthetic.catalogue import KINDS
from posray.synthetic.generator import (
    REFUND_HEAVY_RATE,
    GeneratorConfig,
    History,
    build_world,
    utc_offset_min,
)
from posray.domain.codes import CodeKey, make_code
from posray.domain.terminal_mac import mac_matches
from posray.domain.transaction import Rules, canonical_document, check_document, document_hash, issued_at_ms, shard_of
from posray.wire import validate_document

CONFIG = GeneratorConfig(seed=3, merchants=6, start=date(2026, 3, 2), days=12, documents=3000, shard_count=4)
CODE_KEY = CodeKey(bytes(range(32)))


def key_of(terminal_id: str) -> bytes:
    return terminal_id.encode().ljust(32, b"k")


def history(config: GeneratorConfig = CONFIG, **options) -> tuple[History, list]:
    made = History(build_world(config), config, code_key=CODE_KEY, key_of=key_of, **options)
    return made, list(made)


@pytest.fixture(scope="module")
def generated():
    return history()


class TestWorld:
    def test_the_same_seed_builds_the_same_world_and_another_seed_another(self):
        assert build_world(CONFIG) == build_world(CONFIG)
        assert build_world(CONFIG) != build_world(GeneratorConfig(seed=4))

    def test_merchants_are_of_every_kind_with_stores_as_terminal_labels(self):
        world = build_world(CONFIG)
        assert {m.kind.name for m in world.merchants} == {k.name for k in KINDS}
        for t in world.terminals:
            assert t.terminal_id.startswith(t.store_id + "-") and t.store_id.startswith(t.merchant_id + "-")
            assert t.shard == shard_of(t.terminal_id, CONFIG.shard_count)

    def test_four_different_terminals_carry_the_planted_anomalies(self):
        planted = build_world(CONFIG).planted
        ids = [planted.counter_gaps, planted.refund_heavy, planted.late_upload, planted.duplicates]
        assert None not in ids and len(set(ids)) == 4

    def test_no_anomalies_when_switched_off(self):
        world = build_world(GeneratorConfig(seed=3, anomalies=False))
        assert world.planted.counter_gaps is None and world.planted.refund_heavy is None


class TestDocuments:
    def test_every_document_is_valid_at_its_acceptance_time_and_signed_by_its_terminal(self, generated):
        _, accepted = generated
        rules = Rules(vat_rates_bp=frozenset(CONFIG.vat_rates_bp))
        for a in accepted:
            validate_document(a.document)
            check_document(a.document, rules, a.accepted_at_ms)
            assert mac_matches(key_of(a.document["terminal_id"]), a.document, a.document["mac"])
            assert a.canonical == canonical_document(a.document)

    def test_volume_is_close_to_what_was_asked(self, generated):
        _, accepted = generated
        assert 0.85 * CONFIG.documents <= len(accepted) <= 1.15 * CONFIG.documents

    def test_the_same_configuration_generates_the_same_documents(self, generated):
        _, again = history()
        assert [(a.shard, a.seq, a.code, a.canonical) for a in again] == \
               [(a.shard, a.seq, a.code, a.canonical) for a in generated[1]]

    def test_sequences_are_consecutive_per_shard_in_acceptance_order_with_their_codes(self, generated):
        _, accepted = generated
        by_shard = defaultdict(list)
        for a in accepted:
            by_shard[a.shard].append(a)
            assert a.code == make_code(CODE_KEY, a.shard, a.seq, document_hash(a.canonical))
            assert a.shard == shard_of(a.document["terminal_id"], CONFIG.shard_count)
        for rows in by_shard.values():
            assert [a.seq for a in rows] == list(range(1, len(rows) + 1))
            assert all(x.accepted_at_ms <= y.accepted_at_ms for x, y in zip(rows, rows[1:]))

    def test_a_history_continues_the_given_sequences_and_counters(self):
        world = build_world(CONFIG)
        first = world.terminals[0]
        _, accepted = history(next_seqs={first.shard: 101}, counters={first.terminal_id: 50})
        mine = [a for a in accepted if a.shard == first.shard]
        assert mine[0].seq == 101
        assert min(a.document["counter"] for a in mine if a.document["terminal_id"] == first.terminal_id) == 51

    def test_documents_are_issued_within_opening_hours_local_time(self, generated):
        world, accepted = generated[0].world, generated[1]
        kind_of = {t.terminal_id: t.kind for t in world.terminals}
        for a in accepted:
            local = datetime.fromisoformat(a.document["issued_at"])
            hours = kind_of[a.document["terminal_id"]].hours[local.weekday()]
            assert hours is not None
            assert hours[0] <= local.hour + local.minute / 60 < hours[1]
            assert local.utcoffset() == timedelta(minutes=utc_offset_min(local.date()))

    def test_refunds_and_corrections_name_an_earlier_sale_of_the_same_terminal(self, generated):
        _, accepted = generated
        sales: dict[str, tuple[str, int]] = {}
        refunds = 0
        for a in accepted:
            doc = a.document
            if doc["type"] == "sale":
                sales[a.code] = (doc["terminal_id"], issued_at_ms(doc["issued_at"]))
                continue
            refunds += doc["type"] == "refund"
            terminal, issued_ms = sales[doc["refers_to"]]
            assert terminal == doc["terminal_id"] and issued_ms < issued_at_ms(doc["issued_at"])
        assert refunds > 0

    def test_shard_subsets_generate_exactly_the_parts_of_the_whole_history(self, generated):
        whole = [(a.shard, a.seq, a.canonical) for a in generated[1]]
        parts = []
        for shards in (frozenset({0, 2}), frozenset({1, 3})):
            parts += [(a.shard, a.seq, a.canonical) for a in history(shards=shards)[1]]
        assert sorted(parts) == sorted(whole)


class TestPlantedAnomalies:
    def test_only_the_planted_terminal_skips_counters_and_the_gaps_are_reported(self, generated):
        made, accepted = generated
        counters = defaultdict(list)
        for a in accepted:
            counters[a.document["terminal_id"]].append(a.document["counter"])
        gaps = made.anomalies["counter_gaps"]
        for terminal, seen in counters.items():
            missing = sorted(set(range(1, max(seen) + 1)) - set(seen))
            assert len(seen) == len(set(seen))
            assert missing == (sorted(gaps["missing_counters"]) if terminal == gaps["terminal_id"] else [])
        assert gaps["missing_counters"]

    def test_the_refund_heavy_terminal_refunds_far_more_than_any_other(self, generated):
        made, accepted = generated
        sales, refunds = defaultdict(int), defaultdict(int)
        for a in accepted:
            if a.document["type"] == "sale":
                sales[a.document["terminal_id"]] += 1
            elif a.document["type"] == "refund":
                refunds[a.document["terminal_id"]] += 1
        heavy = made.world.planted.refund_heavy
        assert refunds[heavy] / sales[heavy] > REFUND_HEAVY_RATE / 2
        busy_others = [t for t in sales if t != heavy and sales[t] >= 50]
        assert busy_others and all(refunds[t] / sales[t] < REFUND_HEAVY_RATE / 4 for t in busy_others)

    def test_late_uploads_arrive_days_after_issue_and_everything_else_within_seconds(self, generated):
        made, accepted = generated
        late = {e["terminal_id"] for e in made.anomalies["late_uploads"]}
        assert made.world.planted.late_upload in late
        delays = defaultdict(list)
        for a in accepted:
            delays[a.document["terminal_id"]].append(a.accepted_at_ms - issued_at_ms(a.document["issued_at"]))
        assert max(delays[made.world.planted.late_upload]) > 3 * 86_400_000
        for terminal, seen in delays.items():
            assert min(seen) > 0
            if terminal not in late:
                assert max(seen) <= 1500

    def test_duplicates_repeat_items_and_total_within_a_minute_under_new_counters(self, generated):
        made, accepted = generated
        dup = made.anomalies["duplicates"]
        docs = {a.document["counter"]: a.document for a in accepted if a.document["terminal_id"] == dup["terminal_id"]}
        assert dup["pairs"]
        for first, second in dup["pairs"]:
            a, b = docs[first], docs[second]
            assert first != second
            assert (a["items"], a["total_minor"], a["payments"]) == (b["items"], b["total_minor"], b["payments"])
            assert 0 <= issued_at_ms(b["issued_at"]) - issued_at_ms(a["issued_at"]) <= 60_000


class TestCalendar:
    @pytest.mark.parametrize("day, offset", [
        (date(2026, 3, 28), 60), (date(2026, 3, 29), 120), (date(2026, 10, 24), 120), (date(2026, 10, 25), 60),
    ])
    def test_shop_days_follow_central_european_summer_time(self, day, offset):
        assert utc_offset_min(day) == offset
