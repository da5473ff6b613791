"""Operator keys, terminal keys, the terminal's document MAC and the fiscal sign."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from posray.domain.canonical import canonical_bytes
from posray.domain.codes import CodeKey
from posray.domain.keys import OperatorKeys, fiscal_sign, terminal_key
from posray.domain.terminal_mac import document_mac, mac_matches, signed_bytes

SEED = bytes(range(32))
KEY = b"k" * 32


def secrets_of(keys: OperatorKeys) -> list[bytes]:
    return [keys.terminal_master, keys.code.secret, keys.fiscal, keys.signing_seed]


def flip_lowest_bit(hex_text: str, position: int) -> str:
    flipped = format(int(hex_text[position], 16) ^ 1, "x")
    return hex_text[:position] + flipped + hex_text[position + 1 :]


class TestOperatorKeys:
    def test_the_same_seed_always_derives_the_same_keys(self):
        assert secrets_of(OperatorKeys.from_seed(SEED)) == secrets_of(OperatorKeys.from_seed(SEED))

    def test_the_four_keys_differ_from_each_other_and_from_the_seed(self):
        keys = secrets_of(OperatorKeys.from_seed(SEED))
        assert len(set(keys + [SEED])) == 5
        assert all(len(k) == 32 for k in keys)

    def test_another_seed_derives_other_keys(self):
        first = secrets_of(OperatorKeys.from_seed(SEED))
        second = secrets_of(OperatorKeys.from_seed(bytes(32)))
        assert not set(first) & set(second)

    def test_the_code_key_is_a_code_key(self):
        assert isinstance(OperatorKeys.from_seed(SEED).code, CodeKey)

    @pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
    def test_a_seed_of_the_wrong_length_is_refused(self, length):
        with pytest.raises(ValueError, match="32 bytes"):
            OperatorKeys.from_seed(b"s" * length)

    def test_the_repr_shows_no_secret(self):
        keys = OperatorKeys.from_seed(SEED)
        shown = repr(keys) + str(keys) + f"{keys!r}" + repr(keys.code)
        for secret in secrets_of(keys) + [SEED]:
            assert secret.hex() not in shown
            assert repr(secret) not in shown


class TestTerminalKey:
    def test_the_same_terminal_and_version_always_give_the_same_key(self):
        assert terminal_key(KEY, "T-1", 1) == terminal_key(KEY, "T-1", 1)

    def test_the_key_is_hmac_sha256_of_the_documented_label(self):
        expected = hmac.new(KEY, b"posray/terminal-key|T-1|3", hashlib.sha256).digest()
        assert terminal_key(KEY, "T-1", 3) == expected

    def test_a_new_key_version_gives_a_new_key(self):
        assert terminal_key(KEY, "T-1", 1) != terminal_key(KEY, "T-1", 2)

    def test_another_terminal_gets_another_key(self):
        assert terminal_key(KEY, "T-1", 1) != terminal_key(KEY, "T-2", 1)

    def test_id_and_version_cannot_be_shifted_into_each_other(self):
        assert terminal_key(KEY, "T1", 12) != terminal_key(KEY, "T11", 2)

    def test_another_master_gives_another_key(self):
        assert terminal_key(KEY, "T-1", 1) != terminal_key(b"m" * 32, "T-1", 1)


class TestDocumentMac:
    def test_the_signed_bytes_are_the_canonical_document_without_mac(self):
        document = {"b": 1, "mac": "ff" * 32, "a": "é"}
        assert signed_bytes(document) == '{"a":"é","b":1}'.encode()

    def test_the_mac_is_lowercase_hex_hmac_sha256_of_the_signed_bytes(self, make_document):
        document = make_document()
        unsigned = {k: v for k, v in document.items() if k != "mac"}
        expected = hmac.new(KEY, canonical_bytes(unsigned), hashlib.sha256).hexdigest()
        assert document_mac(KEY, document) == expected
        assert re.fullmatch(r"[0-9a-f]{64}", expected)

    def test_the_mac_member_does_not_affect_the_mac(self, make_document):
        document = make_document()
        without = {k: v for k, v in document.items() if k != "mac"}
        assert document_mac(KEY, document) == document_mac(KEY, without)
        assert document_mac(KEY, document) == document_mac(KEY, {**document, "mac": "1" * 64})

    def test_member_order_does_not_affect_the_mac(self, make_document):
        document = make_document()
        reversed_order = dict(reversed(list(document.items())))
        assert document_mac(KEY, document) == document_mac(KEY, reversed_order)

    def test_any_changed_member_changes_the_mac(self, make_document):
        document = make_document()
        assert document_mac(KEY, document) != document_mac(KEY, {**document, "counter": 2})

    def test_a_correct_mac_matches_in_lower_or_upper_case(self, make_document):
        document = make_document()
        mac = document_mac(KEY, document)
        assert mac_matches(KEY, document, mac)
        assert mac_matches(KEY, document, mac.upper())

    def test_a_mac_with_one_bit_changed_does_not_match(self, make_document):
        document = make_document()
        mac = document_mac(KEY, document)
        for position in range(0, 64, 7):
            assert not mac_matches(KEY, document, flip_lowest_bit(mac, position))

    def test_a_mac_under_another_key_or_for_another_document_does_not_match(self, make_document):
        document = make_document()
        mac = document_mac(KEY, document)
        assert not mac_matches(b"x" * 32, document, mac)
        assert not mac_matches(KEY, {**document, "total_minor": 1}, mac)

    def test_a_truncated_mac_does_not_match(self, make_document):
        document = make_document()
        assert not mac_matches(KEY, document, document_mac(KEY, document)[:-1])


class TestCanonicalMacMatches:
    """The hot path checks the MAC on the stored canonical bytes (one serialization)."""

    @staticmethod
    def signed(document: dict, key: bytes = KEY) -> dict:
        return {**document, "mac": document_mac(key, document)}

    @pytest.mark.parametrize("name", ['Bread', 'x","mac":"' + "0" * 64, 'tea ,"mac":"a"', "Äpfel 🍎", '\\"'])
    def test_it_agrees_with_the_reference_check_whatever_the_item_names(self, make_document, name):
        from posray.domain.transaction import canonical_document
        from posray.domain.terminal_mac import canonical_mac_matches

        document = make_document()
        document["items"][0]["name"] = name
        good = self.signed(document)
        bad = {**good, "mac": flip_lowest_bit(good["mac"], 5)}
        other_key = self.signed(document, b"x" * 32)
        for candidate in (good, bad, other_key):
            assert canonical_mac_matches(KEY, canonical_document(candidate), candidate["mac"]) == mac_matches(
                KEY, candidate, candidate["mac"])
        assert canonical_mac_matches(KEY, canonical_document(good), good["mac"])

    def test_a_mac_that_is_not_the_documents_own_member_does_not_match(self, make_document):
        from posray.domain.transaction import canonical_document
        from posray.domain.terminal_mac import canonical_mac_matches

        good = self.signed(make_document())
        assert not canonical_mac_matches(KEY, canonical_document(good), "0" * 64)


class TestFiscalSign:
    DOCUMENT_HASH = hashlib.sha256(b"document").digest()

    def test_the_fiscal_sign_is_deterministic_lowercase_hex_of_32_characters(self):
        first = fiscal_sign(KEY, "ABCD", self.DOCUMENT_HASH, 1000)
        assert first == fiscal_sign(KEY, "ABCD", self.DOCUMENT_HASH, 1000)
        assert re.fullmatch(r"[0-9a-f]{32}", first)

    def test_the_fiscal_sign_is_the_documented_truncated_hmac(self):
        message = b"posray/fiscal|ABCD|" + self.DOCUMENT_HASH.hex().encode() + b"|1000"
        expected = hmac.new(KEY, message, hashlib.sha256).hexdigest()[:32]
        assert fiscal_sign(KEY, "ABCD", self.DOCUMENT_HASH, 1000) == expected

    def test_code_hash_time_and_key_each_change_the_sign(self):
        base = fiscal_sign(KEY, "ABCD", self.DOCUMENT_HASH, 1000)
        assert base != fiscal_sign(KEY, "ABCE", self.DOCUMENT_HASH, 1000)
        assert base != fiscal_sign(KEY, "ABCD", hashlib.sha256(b"other").digest(), 1000)
        assert base != fiscal_sign(KEY, "ABCD", self.DOCUMENT_HASH, 1001)
        assert base != fiscal_sign(b"f" * 32, "ABCD", self.DOCUMENT_HASH, 1000)
