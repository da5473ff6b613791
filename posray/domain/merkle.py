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
