"""Receipt codes: unique, unguessable, typo-detecting and forgiving of misreadings."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from deployments.api.errors import status_of
from posray.domain.codes import (
    ALPHABET,
    CODE_LENGTH,
    SEQ_MAX,
    SHARD_MAX,
    CodeKey,
    display_code,
    binds,
    legacy_code,
    locate_code,
    make_code,
    normalize_code,
)
from posray.domain.errors import CodeMalformed

KEY = CodeKey(bytes(range(32)))
OTHER_KEY = CodeKey(bytes(range(1, 33)))


def doc(shard: int, seq: int, variant: int = 0) -> bytes:
    """A stand-in document hash for (shard, seq)."""
    return hashlib.sha256(f"{shard}/{seq}/{variant}".encode()).digest()


EXTREMES = [(0, 0), (0, SEQ_MAX), (SHARD_MAX, 0), (SHARD_MAX, SEQ_MAX), (1, 1), (7, 2**32)]


def sample_codes(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    pairs = [(rng.randrange(SHARD_MAX + 1), rng.randrange(SEQ_MAX + 1)) for _ in range(count)]
    return [make_code(KEY, shard, seq, doc(shard, seq)) for shard, seq in pairs]


def with_check_char(body: str) -> str:
    """Complete a 19-character body with the one check character that normalizes."""
    for check in ALPHABET:
        try:
            return normalize_code(body + check)
        except CodeMalformed:
            continue
    raise AssertionError("no check character fits")


class TestMakeCode:
    def test_a_code_has_twenty_characters_of_the_crockford_alphabet(self):
        for code in sample_codes(200) + [make_code(KEY, s, q, doc(s, q)) for s, q in EXTREMES]:
            assert len(code) == CODE_LENGTH == 20
            assert set(code) <= set(ALPHABET)

    def test_the_same_key_shard_and_sequence_always_give_the_same_code(self):
        assert make_code(KEY, 3, 42, doc(3, 42)) == make_code(CodeKey(bytes(range(32))), 3, 42, doc(3, 42))

    def test_codes_are_unique_over_fifty_thousand_sequences(self):
        codes = {make_code(KEY, seq % 8, seq, doc(seq % 8, seq)) for seq in range(50_000)}
        assert len(codes) == 50_000

    @pytest.mark.parametrize("shard, seq", [(-1, 0), (SHARD_MAX + 1, 0), (0, -1), (0, SEQ_MAX + 1)])
    def test_a_shard_or_sequence_out_of_range_is_refused(self, shard, seq):
        with pytest.raises(ValueError):
            make_code(KEY, shard, seq, doc(shard, seq))

    def test_consecutive_sequences_do_not_share_a_long_prefix(self):
        codes = [make_code(KEY, 2, seq, doc(2, seq)) for seq in range(1, 2001)]
        shared = sum(a[:6] == b[:6] for a, b in zip(codes, codes[1:]))
        assert shared < 0.05 * (len(codes) - 1)

    def test_consecutive_sequences_differ_in_most_characters(self):
        codes = [make_code(KEY, 0, seq, doc(0, seq)) for seq in range(1000)]
        differing = [sum(x != y for x, y in zip(a[:-1], b[:-1])) for a, b in zip(codes, codes[1:])]
        assert sum(differing) / len(differing) > 15


class TestLocateAndBind:
    @pytest.mark.parametrize("shard, seq", EXTREMES)
    def test_a_code_locates_its_shard_and_sequence_at_the_extremes(self, shard, seq):
        place = locate_code(KEY, make_code(KEY, shard, seq, doc(shard, seq)))
        assert (place.shard, place.seq) == (shard, seq)
        assert binds(KEY, place, doc(shard, seq))

    def test_many_codes_round_trip_and_bind_their_document(self):
        rng = random.Random(7)
        for _ in range(3000):
            shard, seq = rng.randrange(SHARD_MAX + 1), rng.randrange(SEQ_MAX + 1)
            place = locate_code(KEY, make_code(KEY, shard, seq, doc(shard, seq)))
            assert (place.shard, place.seq) == (shard, seq) and binds(KEY, place, doc(shard, seq))

    def test_a_code_does_not_bind_another_document_at_the_same_place(self):
        # The fencing promise: a code issued for one document never proves another one that
        # came to sit at the same (shard, seq).
        for shard, seq in [(0, 1), (3, 42), (7, 2**32)]:
            place = locate_code(KEY, make_code(KEY, shard, seq, doc(shard, seq)))
            assert not any(binds(KEY, place, doc(shard, seq, v)) for v in range(1, 200))
            assert not binds(KEY, place, None)

    def test_codes_of_two_documents_at_one_place_differ(self):
        assert make_code(KEY, 1, 5, doc(1, 5)) != make_code(KEY, 1, 5, doc(1, 5, 1))

    def test_a_code_checked_with_another_key_binds_nothing(self):
        for code in sample_codes(500):
            place = locate_code(OTHER_KEY, code)
            assert not binds(OTHER_KEY, place, doc(place.shard, place.seq))

    def test_random_well_formed_strings_bind_no_document(self):
        rng = random.Random(11)
        bound = 0
        for _ in range(2000):
            body = "".join(rng.choice(ALPHABET) for _ in range(CODE_LENGTH - 1))
            place = locate_code(KEY, with_check_char(body))
            bound += binds(KEY, place, doc(place.shard, place.seq)) or binds(KEY, place, None)
        assert bound == 0  # one chance in 2**39 each

    def test_a_version_one_code_binds_only_as_a_version_one_code(self):
        place = locate_code(KEY, legacy_code(KEY, 2, 9))
        assert (place.shard, place.seq) == (2, 9)
        assert binds(KEY, place, None) and not binds(KEY, place, doc(2, 9))

    def test_a_hash_of_the_wrong_length_is_refused(self):
        with pytest.raises(ValueError):
            make_code(KEY, 1, 1, b"short")


class TestTyposAreDetected:
    def test_every_single_character_substitution_is_rejected(self):
        for code in sample_codes(40, seed=3):
            for i, original in enumerate(code):
                for replacement in ALPHABET:
                    if replacement == original:
                        continue
                    typo = code[:i] + replacement + code[i + 1 :]
                    with pytest.raises(CodeMalformed, match="check character"):
                        normalize_code(typo)

    def test_every_adjacent_transposition_of_different_characters_is_rejected(self):
        for code in sample_codes(3000, seed=5):
            for i in range(CODE_LENGTH - 1):
                if code[i] == code[i + 1]:
                    continue
                swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
                with pytest.raises(CodeMalformed):
                    normalize_code(swapped)

    @pytest.mark.parametrize("a, b", [("0", "Z"), ("Z", "0"), ("1", "Y"), ("9", "8")])
    def test_swapping_any_pair_of_symbols_in_any_adjacent_positions_is_rejected(self, a, b):
        # Luhn mod 32 could not see 0Z <-> Z0; the check character must.
        for i in range(CODE_LENGTH - 1):
            prefix, suffix = "A" * i, "B" * (CODE_LENGTH - 3 - i)
            if len(prefix + a + b + suffix) == CODE_LENGTH - 1:
                code = with_check_char(prefix + a + b + suffix)
                swapped = code[:i] + b + a + code[i + 2 :]
            else:  # the pair ends on the check character
                code = with_check_char(prefix + a)
                if code[-1] != b:
                    continue
                swapped = code[:i] + b + a
            with pytest.raises(CodeMalformed):
                normalize_code(swapped)


class TestForgivingInput:
    def test_lower_case_hyphens_and_spaces_are_accepted(self):
        code = make_code(KEY, 5, 123456, doc(5, 123456))
        typed = " " + display_code(code).lower().replace("-", " - ", 2) + " "
        assert normalize_code(typed) == code
        assert locate_code(KEY, typed) == locate_code(KEY, code)
        assert locate_code(KEY, typed).seq == 123456

    def test_printed_groups_of_four_parse_back(self):
        code = make_code(KEY, 1, 99, doc(1, 99))
        assert display_code(code).count("-") == 4
        assert locate_code(KEY, display_code(code)).seq == 99

    def test_i_and_l_read_as_one_and_o_reads_as_zero(self):
        for code in sample_codes(300, seed=9):
            misread = code.replace("1", "I", 1).replace("1", "l").replace("0", "O")
            assert normalize_code(misread) == code

    @pytest.mark.parametrize("length", [0, 1, 19, 21, 40])
    def test_a_wrong_length_is_malformed(self, length):
        with pytest.raises(CodeMalformed, match="20 characters"):
            normalize_code("A" * length)

    @pytest.mark.parametrize("char", ["U", "*", "é", "_", "!"])
    def test_a_character_outside_the_alphabet_is_malformed(self, char):
        code = make_code(KEY, 0, 1, doc(0, 1))
        with pytest.raises(CodeMalformed, match="not used"):
            normalize_code(char + code[1:])

    def test_malformed_codes_answer_400(self):
        assert status_of(CodeMalformed("x")) == 400


class TestCodeKey:
    def test_the_repr_never_shows_the_secret(self):
        secret = os.urandom(32)
        assert secret.hex() not in repr(CodeKey(secret))
        assert repr(CodeKey(secret)) == "CodeKey(<secret>)"
