"""The cluster launcher files: valid for Ray, and every `ray start` carries posray's environment."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from deployments.launcher import AUTH_ENV, INGRESS_ENV

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "cluster.yaml", ROOT / "docs" / "cluster-aws.yaml"]
# What every node needs before Ray starts (RAY-NOTES): the ingress, and token auth.
REQUIRED = {k: INGRESS_ENV[k] for k in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_THROUGHPUT_OPTIMIZED",
                                         "RAY_SERVE_HAPROXY_METRICS_ENABLED", "RAY_SERVE_HAPROXY_RETRY_ON")} | AUTH_ENV
DASHBOARD = ("RAY_GRAFANA_HOST", "RAY_PROMETHEUS_HOST")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def start_commands(config: dict, key: str) -> list[str]:
    commands = [c for c in config[key] if "ray start" in c]
    assert commands, f"no `ray start` in {key}"
    return commands


def environment_of(command: str) -> dict[str, str]:
    """The VAR=value assignments in front of the `ray start` of a shell command."""
    words = shlex.split(command.split("ray start")[0].split(";")[-1])
    return dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
class TestClusterFiles:
    def test_ray_accepts_the_file(self, path):
        from ray.autoscaler._private.util import prepare_config, validate_config

        validate_config(prepare_config(load(path)))

    @pytest.mark.parametrize("key", ["head_start_ray_commands", "worker_start_ray_commands"])
    def test_every_ray_start_carries_the_ingress_and_auth_variables(self, path, key):
        for command in start_commands(load(path), key):
            env = environment_of(command)
            assert {k: env.get(k) for k in REQUIRED} == REQUIRED, command

    def test_the_head_gets_the_grafana_and_prometheus_addresses(self, path):
        for command in start_commands(load(path), "head_start_ray_commands"):
            env = environment_of(command)
            assert all(env.get(k, "").startswith("http") for k in DASHBOARD), command

    def test_every_node_gets_the_ray_token_and_the_operator_seed(self, path):
        mounts = load(path)["file_mounts"]
        assert "~/.ray/auth_token" in mounts
        assert any(target.endswith("operator.seed") for target in mounts)


def test_the_on_premises_file_keeps_the_local_provider():
    assert load(FILES[0])["provider"]["type"] == "local"


def test_the_cloud_example_is_aws():
    assert load(FILES[1])["provider"]["type"] == "aws"


GUARD_FOLDER = "/opt/posray/haproxy"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_node_runs_serves_haproxy_through_the_guard(path):
    config = load(path)
    installs = [c for c in config["setup_commands"] if "deployments.haproxy_guard install" in c]
    assert installs and installs[0].split()[-1] == GUARD_FOLDER
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        for command in start_commands(config, key):
            assert environment_of(command)["RAY_SERVE_HAPROXY_BINARY_PATH"] == f"{GUARD_FOLDER}/haproxy"


def test_the_install_command_writes_an_executable_launcher_of_the_real_binary(tmp_path):
    import os
    import subprocess
    import sys

    folder = tmp_path / "guard"
    run = subprocess.run([sys.executable, "-m", "deployments.haproxy_guard", "install", str(folder),
                          "--real", "/usr/sbin/haproxy"], capture_output=True, text=True, cwd=ROOT, check=True)
    launcher = Path(run.stdout.strip())
    assert launcher == folder / "haproxy" and os.access(launcher, os.X_OK)
    assert (launcher.stat().st_mode & 0o777) == 0o700
    assert "'/usr/sbin/haproxy'" in launcher.read_text()
