"""Progress of long commands: the callbacks the core calls with growing counts, and how the shell
shows them (plain lines off a terminal, a bar on one). Nothing here asserts on timing."""

from __future__ import annotations

import io

import pytest

from posray.adapters.pg_terminals import _counted
from tooling.bench import workload
from posray.progress import Progress
from posray.services.terminals import write_keys_file


def grows(counts: list[int]) -> bool:
    return counts == sorted(counts) and len(set(counts)) == len(counts)


class TestCallbacks:
    def test_signing_a_bench_series_reports_growing_counts_up_to_every_document(self, tmp_path, monkeypatch):
        monkeypatch.setattr(workload, "SIGN_CHUNK", 5)
        series = workload.series_of(tmp_path, "k", 0, 3, 23)
        seen: list[int] = []
        workload.sign_series(series, b"m" * 32, 1, say=lambda line: pytest.fail(line), progress=seen.append)
        assert grows(seen) and seen[-1] == 23 and len(seen) == 5

    def test_writing_terminal_keys_reports_growing_counts(self, tmp_path, monkeypatch):
        monkeypatch.setattr("posray.services.terminals.KEYS_PROGRESS_EVERY", 4)
        rows = [(f"T-{i}", "m1", None) for i in range(10)]
        seen: list[int] = []
        write_keys_file(tmp_path / "keys.csv", b"m" * 32, rows, progress=seen.append)
        assert seen == [4, 8, 10]
        assert len((tmp_path / "keys.csv").read_text().splitlines()) == 11

    def test_rows_handed_to_copy_are_counted_as_copy_takes_them(self, monkeypatch):
        monkeypatch.setattr("posray.adapters.pg_terminals.PROGRESS_EVERY", 3)
        seen: list[int] = []
        rows = _counted(list(range(7)), seen.append)
        assert [next(rows) for _ in range(4)] == [0, 1, 2, 3] and seen == [3]
        assert list(rows) == [4, 5, 6] and seen == [3, 6, 7]
        assert list(_counted([1, 2], None)) == [1, 2]


class TestProgress:
    def test_off_a_terminal_it_prints_plain_lines_with_the_count(self):
        out = io.StringIO()
        with Progress("generate", total=200, unit="documents", stream=out, interval_s=0) as tick:
            tick(50)
            tick(200)
        lines = out.getvalue().splitlines()
        assert lines[0].startswith("generate: 50 of 200 documents (25%)")
        assert lines[1].startswith("generate: 200 of 200 documents (100%)")
        assert lines[-1].startswith("generate: 200 of 200 documents (100%) in ")

    def test_a_short_step_off_a_terminal_stays_quiet_and_counts_never_go_back(self):
        out = io.StringIO()
        with Progress("snapshot", unit="ledger rows", stream=out, interval_s=3600) as tick:
            tick(10, 40)
            tick(5)
        assert out.getvalue() == ""

    def test_on_a_terminal_it_draws_a_bar_that_learns_its_total(self):
        out = io.StringIO()
        progress = Progress("snapshot", unit="ledger rows", stream=out, live=True)
        with progress as tick:
            tick(10, 40)
            tick(40)
        assert (progress.done, progress.total) == (40, 40)
        assert "snapshot" in out.getvalue() and "40/40" in out.getvalue()

    def test_a_stream_that_is_no_terminal_gets_no_bar(self):
        assert Progress("x", stream=io.StringIO())._live is False
