"""Business rules of a document: line amounts, totals, payments, VAT and the time window."""

from __future__ import annotations

import copy
import hashlib
from collections import Counter

import pytest

from deployments.api.errors import status_of
from posray.domain.canonical import canonical_bytes
from posray.domain.errors import InvalidDocument
from posray.domain.transaction import (
    Rules,
    canonical_document,
    check_document,
    document_hash,
    half_up_div,
    issued_at_ms,
    line_amount,
    shard_of,
    utc_iso_ms,
    vat_included,
)
from tests.unit.conftest import ISSUED_AT_MS

RULES = Rules(vat_rates_bp=frozenset({0, 700, 1000, 2000}), future_skew_s=300, max_age_s=30 * 86400)
NOW_MS = ISSUED_AT_MS + 60_000
THREE_RATES = ((1000, 1200, 2000), (2500, 199, 700), (333, 1000, 2000), (1000, 50, 0))


def rejection(document, now_ms: int = NOW_MS) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        check_document(document, RULES, now_ms)
    assert status_of(caught.value) == 422
    return caught.value


class TestRounding:
    @pytest.mark.parametrize(
        "numerator, denominator, expected",
        [
            (0, 7, 0),
            (4, 2, 2),
            (5, 2, 3),
            (-5, 2, -3),
            (15, 10, 2),
            (25, 10, 3),
            (-25, 10, -3),
            (14, 10, 1),
            (-14, 10, -1),
            (16, 10, 2),
            (-16, 10, -2),
            (1, 3, 0),
            (2, 3, 1),
            (-1, 3, 0),
            (-2, 3, -1),
            (1499, 1000, 1),
            (1500, 1000, 2),
        ],
    )
    def test_half_up_div_rounds_halves_away_from_zero(self, numerator, denominator, expected):
        assert half_up_div(numerator, denominator) == expected

    @pytest.mark.parametrize(
        "qty_milli, unit_price_minor, expected",
        [
            (1000, 1200, 1200),
            (1500, 199, 299),
            (333, 100, 33),
            (2500, 199, 498),
            (1, 499, 0),
            (1, 500, 1),
        ],
    )
    def test_a_line_amount_is_quantity_times_price_rounded_half_up(
        self, qty_milli, unit_price_minor, expected
    ):
        assert line_amount(qty_milli, unit_price_minor) == expected

    @pytest.mark.parametrize(
        "gross_minor, rate_bp, expected",
        [
            (1200, 2000, 200),
            (1070, 700, 70),
            (1000, 1000, 91),
            (100, 500, 5),
            (999, 0, 0),
            (0, 2000, 0),
        ],
    )
    def test_vat_included_is_the_tax_contained_in_a_gross_amount(
        self, gross_minor, rate_bp, expected
    ):
        assert vat_included(gross_minor, rate_bp) == expected


class TestValidDocuments:
    def test_a_consistent_document_passes_and_returns_issued_at_in_ms(self, make_document):
        assert check_document(make_document(), RULES, NOW_MS) == ISSUED_AT_MS

    def test_a_document_with_several_rates_and_split_payment_passes(self, make_document):
        document = make_document(THREE_RATES, methods=("cash", "card", "voucher"))
        assert len(document["vat"]) == 3
        assert check_document(document, RULES, NOW_MS) == ISSUED_AT_MS

    def test_vat_lines_may_come_in_any_order(self, make_document):
        document = make_document(THREE_RATES)
        document["vat"].reverse()
        assert check_document(document, RULES, NOW_MS) == ISSUED_AT_MS

    def test_a_document_at_the_edges_of_the_time_window_passes(self, make_document):
        document = make_document()
        assert check_document(document, RULES, ISSUED_AT_MS - 300_000) == ISSUED_AT_MS
        assert check_document(document, RULES, ISSUED_AT_MS + 30 * 86_400_000) == ISSUED_AT_MS


class TestAmountsAndTotals:
    def test_a_wrong_line_amount_names_that_item(self, make_document):
        document = make_document(THREE_RATES)
        document["items"][1]["amount_minor"] += 1
        assert rejection(document).field == "items[1].amount_minor"

    def test_a_total_that_is_not_the_items_sum_is_rejected(self, make_document):
        document = make_document()
        document["total_minor"] += 1
        document["payments"][0]["amount_minor"] += 1
        assert rejection(document).field == "total_minor"

    def test_payments_that_do_not_sum_to_the_total_are_rejected(self, make_document):
        document = make_document(methods=("cash", "card"))
        document["payments"][1]["amount_minor"] -= 1
        assert rejection(document).field == "payments"

    def test_an_unknown_vat_rate_names_the_item(self, make_document):
        document = make_document(((1000, 100, 2000), (1000, 100, 1900)))
        assert rejection(document).field == "items[1].vat_rate_bp"


