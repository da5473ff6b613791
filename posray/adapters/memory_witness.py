"""In-memory witness state: WitnessFiles' load/save over a dict, for unit tests."""

from __future__ import annotations

from posray.domain.witness import LogState


class MemoryWitnessState:
    """The saved state; `saves` counts every save, `fail` makes the next save raise."""

    def __init__(self):
        self.saved: dict[str, LogState] = {}
        self.saves = 0
        self.fail: Exception | None = None

    def load(self) -> dict[str, LogState]:
        return dict(self.saved)

    def save(self, logs: dict[str, LogState]) -> None:
        if self.fail is not None:
            raise self.fail
        self.saved = dict(logs)
        self.saves += 1
