"""The HTTP wire format: strict types and ranges, each error naming its field."""

from __future__ import annotations

import pytest

from deployments.api.errors import status_of
from posray.domain.errors import InvalidDocument
from posray.wire import validate_document


def rejection(raw) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        validate_document(raw)
    assert 400 <= status_of(caught.value) < 500
    return caught.value


def item(**fields) -> dict:
    base = {
        "name": "bread",
        "qty_milli": 1000,
        "unit_price_minor": 250,
        "amount_minor": 250,
        "vat_rate_bp": 700,
    }
    base.update(fields)
    return base


class TestValidDocuments:
    def test_a_valid_document_passes(self, make_document):
        assert validate_document(make_document()) is None

    def test_optional_members_may_be_given(self, make_document):
        document = make_document(refers_to="E1GF-R6C4-3V8Q-XS9P-Y9VX")
        document["items"][0].update(sku="4006381333931", category="bakery")
        assert validate_document(document) is None

    @pytest.mark.parametrize(
        "issued_at", ["2026-11-26T09:15:00Z", "2026-11-26T10:15:00.123456+01:00"]
    )
    def test_rfc3339_timestamps_with_offset_or_z_pass(self, make_document, issued_at):
        assert validate_document(make_document(issued_at=issued_at)) is None

    def test_five_hundred_items_are_allowed(self, make_document):
        assert validate_document(make_document(items=[item()] * 500)) is None


class TestRejectedDocuments:
    @pytest.mark.parametrize("member", ["terminal_id", "counter", "items", "mac", "vat"])
    def test_a_missing_member_is_named(self, make_document, member):
        document = make_document()
        del document[member]
        error = rejection(document)
        assert (error.field, error.reason) == (member, "is required")

    def test_a_missing_member_of_an_item_is_named_with_its_index(self, make_document):
        document = make_document()
        del document["items"][1]["name"]
        assert rejection(document).field == "items[1].name"

    def test_an_unknown_member_is_named(self, make_document):
        error = rejection(make_document(tip_minor=100))
        assert (error.field, error.reason) == ("tip_minor", "is not a known field")

    def test_an_unknown_member_of_an_item_is_named(self, make_document):
        document = make_document()
        document["items"][0]["colour"] = "red"
        assert rejection(document).field == "items[0].colour"

    @pytest.mark.parametrize(
        "change, field",
        [
            ({"counter": "5"}, "counter"),
            ({"counter": 0}, "counter"),
            ({"counter": 2**53}, "counter"),
            ({"total_minor": 2.5}, "total_minor"),
            ({"total_minor": 250.0}, "total_minor"),
            ({"total_minor": -1}, "total_minor"),
            ({"total_minor": 10**13 + 1}, "total_minor"),
            ({"total_minor": True}, "total_minor"),
            ({"currency": "eur"}, "currency"),
            ({"currency": "EURO"}, "currency"),
            ({"mac": "g" * 64}, "mac"),
            ({"mac": "ab" * 31}, "mac"),
            ({"mac": "AB" * 32}, "mac"),
            ({"type": "gift"}, "type"),
            ({"terminal_id": "-starts-with-dash"}, "terminal_id"),
            ({"terminal_id": "T" * 33}, "terminal_id"),
            ({"issued_at": "2026-11-26"}, "issued_at"),
            ({"issued_at": "2026-11-26T10:15:00"}, "issued_at"),
            ({"issued_at": "2026-11-26 10:15:00+01:00"}, "issued_at"),
            ({"issued_at": 1795684500}, "issued_at"),
            ({"refers_to": "short"}, "refers_to"),
            ({"refers_to": "0000-0000-0000-0000-0001"}, "refers_to"),  # wrong check character
            ({"refers_to": "E1GF-R6C4-3V8Q-XS9P-Y9UX"}, "refers_to"),  # U is not in the alphabet
            ({"mac": "04D70807004B893035C42CDBCAAC551AE5CBF99F2963B3FB3A5C56B990528FE3"}, "mac"),
            ({"items": []}, "items"),
            ({"payments": []}, "payments"),
            ({"vat": [{"rate_bp": 700, "gross_minor": 1, "vat_minor": 0}] * 17}, "vat"),
        ],
    )
    def test_a_top_level_value_of_the_wrong_type_or_range_is_named(
        self, make_document, change, field
    ):
        error = rejection(make_document(**change))
        assert error.field == field
        assert status_of(error) == 422

    @pytest.mark.parametrize(
        "change, field",
        [
            ({"qty_milli": True}, "items[0].qty_milli"),
            ({"qty_milli": 0}, "items[0].qty_milli"),
            ({"qty_milli": "1000"}, "items[0].qty_milli"),
            ({"unit_price_minor": 2.5}, "items[0].unit_price_minor"),
            ({"amount_minor": -250}, "items[0].amount_minor"),
            ({"vat_rate_bp": 10001}, "items[0].vat_rate_bp"),
            ({"name": ""}, "items[0].name"),
            ({"sku": ""}, "items[0].sku"),
        ],
    )
    def test_an_item_value_of_the_wrong_type_or_range_is_named_with_its_path(
        self, make_document, change, field
    ):
        assert rejection(make_document(items=[item(**change)])).field == field

    def test_a_bad_value_in_a_later_item_names_that_index(self, make_document):
        document = make_document(items=[item(), item(), item(qty_milli=False)])
        assert rejection(document).field == "items[2].qty_milli"

    def test_an_unknown_payment_method_is_named(self, make_document):
        document = make_document()
        document["payments"][0]["method"] = "crypto"
        assert rejection(document).field == "payments[0].method"

    def test_a_bad_vat_line_is_named(self, make_document):
        document = make_document()
        document["vat"][0]["vat_minor"] = "0"
        assert rejection(document).field == "vat[0].vat_minor"

    def test_more_than_five_hundred_items_are_rejected(self, make_document):
        error = rejection(make_document(items=[item()] * 501))
        assert error.field == "items"

    def test_an_item_that_is_not_an_object_is_named(self, make_document):
        assert rejection(make_document(items=["bread"])).field == "items[0]"

    @pytest.mark.parametrize("raw", [[], "document", 42, None])
    def test_a_body_that_is_not_an_object_is_a_bad_request(self, raw):
        error = rejection(raw)
        assert (error.field, status_of(error)) == ("document", 400)

    def test_the_error_serialises_with_field_and_reason(self, make_document):
        body = rejection(make_document(currency="eur")).to_json()
        assert body["error"] == "invalid"
        assert body["field"] == "currency"
        assert body["reason"]