class TestVatLines:
    def test_a_missing_vat_line_is_rejected_on_vat(self, make_document):
        document = make_document(THREE_RATES)
        del document["vat"][1]
        assert rejection(document).field == "vat"

    def test_a_wrong_gross_amount_names_the_vat_line(self, make_document):
        document = make_document()
        document["vat"][0]["gross_minor"] += 1
        assert rejection(document).field == "vat[0].gross_minor"

    def test_a_wrong_vat_amount_names_the_vat_line(self, make_document):
        document = make_document()
        document["vat"][0]["vat_minor"] -= 1
        assert rejection(document).field == "vat[0].vat_minor"

    def test_a_rate_listed_twice_names_the_second_line(self, make_document):
        document = make_document()
        document["vat"].append(copy.deepcopy(document["vat"][0]))
        assert rejection(document).field == "vat[2].rate_bp"

    def test_a_vat_line_for_a_rate_no_item_uses_is_rejected(self, make_document):
        document = make_document()
        document["vat"].append({"rate_bp": 1000, "gross_minor": 0, "vat_minor": 0})
        assert rejection(document).field == "vat[2].rate_bp"


class TestIssuedAt:
    def test_a_time_beyond_the_future_skew_is_rejected(self, make_document):
        error = rejection(make_document(), now_ms=ISSUED_AT_MS - 300_001)
        assert error.field == "issued_at"
        assert "future" in error.reason

    def test_a_time_older_than_the_upload_window_is_rejected(self, make_document):
        error = rejection(make_document(), now_ms=ISSUED_AT_MS + 30 * 86_400_000 + 1)
        assert error.field == "issued_at"
        assert "older" in error.reason

    def test_a_time_without_offset_is_rejected(self, make_document):
        error = rejection(make_document(issued_at="2026-11-26T10:15:00"))
        assert error.field == "issued_at"
        assert "offset" in error.reason

    @pytest.mark.parametrize("text", ["yesterday at noon", "2026-13-01T00:00:00+00:00", ""])
    def test_garbage_is_rejected(self, make_document, text):
        assert rejection(make_document(issued_at=text)).field == "issued_at"

    @pytest.mark.parametrize(
        "text, expected",
        [
            ("2026-11-26T09:15:00Z", ISSUED_AT_MS),
            ("2026-11-26T09:15:00+00:00", ISSUED_AT_MS),
            ("2026-11-26T04:15:00-05:00", ISSUED_AT_MS),
            ("2026-11-26T10:15:00.123+01:00", ISSUED_AT_MS + 123),
            ("1970-01-01T00:00:00.001+00:00", 1),
        ],
    )
    def test_offsets_and_milliseconds_are_honoured(self, text, expected):
        assert issued_at_ms(text) == expected

    def test_utc_iso_ms_writes_millisecond_utc_timestamps(self):
        assert utc_iso_ms(0) == "1970-01-01T00:00:00.000Z"
        assert utc_iso_ms(ISSUED_AT_MS + 7) == "2026-11-26T09:15:00.007Z"
        assert issued_at_ms(utc_iso_ms(ISSUED_AT_MS + 999)) == ISSUED_AT_MS + 999


class TestIdentity:
    def test_the_document_hash_is_sha256_of_the_canonical_bytes(self, make_document):
        document = make_document()
        canonical = canonical_document(document)
        assert canonical == canonical_bytes(document)
        assert document_hash(canonical) == hashlib.sha256(canonical).digest()


class TestShardOf:
    def test_a_terminal_always_maps_to_the_same_shard(self):
        assert shard_of("T-0001", 8) == shard_of("T-0001", 8)

    def test_the_shard_is_the_documented_hash_prefix_modulo_count(self):
        digest = hashlib.sha256(b"T-0001").digest()
        assert shard_of("T-0001", 13) == int.from_bytes(digest[:8], "big") % 13

    def test_shards_are_within_range_and_roughly_uniform(self):
        counts = Counter(shard_of(f"T-{n:05d}", 8) for n in range(10_000))
        assert set(counts) == set(range(8))
        assert all(1000 <= count <= 1500 for count in counts.values()), counts

    def test_one_shard_takes_every_terminal(self):
        assert {shard_of(f"T-{n}", 1) for n in range(50)} == {0}
