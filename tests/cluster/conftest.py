"""End-to-end fixtures: a private Ray cluster running posray behind Serve's HAProxy ingress.

Real everything: Ray started for this run (with the same ingress environment `posray up`
uses), a private Valkey with AOF and appendfsync always, the system PostgreSQL with a fresh
database, and HTTP over loopback.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from posray.adapters.keyfile import load_keys
from tooling.embedded import ChildRedis, free_port
from posray.settings import Settings

from tests.conftest import private_database


@pytest.fixture(scope="session")
def cluster_pg_dsn(run_id):
    with private_database(f"posray_{run_id}_e2e") as dsn:
        yield dsn


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory):
    with ChildRedis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def posray_cluster(tmp_path_factory, run_id, cluster_pg_dsn, private_redis, seed_file):
    """Start Ray + the actors + the Serve app once per run; yield (settings, base_url)."""
    from deployments import launcher

    os.environ.update(launcher.INGRESS_ENV)
    os.environ.update(launcher.AUTH_ENV)
    # Private HAProxy files and stats/metrics ports: a `posray up` on this machine may hold the defaults.
    os.environ.update(launcher.haproxy_env(f"t{run_id}"))
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    # Throughput-optimized Serve buffers 1,000 replica log records before writing them; write
    # each at once, so that test_secrets reads everything the replicas logged.
    os.environ["RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE"] = "1"
    import ray
    from ray import serve

    port = free_port()
    settings = Settings(
        redis_url=private_redis.url,
        pg_dsn=cluster_pg_dsn,
        data_dir=tmp_path_factory.mktemp("posray"),
        operator_seed_file=seed_file,
        key_prefix=f"e2e{run_id}",
        ray_namespace=f"posray-{run_id}",
        http_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        replicas=1,
        shard_count=4,
        ingest_actors=2,
        ledger_actors=2,
        ledger_batch_wait_ms=100,
        revocation_poll_s=0.5,
        # Public lookups: generous for the other tests, small enough for test_public_limits to trip.
        public_rate_per_s=50.0,
        public_burst=100,
    )
    launcher.use_own_token(settings)  # the run's own token file, as `posray up` makes, not ~/.ray's
    ray.init(address="local", namespace=settings.ray_namespace, include_dashboard=False,
             log_to_driver=False, num_cpus=2)
    try:
        launcher.deploy(settings)
        yield settings, settings.public_base_url
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def operator_token(seed_file) -> str:
    return load_keys(seed_file).api_token


@pytest.fixture
def http(posray_cluster):
    _, base_url = posray_cluster
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


def wait_until(predicate, timeout_s: float = 30, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)
