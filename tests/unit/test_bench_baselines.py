"""Pure parts of `posray bench --baselines`: names, ratios, report lines, requests, ledger rows, the naive peer."""

from __future__ import annotations

import asyncio
import pickle
from array import array

import orjson
import pytest

from posray.adapters.pg_ledger import ENTRY_COLUMNS
from tooling.bench import baselines, report
from tooling.bench.naive_peer import NaivePeer, TerminalKeys
from tooling.bench.workload import Series
from posray.domain.codes import CodeKey
from posray.domain.keys import terminal_key
from posray.domain.merkle import leaf_hash
from posray.domain.transaction import Rules
from tests.documents import make_document, now_issued_at

MASTER = b"m" * 32
RULES = Rules(frozenset((0, 500, 1000, 1300, 2000)))


def write_series(tmp_path, documents: list[dict]) -> Series:
    """A series in `tmp_path` laid out as workload.sign_series writes it (documents + commas, offsets)."""
    series = Series("s1", 0, 10, len(documents), tmp_path)
    parts = [orjson.dumps(d) + b"," for d in documents]
    series.docs_path.write_bytes(b"".join(parts))
    offsets, at = array("Q", [0]), 0
    for part in parts:
        at += len(part)
        offsets.append(at)
    series.index_path.write_bytes(offsets.tobytes())
    return series


def signed(terminal_id: str, counter: int) -> dict:
    return make_document(terminal_id, counter, terminal_key(MASTER, terminal_id, 1))


class TestNames:
    def test_all_and_comma_lists_come_back_in_running_order(self):
        assert baselines.parse_names("all") == baselines.ALL
        assert baselines.parse_names("copy, noop") == ("noop", "copy")

    @pytest.mark.parametrize("text", ["", "noop,fast", "everything"])
    def test_unknown_names_are_refused(self, text):
        with pytest.raises(ValueError):
            baselines.parse_names(text)


