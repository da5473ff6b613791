"""Per-shard transparency log: an RFC 6962 tree over every recorded document of a shard.

Leaf i of shard s is the document with sequence i + 1 (sequences start at 1 and have no
gaps), so the tree size equals the shard's last recorded sequence. The tree only grows.

Storage: leaf hashes live with the ledger rows (level 0); the hash of every complete subtree
whose height is a multiple of STRIDE (4, 8, 12, ...) is stored once, when it completes, and
never changes. Any subtree hash needed for a root or a proof is then computed from at most
2**(STRIDE - 1) stored hashes per level, so a proof costs one query and O(log n) hashing.
The functions here are pure: `*_keys` say which stored hashes a computation needs, the
caller fetches them in one round trip, and the computation runs on what was fetched.
"""

from __future__ import annotations

from posray.domain.merkle import EMPTY_ROOT, node_hash

STRIDE = 4
Key = tuple[int, int]  # (level, index): the perfect subtree over leaves [index << level, (index + 1) << level)


def _split(size: int) -> int:
    """Largest power of two strictly smaller than `size` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _perfect_level(start: int, end: int) -> int | None:
    size = end - start
    if size & (size - 1) == 0 and start % size == 0:
        return size.bit_length() - 1
    return None


def range_keys(start: int, end: int, out: set[Key] | None = None, stride: int = STRIDE) -> set[Key]:
    """Stored hashes needed to compute the Merkle Tree Hash of leaves [start, end).

    `stride`: hashes are stored at levels that are multiples of it (STRIDE in the ledger; 8,
    the tile height, for a reader of C2SP tiles).
    """
    out = set() if out is None else out
    if end <= start:
        return out
    level = _perfect_level(start, end)
    if level is not None:
        base = level - level % stride
        first = start >> base
        out.update((base, i) for i in range(first, first + (1 << (level - base))))
        return out
    middle = start + _split(end - start)
    range_keys(start, middle, out, stride)
    range_keys(middle, end, out, stride)
    return out


def range_hash(start: int, end: int, stored: dict[Key, bytes], stride: int = STRIDE) -> bytes:
    """Merkle Tree Hash of leaves [start, end) from the hashes `range_keys` named.

    Raises:
        KeyError: a needed stored hash is missing (the caller fetched too little).
    """
    if end <= start:
        return EMPTY_ROOT
    level = _perfect_level(start, end)
    if level is not None:
        base = level - level % stride
        first = start >> base
        layer = [stored[(base, i)] for i in range(first, first + (1 << (level - base)))]
        while len(layer) > 1:
            layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
        return layer[0]
    middle = start + _split(end - start)
    return node_hash(range_hash(start, middle, stored, stride), range_hash(middle, end, stored, stride))


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges of the audit path of leaf `index` in a tree of `size` (RFC 6962 PATH), leaf first."""
    if not 0 <= index < size:
        raise IndexError("leaf index outside the tree")
    path: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        middle = start + _split(end - start)
        if index < middle:
            path.append((middle, end))
            end = middle
        else:
            path.append((start, middle))
            start = middle
    path.reverse()
    return path


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Leaf ranges of the consistency proof between tree sizes (RFC 6962 PROOF), in proof order."""
    if not 0 < first <= second:
        raise ValueError("consistency needs 0 < first <= second")
    out: list[tuple[int, int]] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        n = end - start
        if m == n:
            if not complete:
                out.append((start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, complete)
            out.append((start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            out.append((start, start + k))

    subproof(first, 0, second, True)
    return out


def proof_keys(ranges: list[tuple[int, int]], stride: int = STRIDE) -> set[Key]:
    keys: set[Key] = set()
    for start, end in ranges:
        range_keys(start, end, keys, stride)
    return keys


def proof_hashes(ranges: list[tuple[int, int]], stored: dict[Key, bytes], stride: int = STRIDE) -> list[bytes]:
    return [range_hash(start, end, stored, stride) for start, end in ranges]


def append_keys(old_size: int, new_size: int) -> set[Key]:
    """Stored hashes (older than the append) needed to hash the subtrees an append completes."""
    keys: set[Key] = set()
    level = STRIDE
    while (1 << level) <= new_size:
        child = level - STRIDE
        first_new = old_size >> level
        last_new = (new_size >> level) - 1
        if first_new <= last_new:
            # Children complete before the append: only in the first new node, below old_size.
            old_children_end = old_size >> child
            keys.update((child, c) for c in range(first_new << STRIDE, old_children_end))
        level += STRIDE
    return keys


def appended_nodes(
    old_size: int, new_leaves: list[bytes], stored: dict[Key, bytes]
) -> dict[Key, bytes]:
    """Hashes of the stored-level subtrees (level >= STRIDE) completed by appending `new_leaves`.

    Args:
        old_size: tree size before the append.
        new_leaves: leaf hashes of leaves old_size, old_size + 1, ...
        stored: what `append_keys(old_size, new_size)` named.
    """
    new_size = old_size + len(new_leaves)
    known: dict[Key, bytes] = dict(stored)
    known.update(((0, old_size + i), h) for i, h in enumerate(new_leaves))
    created: dict[Key, bytes] = {}
    level = STRIDE
    while (1 << level) <= new_size:
        child = level - STRIDE
        for index in range(old_size >> level, new_size >> level):
            layer = [known[(child, c)] for c in range(index << STRIDE, (index + 1) << STRIDE)]
            while len(layer) > 1:
                layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
            value = layer[0]
            known[(level, index)] = value
            created[(level, index)] = value
        level += STRIDE
    return created
