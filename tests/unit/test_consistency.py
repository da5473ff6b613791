"""RFC 6962 consistency proofs and their RFC 9162 verification, against an RFC-literal reference."""

from __future__ import annotations

import hashlib

import pytest

from posray.domain.merkle import (
    EMPTY_ROOT,
    consistency_proof,
    leaf_hash,
    root_hash,
    verify_consistency,
)

SIZE_MAX = 64
LEAVES = [leaf_hash(b"leaf %d" % i) for i in range(SIZE_MAX + 1)]
ROOTS = [root_hash(LEAVES[:n]) for n in range(SIZE_MAX + 1)]
PAIRS = [(m, n) for n in range(1, SIZE_MAX + 1) for m in range(1, n + 1)]
PROPER_PAIRS = [(m, n) for m, n in PAIRS if m < n]


def _mth(hashes: list[bytes]) -> bytes:
    """MTH (RFC 6962 §2.1) over leaf hashes, recursively, with the RFC's split."""
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return hashlib.sha256(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:])).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_subproof(m: int, hashes: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) written straight from RFC 6962 §2.1.2."""
    n = len(hashes)
    if m == n:
        return [] if b else [_mth(hashes)]
    k = _k(n)
    if m <= k:
        return reference_subproof(m, hashes[:k], b) + [_mth(hashes[k:])]
    return reference_subproof(m - k, hashes[k:], False) + [_mth(hashes[:k])]


def reference_proof(m: int, hashes: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    return reference_subproof(m, hashes, True)


def _flip(data: bytes, bit: int) -> bytes:
    return bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b for i, b in enumerate(data))


class TestConsistencyProof:
    def test_matches_the_rfc_subproof_for_every_pair_up_to_64(self):
        for m, n in PAIRS:
            assert consistency_proof(m, LEAVES[:n]) == reference_proof(m, LEAVES[:n]), (m, n)

    def test_a_tree_is_consistent_with_itself_through_an_empty_proof(self):
        for n in range(1, SIZE_MAX + 1):
            assert consistency_proof(n, LEAVES[:n]) == []

    def test_reproduces_the_worked_example_of_rfc_6962_section_2_1_3(self):
        # Seven leaves a..f, d6: g = (a, b), h = (c, d), i = (e, f), j = d6, k = (g, h),
        # l = (i, j). The RFC lists PROOF(3) = [c, d, g, l], PROOF(4) = [l], PROOF(6) = [i, j, k].
        a, b, c, d, e, f, j = LEAVES[:7]
        g, h, i = _mth([a, b]), _mth([c, d]), _mth([e, f])
        k, l = _mth([a, b, c, d]), _mth([e, f, j])
        assert consistency_proof(3, LEAVES[:7]) == [c, d, g, l]
        assert consistency_proof(4, LEAVES[:7]) == [l]
        assert consistency_proof(6, LEAVES[:7]) == [i, j, k]

    @pytest.mark.parametrize("first_size", [0, -1, 6])
    def test_refuses_sizes_outside_the_tree(self, first_size):
        with pytest.raises(ValueError):
            consistency_proof(first_size, LEAVES[:5])


class TestVerifyConsistency:
    def test_every_proof_verifies_against_the_prefix_roots(self):
        for m, n in PAIRS:
            proof = consistency_proof(m, LEAVES[:n])
            assert verify_consistency(m, n, proof, ROOTS[m], ROOTS[n]), (m, n)

    def test_a_flipped_bit_anywhere_in_the_proof_is_rejected(self):
        for m, n in PROPER_PAIRS:
            proof = consistency_proof(m, LEAVES[:n])
            for index in range(len(proof)):
                for bit in (0, 131, 255):
                    bad = list(proof)
                    bad[index] = _flip(bad[index], bit)
                    assert not verify_consistency(m, n, bad, ROOTS[m], ROOTS[n]), (m, n, index, bit)

    def test_a_flipped_bit_in_either_root_is_rejected(self):
        for m, n in PAIRS:
            proof = consistency_proof(m, LEAVES[:n])
            for bit in (0, 100, 255):
                assert not verify_consistency(m, n, proof, _flip(ROOTS[m], bit), ROOTS[n]), (m, n)
                assert not verify_consistency(m, n, proof, ROOTS[m], _flip(ROOTS[n], bit)), (m, n)

    def test_swapped_roots_are_rejected(self):
        for m, n in PROPER_PAIRS:
            proof = consistency_proof(m, LEAVES[:n])
            assert not verify_consistency(m, n, proof, ROOTS[n], ROOTS[m]), (m, n)

    def test_a_proof_does_not_verify_for_other_sizes_with_their_roots(self):
        for m, n in PROPER_PAIRS:
            proof = consistency_proof(m, LEAVES[:n])
            for other in range(1, SIZE_MAX + 1):
                if other != m and other <= n:
                    assert not verify_consistency(other, n, proof, ROOTS[other], ROOTS[n]), (m, n, other)
                if other != n and other >= m:
                    assert not verify_consistency(m, other, proof, ROOTS[m], ROOTS[other]), (m, n, other)

    def test_truncated_extended_or_empty_proofs_are_rejected(self):
        for m, n in PROPER_PAIRS:
            proof = consistency_proof(m, LEAVES[:n])
            assert not verify_consistency(m, n, proof[:-1], ROOTS[m], ROOTS[n]), (m, n)
            assert not verify_consistency(m, n, proof + [LEAVES[0]], ROOTS[m], ROOTS[n]), (m, n)
            assert not verify_consistency(m, n, [], ROOTS[m], ROOTS[n]), (m, n)

    def test_equal_sizes_need_an_empty_proof_and_equal_roots(self):
        assert verify_consistency(5, 5, [], ROOTS[5], ROOTS[5])
        assert not verify_consistency(5, 5, [], ROOTS[5], ROOTS[6])
        assert not verify_consistency(5, 5, [LEAVES[0]], ROOTS[5], ROOTS[5])

    def test_the_empty_tree_is_consistent_with_any_tree_through_an_empty_proof(self):
        assert verify_consistency(0, 7, [], EMPTY_ROOT, ROOTS[7])
        assert verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
        assert not verify_consistency(0, 7, [LEAVES[0]], EMPTY_ROOT, ROOTS[7])
        assert not verify_consistency(0, 7, [], ROOTS[1], ROOTS[7])

    def test_impossible_sizes_are_rejected(self):
        proof = consistency_proof(3, LEAVES[:7])
        assert not verify_consistency(7, 3, proof, ROOTS[7], ROOTS[3])
        assert not verify_consistency(-1, 7, proof, ROOTS[3], ROOTS[7])
        assert not verify_consistency(3, -7, proof, ROOTS[3], ROOTS[7])