class TestRatios:
    def test_ratio_is_posray_over_the_baseline(self):
        assert report.ratio(700.0, 7000.0) == 0.1
        assert report.ratio(None, 7000.0) is None
        assert report.ratio(700.0, 0.0) is None

    def test_every_baseline_block_gets_its_ratio_and_a_failed_one_none(self):
        block = report.baselines_block(500.0, {"noop_serve": {"docs_per_s": 5000.0},
                                               "pg_copy": {"error": "Unavailable: down"}})

        assert block["posray_docs_per_s"] == 500.0
        assert block["noop_serve"] == {"docs_per_s": 5000.0, "ratio": 0.1}
        assert block["pg_copy"]["ratio"] is None

    def test_console_lines_name_each_baseline_its_rate_and_failures(self):
        block = report.baselines_block(500.0, {
            "noop_serve": {"docs_per_s": 5000.0, "latency_ms": {"p50": 1.5, "p99": 9.0}, "setup": "/noop"},
            "redis_xadd": {"error": "ConnectionError: refused"}})

        lines = report.baseline_lines(block)

        assert lines[0] == "baselines (posray 500 docs/s):"
        assert "5,000 docs/s" in lines[1] and "p99 9.0 ms" in lines[1] and "0.100" in lines[1]
        assert "FAILED (ConnectionError: refused)" in lines[2]

    def test_the_bar_chart_is_a_png(self, tmp_path):
        block = report.baselines_block(500.0, {"noop_serve": {"docs_per_s": 5000.0},
                                               "pg_copy": {"docs_per_s": 60000.0}})
        path = report.write_baseline_chart(block, tmp_path / "b.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class TestRequests:
    def test_the_noop_builder_prefixes_the_path_and_starts_over_when_documents_run_out(self, tmp_path):
        series = write_series(tmp_path, [{"n": i} for i in range(7)])
        builder = pickle.loads(pickle.dumps(baselines.CyclingBuilder(series, "h:1", 1, 3, "/noop"))).open()

        assert builder.request_count > 10**9
        assert builder(0).startswith(b"POST /noop/v1/transactions/batch HTTP/1.1\r\n")
        assert builder(0).endswith(b'{"documents":[{"n":1},{"n":2},{"n":3}]}')
        assert builder(2) == builder(0) and builder(3) == builder(1)

    def test_the_counting_recorder_accepts_a_whole_request_on_200_only(self):
        recorder = baselines.CountingRecorder(0, 100)
        assert recorder(0, 200, b"{}") == 100
        assert recorder(1, 503, b"{}") == 0


class TestLedgerRows:
    def test_entries_are_canonical_documents_reused_when_the_series_runs_out(self, tmp_path):
        series = write_series(tmp_path, [signed("T-1", 1), signed("T-2", 1), signed("T-1", 2)])

        entries = baselines.load_entries(series, 1, 5)

        assert len(entries) == 5 and entries[0] == entries[2] == entries[4]
        assert orjson.loads(entries[1][0])["terminal_id"] == "T-1"

    def test_rows_follow_ledger_entries_columns_with_fresh_shard_sequences(self, tmp_path):
        docs = [signed(f"T-{i % 3}", i // 3 + 1) for i in range(7)]
        entries = baselines.load_entries(write_series(tmp_path, docs), 0, 7)

        rows = baselines.ledger_rows(entries, 4, CodeKey(b"k" * 32), 3)

        assert all(len(r) == len(ENTRY_COLUMNS) for r in rows)
        assert len({(r[0], r[1]) for r in rows}) == 7
        assert [(r[2], r[3]) for r in rows] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (2, 0)]
        record = orjson.loads(rows[0][9])
        assert record["document"]["terminal_id"] == rows[0][4] and record["seq"] == rows[0][1]
        assert rows[0][10] == leaf_hash(rows[0][9])


class FakePool:
    """The two statements of the naive peer, in memory."""

    def __init__(self, terminals: dict[str, str]):
        self.terminals, self.rows, self.lookups = terminals, {}, 0

    async def fetchrow(self, sql, *args):
        if "FROM terminals" in sql:
            self.lookups += 1
            status = self.terminals.get(args[0])
            return None if status is None else {"key_version": 1, "status": status}
        row_id, digest = self.rows[args[:2]]
        return {"id": row_id, "document_hash": digest}

    async def fetchval(self, sql, terminal_id, counter, issued_ms, total, canonical, digest):
        if (terminal_id, counter) in self.rows:
            return None
        self.rows[terminal_id, counter] = (len(self.rows) + 1, digest)
        return len(self.rows)


class TestNaivePeer:
    def accept(self, pool, *docs):
        peer = NaivePeer(pool, TerminalKeys(pool, MASTER), RULES, "scratch")

        async def each():
            return [await peer.accept(d) for d in docs]

        return asyncio.run(each())

    def test_accepts_signed_documents_with_one_key_lookup_per_terminal(self):
        pool = FakePool({"T-1": "active"})

        (status, first), (_, second) = self.accept(pool, signed("T-1", 1), signed("T-1", 2))

        assert status == 200 and first["status"] == "accepted" and first["seq"] == 1
        assert second["seq"] == 2 and pool.lookups == 1 and len(pool.rows) == 2

    def test_refuses_unknown_revoked_mis_signed_and_inconsistent_documents(self):
        pool = FakePool({"T-1": "active", "T-R": "revoked"})
        forged = {**signed("T-1", 1), "mac": "0" * 64}
        wrong_total = signed("T-1", 2)
        wrong_total["total_minor"] += 1

        answers = self.accept(pool, signed("T-X", 1), signed("T-R", 1), forged, wrong_total)

        assert [(status, a["status"], a["status_code"]) for status, a in answers] == [
            (401, "rejected", 401), (401, "rejected", 401), (401, "rejected", 401), (422, "rejected", 422)]
        assert pool.rows == {}

    def test_the_same_document_again_is_a_duplicate_and_another_under_its_counter_a_conflict(self):
        pool = FakePool({"T-1": "active"})
        doc = signed("T-1", 1)
        other = make_document("T-1", 1, terminal_key(MASTER, "T-1", 1), issued_at=now_issued_at(), seed=7)

        (_, first), (_, again), (status, clash) = self.accept(pool, doc, doc, other)

        assert again["duplicate"] and again["seq"] == first["seq"]
        assert status == 409 and clash["status"] == "rejected"
