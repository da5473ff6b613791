"""Progress of the CLI's long commands on stderr: a live bar on a terminal, a plain line every few
seconds otherwise, so that CI logs stay readable.

Shell only: the core (domain, services, adapters) never imports this module or rich; a command
passes the callable that `Progress` yields (done so far -> None) into the service as `progress`.

    with Progress("generate", total=config.documents, unit="documents") as tick:
        load_into_ledger(..., progress=tick)
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

PLAIN_INTERVAL_S = 10.0


class Progress:
    """One long step of a command, shown while the `with` block runs.

    Args:
        label: what is done, e.g. "snapshot" or "audit shard 3".
        total: how many units are expected, None when unknown (a count and rate are shown).
        unit: what is counted, plural ("documents", "terminals").
        stream: where progress goes (stderr by default).
        live: a redrawn bar (rich) when True, plain lines when False; by default a bar only
            when `stream` is a terminal.
        interval_s: at most one plain line per this many seconds.
        end_line: in plain mode, end a step that printed lines with a line of its own (False
            when the command prints its own result).
    """

    def __init__(self, label: str, total: int | None = None, unit: str = "documents", *,
                 stream: TextIO | None = None, live: bool | None = None, interval_s: float = PLAIN_INTERVAL_S,
                 end_line: bool = True):
        self.label, self.total, self.unit = label, total, unit
        self._stream = stream if stream is not None else sys.stderr
        self._live = _is_terminal(self._stream) if live is None else live
        self._interval_s = interval_s
        self._end_line = end_line
        self._started = self._printed = time.monotonic()
        self.done = 0
        self._bar = None

    def __enter__(self) -> Callable[[int], None]:
        self._started = self._printed = time.monotonic()
        if self._live:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=Console(file=self._stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
        return self.update

    def update(self, done: int, total: int | None = None) -> None:
        """Record that `done` units are done so far (a count that only grows), and the total
        when the work learns it only once started."""
        self.done = max(self.done, done)
        self.total = total if total is not None else self.total
        now = time.monotonic()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, total=self.total,
                             rate=f"{self._rate(now):,.0f} {self.unit}/s")
        elif now - self._printed >= self._interval_s:
            self._printed = now
            print(f"{self.label}: {self._count()} ({self._rate(now):,.0f}/s, {now - self._started:.0f} s)",
                  file=self._stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._end_line and exc[0] is None and time.monotonic() - self._started >= self._interval_s:
            # A step long enough to have printed lines says that it ended; a short one stays quiet.
            now = time.monotonic()
            print(f"{self.label}: {self._count()} in {now - self._started:.1f} s", file=self._stream, flush=True)

    def _count(self) -> str:
        if self.total:
            return f"{self.done:,} of {self.total:,} {self.unit} ({self.done / self.total:.0%})"
        return f"{self.done:,} {self.unit}"

    def _rate(self, now: float) -> float:
        return self.done / max(now - self._started, 1e-9)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
