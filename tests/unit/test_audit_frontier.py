"""The audit's compact frontier gives the RFC 6962 root of every prefix and the stored subtrees."""

import hashlib

from posray.domain import tlog
from posray.domain.merkle import EMPTY_ROOT, leaf_hash, root_hash
from posray.domain.frontier import Frontier


def leaves(n):
    return [leaf_hash(hashlib.sha256(str(i).encode()).digest()) for i in range(n)]


class TestFrontierRoot:
    def test_an_empty_frontier_has_the_empty_root(self):
        assert Frontier().root() == EMPTY_ROOT

    def test_the_root_after_each_append_equals_the_rfc_tree_hash_for_sizes_1_to_300(self):
        all_leaves = leaves(300)
        frontier = Frontier()
        for n, leaf in enumerate(all_leaves, start=1):
            frontier.append(leaf)
            assert frontier.size == n
            assert frontier.root() == root_hash(all_leaves[:n]), n

    def test_it_holds_one_hash_per_binary_digit_of_the_size(self):
        frontier = Frontier()
        for n, leaf in enumerate(leaves(300), start=1):
            frontier.append(leaf)
            assert len(frontier._hashes) == bin(n).count("1")


class TestCompletedSubtrees:
    def test_each_completed_subtree_is_reported_once_with_its_rfc_hash(self):
        all_leaves = leaves(300)
        frontier = Frontier()
        seen = {}
        for n, leaf in enumerate(all_leaves, start=1):
            for level, index, value in frontier.append(leaf):
                assert (index + 1) << level == n
                seen[(level, index)] = value
        expected = {(lv, ix) for lv in range(1, 9) for ix in range(300 >> lv)}
        assert set(seen) == expected
        for (level, index), value in seen.items():
            assert value == root_hash(all_leaves[index << level:(index + 1) << level])

    def test_the_stride_levels_it_completes_are_the_nodes_the_log_stores(self):
        all_leaves = leaves(300)
        frontier = Frontier()
        completed = {}
        for leaf in all_leaves:
            completed.update({(lv, ix): h for lv, ix, h in frontier.append(leaf) if lv % tlog.STRIDE == 0})
        assert completed == tlog.appended_nodes(0, all_leaves, {})
