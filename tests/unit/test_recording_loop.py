"""keep_recording: what the LedgerWriter retries, when it waits for an operator, when it stops."""

from __future__ import annotations

import asyncio

from posray.domain.errors import AuditDivergence, LedgerConflict, LedgerRace, StreamGap, Unavailable
from posray.services.recording import BACKOFF_MAX_S, UNEXPECTED_RETRY_S, keep_recording


class _Scripted:
    """A recorder whose steps fail as scripted, then raise CancelledError to end the test."""

    shard = 7

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.steps = self.resyncs = 0

    async def step(self) -> int:
        self.steps += 1
        if not self.outcomes:
            raise asyncio.CancelledError
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def resync(self) -> None:
        self.resyncs += 1


def _run(recorder) -> tuple[list, list]:
    reports, waits = [], []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main():
        try:
            await keep_recording(recorder, lambda *state: reports.append(state), sleep)
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    return reports, waits


def test_transient_failures_are_retried_with_growing_back_off_and_a_resync_each_time():
    recorder = _Scripted([Unavailable("Redis is unreachable", 1), LedgerRace("batch 4 taken"),
                          StreamGap("sequence 9 is missing"), 3])
    reports, waits = _run(recorder)
    assert waits == [0.1, 0.2, 0.4] and recorder.resyncs == 3
    assert [error is None for _, error, _ in reports] == [False, False, False, True]
    assert reports[-1] == (7, None, 0), "a success clears the shard's error"


def test_a_conflict_waits_for_the_operator_and_is_reported_with_its_count():
    recorder = _Scripted([LedgerConflict("seq 5 differs", 7, (5, 6)), LedgerConflict("seq 5 differs", 7, (5, 6)), 2])
    reports, waits = _run(recorder)
    assert waits == [BACKOFF_MAX_S, BACKOFF_MAX_S]
    assert reports[0] == (7, "seq 5 differs", 2) and reports[-1] == (7, None, 0)


def test_an_unexpected_error_is_reported_and_retried_slowly_never_silently(caplog):
    recorder = _Scripted([KeyError("total_minor"), KeyError("total_minor"), 5])
    reports, waits = _run(recorder)
    assert waits == [UNEXPECTED_RETRY_S, UNEXPECTED_RETRY_S] and recorder.resyncs == 2
    assert reports[0][1].startswith("unexpected KeyError") and reports[-1] == (7, None, 0)
    assert sum("Traceback" in (r.exc_text or "") or r.exc_info is not None for r in caplog.records) == 2


def test_stored_bytes_contradicting_their_hashes_stop_the_shard():
    recorder = _Scripted([AuditDivergence("stored log hash 12 is missing"), 5])
    reports, waits = _run(recorder)
    assert recorder.steps == 1 and waits == []
    (shard, error, _), = reports
    assert shard == 7 and error.startswith("recording stopped: stored log hash 12")
