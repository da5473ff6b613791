"""RFC 6962 Merkle tree: root hashes, audit paths and their verification."""

from __future__ import annotations

import hashlib

import pytest

from posray.domain.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_inclusion,
)

SIZES = range(1, 71)
# Sizes around powers of two, where path shapes change.
SHAPE_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 31, 32, 33, 63, 64, 65, 70]


def _split(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962 §2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def reference_mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) written straight from RFC 6962 §2.1, over leaf data."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = _split(n)
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) written straight from RFC 6962 §2.1.1."""
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return reference_path(m, leaves[:k]) + [reference_mth(leaves[k:])]
    return reference_path(m - k, leaves[k:]) + [reference_mth(leaves[:k])]


def reference_sides(m: int, n: int) -> list[str]:
    """Which side each PATH(m, D[n]) element sits on, leaf upwards ("L" or "R")."""
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return reference_sides(m, k) + ["R"]
    return reference_sides(m - k, n - k) + ["L"]


def data(n: int) -> list[bytes]:
    return [b"leaf-%d" % i for i in range(n)]


def flip_bit(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


class TestHashes:
    def test_the_leaf_hash_of_empty_data_is_the_published_known_answer(self):
        assert leaf_hash(b"").hex() == (
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        )

    def test_the_empty_tree_hashes_to_sha256_of_nothing(self):
        assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()

    def test_a_node_hash_prefixes_one_and_is_order_sensitive(self):
        left, right = leaf_hash(b"a"), leaf_hash(b"b")
        assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
        assert node_hash(left, right) != node_hash(right, left)

    def test_a_leaf_and_a_node_over_the_same_bytes_hash_differently(self):
        left, right = b"l" * 32, b"r" * 32
        assert leaf_hash(left + right) != node_hash(left, right)


class TestRootHashMatchesRfc6962:
    @pytest.mark.parametrize("n", SIZES)
    def test_the_root_equals_the_recursive_reference_for_every_size(self, n):
        leaves = data(n)
        assert root_hash([leaf_hash(d) for d in leaves]) == reference_mth(leaves)

    def test_changing_any_one_leaf_changes_the_root(self):
        leaves = [leaf_hash(d) for d in data(13)]
        root = root_hash(leaves)
        for i in range(13):
            changed = leaves[:i] + [leaf_hash(b"other")] + leaves[i + 1 :]
            assert root_hash(changed) != root


class TestInclusionProofMatchesRfc6962:
    @pytest.mark.parametrize("n", SIZES)
    def test_the_proof_equals_the_reference_path_for_every_index(self, n):
        leaves = data(n)
        hashes = [leaf_hash(d) for d in leaves]
        for m in range(n):
            assert inclusion_proof(m, hashes) == reference_path(m, leaves), (n, m)

    @pytest.mark.parametrize("index", [-1, 5, 6])
    def test_an_index_outside_the_tree_raises_index_error(self, index):
        with pytest.raises(IndexError):
            inclusion_proof(index, [leaf_hash(d) for d in data(5)])


class TestVerifyInclusion:
    @pytest.mark.parametrize("n", SIZES)
    def test_every_genuine_proof_verifies(self, n):
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        for m in range(n):
            assert verify_inclusion(hashes[m], m, n, inclusion_proof(m, hashes), root)

    @pytest.mark.parametrize("n", SIZES)
    def test_a_proof_presented_for_another_index_is_rejected(self, n):
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        for m in range(n):
            proof = inclusion_proof(m, hashes)
            for other in range(n):
                if other != m:
                    assert not verify_inclusion(hashes[m], other, n, proof, root), (n, m, other)

    @pytest.mark.parametrize("n", SHAPE_SIZES)
    def test_a_proof_verifies_for_another_tree_size_only_when_its_path_has_the_same_shape(self, n):
        # RFC 9162 binds the size through the shape of the path alone (the root binds the
        # rest), so a proof fits exactly the sizes whose PATH has the same sides.
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        for m in range(n):
            proof = inclusion_proof(m, hashes)
            for size in range(0, n + 20):
                fits = size > m and reference_sides(m, size) == reference_sides(m, n)
                assert verify_inclusion(hashes[m], m, size, proof, root) == fits, (n, m, size)

    @pytest.mark.parametrize("n", SIZES)
    def test_the_last_leafs_proof_is_rejected_for_the_next_larger_or_smaller_tree(self, n):
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        proof = inclusion_proof(n - 1, hashes)
        assert not verify_inclusion(hashes[-1], n - 1, n + 1, proof, root)
        assert not verify_inclusion(hashes[-1], n - 1, n - 1, proof, root)

    @pytest.mark.parametrize("n", [2, 3, 5, 8, 13, 33, 70])
    def test_a_flipped_bit_in_any_proof_element_is_rejected(self, n):
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        for m in range(n):
            proof = inclusion_proof(m, hashes)
            for j in range(len(proof)):
                for bit in (0, 7, 100, 255):
                    forged = proof[:j] + [flip_bit(proof[j], bit)] + proof[j + 1 :]
                    assert not verify_inclusion(hashes[m], m, n, forged, root), (n, m, j, bit)

    @pytest.mark.parametrize("n", SIZES)
    def test_a_truncated_or_extended_proof_is_rejected(self, n):
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        for m in range(n):
            proof = inclusion_proof(m, hashes)
            if proof:
                assert not verify_inclusion(hashes[m], m, n, proof[:-1], root)
                assert not verify_inclusion(hashes[m], m, n, proof[1:], root)
            assert not verify_inclusion(hashes[m], m, n, proof + [hashes[0]], root)
            assert not verify_inclusion(hashes[m], m, n, proof + [root], root)

    @pytest.mark.parametrize("n", SIZES)
    def test_a_wrong_leaf_is_rejected(self, n):
        hashes = [leaf_hash(d) for d in data(n)]
        root = root_hash(hashes)
        for m in range(n):
            proof = inclusion_proof(m, hashes)
            assert not verify_inclusion(leaf_hash(b"forged"), m, n, proof, root)
            # The unhashed leaf data is not the leaf hash.
            assert not verify_inclusion(data(n)[m], m, n, proof, root)

    def test_a_wrong_root_is_rejected(self):
        hashes = [leaf_hash(d) for d in data(9)]
        proof = inclusion_proof(4, hashes)
        assert not verify_inclusion(hashes[4], 4, 9, proof, root_hash(hashes[:8]))

    def test_negative_index_and_empty_tree_are_rejected(self):
        hashes = [leaf_hash(d) for d in data(4)]
        root = root_hash(hashes)
        assert not verify_inclusion(hashes[0], -1, 4, inclusion_proof(0, hashes), root)
        assert not verify_inclusion(hashes[0], 0, 0, [], EMPTY_ROOT)
