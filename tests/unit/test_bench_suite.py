"""The bench suite's verdicts, computed from synthetic run reports (no servers)."""

from __future__ import annotations

from tooling.bench.suite import ledger_steadiness, markdown, summarize


def report(docs_per_s, p99=10.0, backlog=None, baselines=None, errors=0, drained=True, duration_s=10.0):
    backlog = backlog if backlog is not None else [0] * 11
    return {
        "result": {"accepted_docs_per_s": docs_per_s, "documents_accepted": int(docs_per_s * duration_s),
                   "duration_s": duration_s, "latency_ms": {"p50": 1.0, "p99": p99}, "errors": {},
                   "errors_total": errors},
        "ledger": {"backlog_max_during_run": max(backlog), "backlog_at_end_of_run": backlog[-1],
                   "drained": drained, "ack_to_recorded_ms": {"p99": 300.0}},
        "exactly_once": {"passed": True},
        "timeline": [{"t_s": t, "backlog": b} for t, b in enumerate(backlog)],
        "baselines": baselines or {},
        "files": {"json": "x.json"},
    }


def test_a_flat_backlog_keeps_up_and_a_rising_one_does_not():
    flat = ledger_steadiness(report(1000, backlog=[100, 300, 200, 250, 150, 300, 200, 100, 250, 200, 150]))
    rising = ledger_steadiness(report(1000, backlog=[k * 500 for k in range(11)]))
    assert flat["keeps_up"] and flat["backlog_max"] == 300
    assert not rising["keeps_up"] and rising["backlog_slope_docs_per_s"] == 500.0
    assert rising["recorded_docs_per_s"] == (10_000 - 5_000) / 10


def test_the_verdicts_follow_the_ratios():
    batch = report(20_000, baselines={"noop_serve": {"docs_per_s": 30_000}, "naive_peer": {"docs_per_s": 500},
                                      "pg_copy": {"docs_per_s": 50_000},
                                      "posray_ledger": {"docs_per_s": 16_000}})
    single = report(1_000, baselines={"noop_serve": {"docs_per_s": 4_000}, "naive_peer": {"docs_per_s": 1_500}})
    summary = summarize(batch, single, report(500, p99=60.0), report(16_000))
    met = {t["target"].split(":")[0]: t["met"] for t in summary["targets"]}
    assert met["batched path (100/request) vs no-op Serve, batched"]  # 20k / 30k = 0.667
    assert not met["single-document path vs no-op Serve, single"]  # 1k / 4k = 0.25
    assert met["batched path vs the reference's 15,000 documents/s"]
    assert not met["ledger capacity (one process draining a backlog) vs raw COPY (one connection)"]  # 0.32
    assert not met["posray vs naive peer, single"] and met["posray vs naive peer, batched"]
    assert [t["met"] for t in summary["targets"] if "p99" in t["target"]] == [False]
    assert summary["all_runs_clean"]
    table = markdown(summary)
    assert table.count("\n") == 2 + len(summary["targets"]) and "| 0.667 | yes |" in table
