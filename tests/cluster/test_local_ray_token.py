"""A job that starts its own local Ray (no cluster given) leaves nothing in the user's home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
LOCAL_RAY = """
import ray
from posray import ray_auth
ray_auth.for_local_ray("local")
ray.init(address="local", include_dashboard=False, num_cpus=1)
assert ray.cluster_resources()["CPU"] == 1
ray.shutdown()
"""


def test_a_local_ray_gets_a_private_token_and_the_home_stays_untouched(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0")
    run = subprocess.run([sys.executable, "-c", LOCAL_RAY], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert list(home.iterdir()) == [], "nothing written under ~ (no ~/.ray/auth_token)"


def test_every_job_that_may_start_a_local_ray_asks_for_its_own_token():
    for job in ("audit", "bench", "snapshot"):
        text = (ROOT / "jobs" / f"{job}.py").read_text()
        assert text.count("ray_auth.for_local_ray(") == text.count("ray.init(") == 1, job
