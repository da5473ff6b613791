"""Canonical JSON bytes (RFC 8785 over posray's value domain)."""

from __future__ import annotations

import json

import pytest

from posray.domain.canonical import INT_ABS_MAX, canonical_bytes

TRICKY_STRINGS = [
    "",
    "plain ascii",
    "\x00\x01\x07\x08\x0b\x0e\x1f",
    "\b\f\n\r\t",
    "\x7f",
    '"quoted"',
    "back\\slash",
    "\\u0041 is not unescaped",
    "/ slashes / stay",
    "é ö ß – € ¥",
    "日本語のテキスト",
    "😀 👍🏽 🇩🇪",
    "\u2028 line and paragraph \u2029 separators",
    "\ufeff byte order mark",
    "\ud7ff\ue000\uffff",
    "</script><!--",
]


def stdlib_canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


class TestStrings:
    @pytest.mark.parametrize("text", TRICKY_STRINGS)
    def test_a_string_is_escaped_exactly_like_the_stdlib_compact_form(self, text):
        assert canonical_bytes(text) == stdlib_canonical(text)

    @pytest.mark.parametrize("text", TRICKY_STRINGS)
    def test_a_string_used_as_a_key_is_escaped_the_same_way(self, text):
        assert canonical_bytes({text: text}) == stdlib_canonical({text: text})

    def test_controls_use_lowercase_hex_and_short_escapes(self):
        assert canonical_bytes("\x1f\n\x0b") == b'"\\u001f\\n\\u000b"'

    def test_non_ascii_is_written_as_literal_utf8(self):
        assert canonical_bytes("€\u2028😀") == '"€\u2028😀"'.encode()

    def test_the_whole_tricky_set_in_one_document_matches_the_stdlib(self):
        by_key = {t: i for i, t in enumerate(sorted(TRICKY_STRINGS, key=utf16_key))}
        document = {"by_key": by_key, "strings": TRICKY_STRINGS}
        expected = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        assert canonical_bytes(document) == expected


class TestOrdering:
    def test_nested_objects_are_sorted_at_every_level_without_whitespace(self):
        value = {"b": [{"z": 1, "a": {"y": None, "x": True}}], "a": {"d": "", "c": False}}
        assert canonical_bytes(value) == (
            b'{"a":{"c":false,"d":""},"b":[{"a":{"x":true,"y":null},"z":1}]}'
        )

    def test_array_order_is_kept(self):
        assert canonical_bytes([3, 1, 2]) == b"[3,1,2]"

    def test_member_insertion_order_does_not_matter(self):
        first = {"total_minor": 1, "items": [{"b": 1, "a": 2}], "currency": "EUR"}
        second = {"currency": "EUR", "items": [{"a": 2, "b": 1}], "total_minor": 1}
        assert canonical_bytes(first) == canonical_bytes(second)

    def test_keys_sort_by_utf16_code_units_as_in_the_rfc_8785_example(self):
        # RFC 8785 §3.2.3: the emoji (surrogates D83D DE00) sorts before U+FB33.
        value = {
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\U0001f600": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis",
        }
        keys = list(json.loads(canonical_bytes(value)))
        assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]

    def test_utf16_ordering_applies_inside_nested_objects_and_arrays(self):
        value = [{"outer": {"\ufb33": 1, "\U0001f600": 2}}]
        assert canonical_bytes(value) == '[{"outer":{"😀":2,"\ufb33":1}}]'.encode()


class TestNumbersAndLiterals:
    @pytest.mark.parametrize("number", [0, -1, 1, 10**13, INT_ABS_MAX, -INT_ABS_MAX])
    def test_integers_in_the_safe_range_are_plain_decimal(self, number):
        assert canonical_bytes(number) == str(number).encode()

    def test_booleans_and_null_are_json_literals(self):
        assert canonical_bytes([True, False, None]) == b"[true,false,null]"


class TestRejectedValues:
    @pytest.mark.parametrize("value", [2.5, 1.0, {"amount": 0.1}, [float("nan")]])
    def test_floats_are_refused(self, value):
        with pytest.raises(ValueError, match="float"):
            canonical_bytes(value)

    @pytest.mark.parametrize("number", [2**53, -(2**53), 2**64, -(2**70)])
    def test_integers_beyond_the_json_safe_range_are_refused(self, number):
        with pytest.raises(ValueError, match="range"):
            canonical_bytes({"n": [number]})

    @pytest.mark.parametrize("key", [1, None, True, (1, 2)])
    def test_non_string_keys_are_refused(self, key):
        with pytest.raises(ValueError, match="keys must be strings"):
            canonical_bytes({"outer": {key: 1}})

    @pytest.mark.parametrize("value", [b"bytes", (1, 2), {1, 2}, object()])
    def test_other_python_types_are_refused(self, value):
        with pytest.raises(ValueError):
            canonical_bytes([value])
