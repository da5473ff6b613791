"""`posray faults`, quick: kill -9 a LedgerWriter, then kill -9 Redis and restart it from its AOF, under load.

The command runs in its own process: it starts its own Ray, which must not meet the Ray of
the other cluster tests' session fixture.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tooling.faults_cli import RETRY_LATER

pytestmark = pytest.mark.cluster
RUN_TIMEOUT_S = 600


def test_ledger_kill_and_redis_restart_keep_exactly_once_and_answer_only_retry_later(tmp_path):
    out, raw = tmp_path / "reliability.md", tmp_path / "faults.json"
    cmd = [sys.executable, "-m", "tooling.cli", "faults", "--scenarios", "ledger-kill", "redis-restart",
           "--duration-s", "8", "--fault-at-s", "2", "--rate", "150", "--replicas", "1",
           "--no-pg-fsync", "--out", str(out), "--json", str(raw)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    print(run.stdout[-3000:], run.stderr[-3000:])
    assert run.returncode == 0, run.stderr[-3000:]
    ledger, redis = json.loads(raw.read_text())

    for r in (ledger, redis):
        check = r["exactly_once"]
        assert check["passed"], (r["scenario"], check)
        assert check["acknowledged"] == check["recorded"] > 0
        assert check["recorded_twice"] == check["acknowledged_twice"] == check["missing"] == 0
        assert r["unresolved"] == 0 and r["drained"]
        assert set(r["errors"]) <= RETRY_LATER, (r["scenario"], r["errors"])
    assert ledger["acknowledged_on_resend"] == 0, "a LedgerWriter crash is invisible to terminals"
    assert redis["errors"].get("503 + Retry-After", 0) > 0, "terminals saw Redis away"
    assert redis["error_answer_ms_max"] < 15_000, "refused fast, never a hang"
    assert redis["backlog_shard_max"] <= redis["backlog_shard_bound"]
    report = out.read_text()
    assert report.count("| kill -9 ") == 2 and "posray faults --scenarios ledger-kill" in report
