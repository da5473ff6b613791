"""ActiveTerminals: how many distinct terminals a replica saw recently, in bounded memory."""

from __future__ import annotations

import time
from typing import Callable, Iterable


class ActiveTerminals:
    """Distinct terminal ids seen in the last `window_s`, remembering at most `ids_max` of them.

    One dict maps each id to when it was last seen (whole seconds); expired ones are dropped by
    `count()`, and by `see()` at most once a second while full. Once `ids_max` ids are held, new
    ids are not remembered until old ones expire and the count reads `ids_max` ("at least").
    """

    def __init__(self, window_s: float = 300, ids_max: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self._window_s = window_s
        self._ids_max = ids_max
        self._clock = clock
        self._seen: dict[str, int] = {}
        self._pruned_at = float("-inf")

    def see(self, terminal_ids: Iterable[str]) -> None:
        now = int(self._clock())
        if len(self._seen) >= self._ids_max and self._clock() - self._pruned_at >= 1:
            self._prune()
        seen = self._seen
        if len(seen) < self._ids_max:
            seen.update(dict.fromkeys(terminal_ids, now))
            while len(seen) > self._ids_max:  # the update overshot: forget the newest extras
                seen.popitem()
        else:
            for terminal_id in terminal_ids:
                if terminal_id in seen:
                    seen[terminal_id] = now

    def count(self) -> int:
        """Distinct terminals seen within the window."""
        self._prune()
        return len(self._seen)

    def _prune(self) -> None:
        self._pruned_at = self._clock()
        cutoff = self._pruned_at - self._window_s
        if any(t < cutoff for t in self._seen.values()):
            self._seen = {k: t for k, t in self._seen.items() if t >= cutoff}
