"""Hostile input at the HTTP edge: query parameters and JSON bodies become 400s naming the field."""

from __future__ import annotations

from datetime import date

import pytest

from deployments import params
from deployments.api.bodies import parse_json as _parse_json
from deployments.api.errors import status_of
from posray.domain.errors import InvalidDocument


def refused(call, *args) -> InvalidDocument:
    with pytest.raises(InvalidDocument) as caught:
        call(*args)
    assert status_of(caught.value) == 400
    return caught.value


class TestIntegerParameters:
    @pytest.mark.parametrize("text", ["9223372036854775808", "1" * 5000, "-1", "1.0", "²", "١٢", " 1", ""])
    def test_what_postgresql_cannot_hold_or_is_not_ascii_digits_is_a_400_naming_it(self, text):
        assert refused(params.integer, text, "tree_size").field == "tree_size"

    def test_bigint_max_and_zero_are_accepted(self):
        assert params.integer("9223372036854775807", "n") == 2**63 - 1
        assert params.integer("0", "n") == 0

    def test_a_narrower_range_is_enforced(self):
        assert refused(params.integer, "0", "counter", 1, 2**53 - 1).field == "counter"
        assert refused(params.integer, str(2**53), "counter", 1, 2**53 - 1).field == "counter"


class TestDateParameters:
    @pytest.mark.parametrize("text", ["9999-12-31", "2026-13-01", "20261205", "2026-W49-1", "2026-12-5"])
    def test_a_date_without_a_next_day_or_not_yyyy_mm_dd_is_a_400(self, text):
        assert refused(params.day, text, "date").field == "date"

    def test_the_last_date_with_a_next_day_is_accepted(self):
        assert params.day("9999-12-30", "to") == date(9999, 12, 30)


class TestTerminalIdParameters:
    @pytest.mark.parametrize("text", ["A\x00", "", "-A", "T" * 33, "T\n", "Té"])
    def test_a_nul_byte_or_anything_outside_the_wire_syntax_is_a_400(self, text):
        assert refused(params.terminal_id, text).field == "terminal_id"


class TestJsonBodies:
    def test_a_duplicate_member_is_a_400_naming_it(self):
        error = refused(_parse_json, b'{"total_minor": 1, "counter": 2, "total_minor": 4432}')
        assert error.field == "total_minor"

    def test_a_duplicate_member_in_a_nested_object_is_found_too(self):
        error = refused(_parse_json, b'{"documents": [{"items": [{"name": "a", "name": "b"}]}]}')
        assert error.field == "name"

    def test_an_escaped_spelling_of_the_same_name_is_a_duplicate(self):
        assert refused(_parse_json, b'{"mac": "a", "\\u006dac": "b"}').field == "mac"

    def test_the_same_name_in_sibling_objects_is_fine(self):
        assert _parse_json(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
