"""The stored-subtree transparency log gives exactly the RFC 6962 roots and proofs."""

import hashlib

import pytest

from posray.domain import tlog
from posray.domain.merkle import inclusion_proof, leaf_hash, root_hash, verify_inclusion


def leaves(n):
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


def grow(sizes):
    """Append batches of the given sizes; return (all leaves, every stored hash)."""
    all_leaves: list[bytes] = []
    stored: dict = {}
    for size in sizes:
        new = leaves(len(all_leaves) + size)[len(all_leaves):]
        old = len(all_leaves)
        needed = tlog.append_keys(old, old + size)
        fetched = {k: stored[k] for k in needed}
        assert set(fetched) == needed, "append needs only hashes already stored"
        stored.update(((0, old + i), h) for i, h in enumerate(new))
        stored.update(tlog.appended_nodes(old, new, fetched))
        all_leaves.extend(new)
    return all_leaves, stored


class TestRoots:
    @pytest.mark.parametrize("sizes", [[1], [5, 3], [16], [17, 1, 40], [1] * 70, [300, 7, 250], [4097]])
    def test_the_root_of_every_prefix_equals_the_rfc_tree_hash(self, sizes):
        all_leaves, stored = grow(sizes)
        for n in sorted({1, 2, 3, 15, 16, 17, 31, 33, 255, 256, 257, len(all_leaves)}):
            if n <= len(all_leaves):
                keys = tlog.range_keys(0, n)
                assert tlog.range_hash(0, n, {k: stored[k] for k in keys}) == root_hash(all_leaves[:n])

    def test_only_stride_levels_are_stored(self):
        _, stored = grow([1000])
        assert {level for level, _ in stored} == {0, 4, 8}
        assert len([k for k in stored if k[0] == 4]) == 1000 // 16

    def test_a_range_needs_few_stored_hashes(self):
        keys = tlog.range_keys(0, 1_000_003)
        assert len(keys) < 20 * 8


class TestProofs:
    @pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 17, 100, 257])
    def test_inclusion_proofs_equal_the_rfc_audit_path_and_verify(self, n):
        all_leaves, stored = grow([n])
        root = root_hash(all_leaves)
        for m in range(n):
            ranges = tlog.inclusion_ranges(m, n)
            proof = tlog.proof_hashes(ranges, {k: stored[k] for k in tlog.proof_keys(ranges)})
            assert proof == inclusion_proof(m, all_leaves)
            assert verify_inclusion(all_leaves[m], m, n, proof, root)

    def test_a_proof_for_an_older_tree_size_uses_only_that_prefix(self):
        all_leaves, stored = grow([40, 40])
        ranges = tlog.inclusion_ranges(5, 33)
        assert all(end <= 33 for _, end in ranges)
        proof = tlog.proof_hashes(ranges, stored)
        assert verify_inclusion(all_leaves[5], 5, 33, proof, root_hash(all_leaves[:33]))

    @pytest.mark.parametrize("first,second", [(1, 1), (1, 2), (3, 7), (4, 8), (6, 8), (7, 100), (16, 33), (64, 64)])
    def test_consistency_ranges_follow_rfc_subproof(self, first, second):
        ranges = tlog.consistency_ranges(first, second)
        if first == second:
            assert ranges == []
        # RFC 6962 §2.1.3 examples (tree of 7 leaves): PROOF(3, D[7]) = [c, d, g, l]
        if (first, second) == (3, 7):
            assert ranges == [(2, 3), (3, 4), (0, 2), (4, 7)]
        if (first, second) == (4, 8):
            assert ranges == [(4, 8)]
        if (first, second) == (6, 8):
            assert ranges == [(4, 6), (6, 8), (0, 4)]
