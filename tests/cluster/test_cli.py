"""The operator's path: `posray up` (embedded servers, local Ray), demo, status, down."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tooling.embedded import free_port

pytestmark = pytest.mark.cluster
POSRAY = str(Path(sys.executable).with_name("posray"))


def posray(*args, env, cwd, timeout=240):
    return subprocess.run([POSRAY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def ray_processes_naming(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def test_up_demo_status_down_on_a_machine_with_nothing_configured(tmp_path):
    """A fresh machine: an empty HOME (no ~/.ray/auth_token), no POSRAY_* or RAY_* variables."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSRAY_", "RAY_", "XDG_"))}
    port = free_port()
    env.update({
        "HOME": str(home),
        "POSRAY_HTTP_PORT": str(port), "POSRAY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "POSRAY_DASHBOARD_PORT": str(free_port()), "POSRAY_REPLICAS": "1",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    })
    up = posray("up", env=env, cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        assert "embedded Redis" in up.stdout and "embedded PostgreSQL" in up.stdout
        seed = tmp_path / ".posray" / "keys" / "operator.seed"
        assert oct(seed.stat().st_mode & 0o777) == "0o600"
        ray_token = tmp_path / ".posray" / "ray" / "auth_token"
        assert oct(ray_token.stat().st_mode & 0o777) == "0o600"
        assert not (home / ".ray").exists(), "Ray must use the deployment's token, not ~/.ray"
        # The demo and status run from another folder: they find the deployment through the
        # pointer `posray up` left in the (empty) HOME.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        demo = posray("demo", env=env, cwd=elsewhere)
        assert demo.returncode == 0, demo.stdout + demo.stderr[-2000:]
        assert "inclusion proof verifies: True" in demo.stdout
        assert "same code True" in demo.stdout
        status = posray("status", "--json", env=env, cwd=elsewhere)
        assert status.returncode == 0, status.stderr[-2000:]
        report = json.loads(status.stdout[status.stdout.index("{"):])
        assert report["totals"]["captured"] == 70
        assert all({"ledger_lag_s", "checkpoint_age_s"} <= set(row) for row in report["shards"].values())
        shown = posray("status", env=env, cwd=elsewhere)  # the table also asks the LedgerWriters, through Ray
        assert shown.returncode == 0 and "Ray not reachable" not in shown.stdout, shown.stdout + shown.stderr
        outputs = up.stdout + up.stderr + demo.stdout + demo.stderr + shown.stdout + shown.stderr
        assert seed.read_text().strip() not in outputs
        assert ray_token.read_text().strip() not in outputs
    finally:
        down = posray("down", env=env, cwd=tmp_path)
    assert down.returncode == 0, down.stderr[-2000:]
    assert "stopped the local Ray" in down.stdout
    state = tmp_path / ".posray"
    assert not (state / "state.json").exists()
    assert ray_processes_naming(str(state)) == [], "embedded servers still running"
    from deployments.launcher import ray_temp_dir
    from posray.settings import Settings
    assert ray_processes_naming(str(ray_temp_dir(Settings(data_dir=state.resolve())))) == [], "Ray still running"


def test_an_up_that_fails_half_way_stops_the_servers_it_started(tmp_path):
    """Ray unreachable: `posray up` exits 1, and no embedded Redis or PostgreSQL is left running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSRAY_", "RAY_", "XDG_"))}
    (tmp_path / "home").mkdir()
    env.update({"HOME": str(tmp_path / "home"), "POSRAY_RAY_ADDRESS": f"127.0.0.1:{free_port()}", "POSRAY_HTTP_PORT": str(free_port())})
    up = posray("up", env=env, cwd=tmp_path)
    data_dir = str(tmp_path / ".posray")
    try:
        assert up.returncode == 1
        assert "embedded Redis" in up.stdout and "posray up failed" in up.stderr
        redis_port = int(re.search(r"redis://127\.0\.0\.1:(\d+)", up.stdout).group(1))
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
        assert ray_processes_naming(data_dir) == []  # PostgreSQL runs with -D under the data dir
        assert not (tmp_path / ".posray" / "state.json").exists()
    finally:
        posray("down", env=env, cwd=tmp_path)
