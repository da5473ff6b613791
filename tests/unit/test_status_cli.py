"""`posray status` prints the per-shard figures operators watch (the report itself is faked)."""

from __future__ import annotations

from tooling import cli
from posray.services import status


async def fake_report(settings) -> dict:
    row = {"captured": 12, "backlog": 2, "recorded": 10, "batches": 3, "ledger_lag_s": 1.25,
           "checkpointed": 8, "checkpoint_age_s": 3.5, "conflicts_unreleased": 0, "lost_sequences": 0}
    stopped = row | {"conflicts_unreleased": 2, "lost_sequences": 40}
    return {"shards": {0: row, 1: stopped}, "totals": {"captured": 24, "backlog": 4, "recorded": 20}, "terminals": 1}


def test_status_shows_backlog_ledger_lag_and_checkpoint_age_per_shard(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(status, "gather_status", fake_report)
    monkeypatch.setattr(cli, "_verifier_key", lambda settings: "key")
    monkeypatch.delenv("POSRAY_RAY_ADDRESS", raising=False)
    # status refuses to run without a deployment's servers; the faked report never connects.
    monkeypatch.setenv("POSRAY_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("POSRAY_PG_DSN", "postgresql://postgres@127.0.0.1:1/posray")
    assert cli.main(["--data-dir", str(tmp_path), "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("shard"))
    assert "backlog" in header and "lag s" in header and "ckpt age s" in header
    assert lines[lines.index(header) + 1].split() == ["0", "12", "2", "10", "3", "1.2", "3.5", "ok"]


def test_status_says_which_shard_stopped_recording_and_what_to_run(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(status, "gather_status", fake_report)
    monkeypatch.setattr(cli, "_verifier_key", lambda settings: "key")
    monkeypatch.delenv("POSRAY_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("POSRAY_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("POSRAY_PG_DSN", "postgresql://postgres@127.0.0.1:1/posray")
    assert cli.main(["--data-dir", str(tmp_path), "status"]) == 0
    out = capsys.readouterr().out
    assert "shard 1: recording STOPPED by 2 conflicting" in out and "posray capture release 1" in out
    assert "shard 1: 40 acknowledged sequence(s) lost" in out
    assert "shard 0: recording STOPPED" not in out
