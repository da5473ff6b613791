"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion proofs and their verification.

Leaf hash = SHA-256(0x00 || leaf data); interior node = SHA-256(0x01 || left || right); the
tree over n leaves splits at k, the largest power of two smaller than n (RFC 6962 §2.1).
"""

from __future__ import annotations

import hashlib

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash of `data`."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash of two child hashes."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_hash(leaf_hashes: list[bytes]) -> bytes:
    """Merkle Tree Hash (RFC 6962 §2.1) of the given leaf hashes, computed bottom-up.

    Pairing adjacent nodes level by level and carrying an odd last node up unchanged gives
    exactly the recursive largest-power-of-two split of the RFC.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_proof(index: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """Audit path (RFC 6962 §2.1.1 PATH) for leaf `index` in the tree over `leaf_hashes`.

    Raises:
        IndexError: `index` is not a leaf of the tree.
    """
    if not 0 <= index < len(leaf_hashes):
        raise IndexError("leaf index outside the tree")
    path: list[bytes] = []
    level = list(leaf_hashes)
    position = index
    while len(level) > 1:
        sibling = position ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
        position //= 2
    return path


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: list[bytes], root: bytes
) -> bool:
    """Verify an inclusion proof exactly as RFC 9162 §2.1.3.2 specifies.

    Args:
        leaf: the leaf hash (already prefixed-and-hashed with `leaf_hash`).
        index: the leaf's 0-based index in the tree.
        tree_size: number of leaves in the tree the proof is for.
        proof: the audit path, from the leaf upwards.
        root: the expected root hash.

    Returns:
        True when the path leads from `leaf` to `root`.
    """
    if index >= tree_size or index < 0:
        return False
    fn, sn = index, tree_size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def _split(size: int) -> int:
    """Largest power of two strictly smaller than `size` (size >= 2), the RFC's k."""
    return 1 << ((size - 1).bit_length() - 1)


def consistency_proof(first_size: int, leaf_hashes: list[bytes]) -> list[bytes]:
    """Consistency proof (RFC 6962 §2.1.2 PROOF) from the first `first_size` leaves to all.

    SUBPROOF descends into one child per step and appends the other child's hash after the
    recursive part, so walking down while collecting those hashes, then reversing them,
    gives the RFC's order without recursion. PROOF(m, D[m]) is the empty list.

    Raises:
        ValueError: not 0 < first_size <= len(leaf_hashes).
    """
    if not 0 < first_size <= len(leaf_hashes):
        raise ValueError("a consistency proof needs 0 < first_size <= tree size")
    m, lo, hi = first_size, 0, len(leaf_hashes)
    complete = True  # the RFC's b: the subtree so far is a complete subtree of the old tree
    collected: list[bytes] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            collected.append(root_hash(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            collected.append(root_hash(leaf_hashes[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        collected.append(root_hash(leaf_hashes[lo:hi]))
    return collected[::-1]


def verify_consistency(
    first_size: int, second_size: int, proof: list[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """Verify a consistency proof exactly as RFC 9162 §2.1.4.2 specifies.

    The RFC covers 0 < first < second; equal sizes need an empty proof and equal roots, and
    the empty tree (first_size 0) is consistent with any tree through an empty proof.

    Args:
        first_size: leaves in the older tree.
        second_size: leaves in the newer tree.
        proof: the consistency path, as `consistency_proof` returns it.
        first_root: root hash of the older tree.
        second_root: root hash of the newer tree.

    Returns:
        True when the newer tree extends the older one.
    """
    if not 0 <= first_size <= second_size:
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    if first_size == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:  # step 1
        return False
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # step 2: first is an exact power of 2
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0  # step 7
