"""`posray serve-config` + `serve deploy` alone bring up a complete posray on a running Ray.

A private Ray head (the environment `posray up` starts Ray with, own temp dir and ports) gets the
generated config through Ray's own CLI with token auth; the app builder creates the actors. Then a
terminal is registered, a sale is acknowledged and recorded. Only this Ray is stopped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from posray.adapters.keyfile import load_keys
from posray.adapters.pg import apply_schema
from posray import ray_auth
from tooling.embedded import free_port
from posray.settings import Settings
from tooling.simulator import make_document
from tests.cluster.conftest import wait_until
from tests.conftest import PG_ADMIN_DSN, _admin

pytestmark = pytest.mark.cluster
BIN = Path(sys.executable).parent


@pytest.fixture
def own_database(run_id):
    """A database of its own: this posray's shards must not meet the other cluster tests' ledger."""
    name = f"posray_{run_id}_deploy"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    asyncio.run(apply_schema(dsn))  # the owner's step; the app role may not create tables
    yield dsn
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def own_ray(tmp_path, monkeypatch):
    """A Ray head started as `posray up` starts it; stopped (only it) afterwards."""
    from deployments import launcher

    for name in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
        monkeypatch.setenv(name, str(free_port()))
    monkeypatch.setenv("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "1")
    settings = Settings(data_dir=tmp_path / "ray-state", dashboard_port=free_port())
    address = launcher.start_local_ray(settings)
    try:
        yield f"http://127.0.0.1:{settings.dashboard_port}"
    finally:
        launcher.stop_local_ray(settings, address)


def test_serve_deploy_of_the_generated_config_brings_up_a_working_posray(
    tmp_path, run_id, own_ray, own_database, private_redis, seed_file
):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSRAY_") and k != "RAY_AUTH_TOKEN"}
    env.update({
        # The token own_ray's head was started with (its data folder's), as the docs tell operators.
        "RAY_AUTH_TOKEN_PATH": str(ray_auth.token_path(tmp_path / "ray-state")),
        "POSRAY_REDIS_URL": private_redis.url, "POSRAY_PG_DSN": own_database,
        "POSRAY_OPERATOR_SEED_FILE": str(seed_file), "POSRAY_KEY_PREFIX": f"deploy{run_id}",
        "POSRAY_RAY_NAMESPACE": f"posray-deploy-{run_id}", "POSRAY_HTTP_PORT": str(port),
        "POSRAY_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "POSRAY_REPLICAS": "1",
        "POSRAY_SHARD_COUNT": "2", "POSRAY_INGEST_ACTORS": "1", "POSRAY_LEDGER_ACTORS": "1",
        "POSRAY_LEDGER_BATCH_WAIT_MS": "50", "RAY_AUTH_MODE": "token",
    })
    config = tmp_path / "posray.yaml"
    made = subprocess.run([str(BIN / "posray"), "--data-dir", str(tmp_path / "posray"), "serve-config",
                           "--out", str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert yaml.safe_load(config.read_text())["applications"][0]["import_path"] == "deployments.app:build"

    # The nodes' environment must not be what makes it work: the file alone carries the settings.
    bare = {k: v for k, v in env.items() if not k.startswith("POSRAY_")}
    deployed = subprocess.run([str(BIN / "serve"), "deploy", str(config), "--address", own_ray],
                              env=bare, capture_output=True, text=True, timeout=120)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-3000:]

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as http:
        def healthy():
            try:
                return http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False
        assert wait_until(healthy, timeout_s=120, interval_s=0.5), _serve_status(own_ray, bare)

        token = load_keys(seed_file).api_token
        r = http.post("/v1/admin/terminals", json={"terminal_id": "T-deploy-1", "merchant_id": "m-deploy"},
                      headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text
        key = bytes.fromhex(r.json()["key_hex"])
        sale = http.post("/v1/transactions", json=make_document("T-deploy-1", 1, key))
        assert sale.status_code == 200, sale.text
        code = sale.json()["code"]
        recorded = wait_until(lambda: http.get(f"/v1/receipts/{code}").json().get("status") == "recorded",
                              timeout_s=30, interval_s=0.2)
        assert recorded, http.get(f"/v1/receipts/{code}").text


def _serve_status(address: str, env: dict) -> str:
    out = subprocess.run([str(BIN / "serve"), "status", "--address", address], env=env,
                         capture_output=True, text=True, timeout=60)
    return out.stdout[-3000:] + out.stderr[-2000:]
