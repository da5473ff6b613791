"""The compact frontier of a growing RFC 6962 tree (the audit grows each shard's log with it)."""

from __future__ import annotations

from posray.domain.merkle import EMPTY_ROOT, node_hash


class Frontier:
    """The compact frontier of a growing RFC 6962 tree: the roots of its perfect subtrees.

    A tree of n leaves is the perfect subtrees named by the binary digits of n, largest first,
    and its root folds them from the right (the RFC's largest-power-of-two split), so the
    frontier holds at most log2(n) + 1 hashes.
    """

    __slots__ = ("size", "_levels", "_hashes")

    def __init__(self) -> None:
        self.size = 0
        self._levels: list[int] = []
        self._hashes: list[bytes] = []

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add the next leaf hash; return the subtrees it completes as (level, index, hash), lowest first."""
        self.size += 1
        level, value, completed = 0, leaf, []
        while self._levels and self._levels[-1] == level:
            self._levels.pop()
            value = node_hash(self._hashes.pop(), value)
            level += 1
            completed.append((level, (self.size >> level) - 1, value))
        self._levels.append(level)
        self._hashes.append(value)
        return completed

    def root(self) -> bytes:
        """Merkle Tree Hash of all leaves appended so far."""
        if not self._hashes:
            return EMPTY_ROOT
        value = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            value = node_hash(left, value)
        return value
