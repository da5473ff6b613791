"""Operators' view: posray's series on the node's Prometheus endpoint, /healthz, /readyz, status."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from posray.services.status import gather_status
from tooling.simulator import make_document

from tests.cluster.conftest import wait_until
from tests.cluster.test_end_to_end import register

pytestmark = pytest.mark.cluster
SCRAPE_TIMEOUT_S = 60


def metrics_url() -> str:
    """The Prometheus endpoint of the node's metrics agent (where the dashboard's Prometheus scrapes)."""
    node = next(n for n in ray.nodes() if n["Alive"])
    return f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"


def scrape(url: str) -> list[tuple[str, dict, float]]:
    """(sample name, labels, value) of every posray sample exported by the node."""
    text = httpx.get(url, timeout=5).text
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            if family.name.startswith("ray_posray_") for s in family.samples]


def total(samples, name: str, **labels) -> float:
    """The sum over workers (and unnamed labels) of a sample's values."""
    return sum(v for n, got, v in samples if n == name and all(got.get(k) == w for k, w in labels.items()))


def shards_with(samples, name: str) -> set[str]:
    return {got["shard"] for n, got, _ in samples if n == name}


@pytest.fixture(scope="module")
def traffic(http, operator_token):
    """Accepted singles and a batch, plus rejections: bad MAC, invalid JSON, a counter conflict."""
    terminal_id, key = register(http, operator_token, merchant="m-metrics")
    for n in range(1, 6):
        assert http.post("/v1/transactions", json=make_document(terminal_id, n, key)).status_code == 200
    batch = [make_document(terminal_id, n, key) for n in range(6, 9)]
    assert http.post("/v1/transactions/batch", json={"documents": batch}).status_code == 200
    forged = dict(make_document(terminal_id, 20, key), mac="ab" * 32)
    assert http.post("/v1/transactions", json=forged).status_code == 401
    garbled = http.post("/v1/transactions", content=b"{not json", headers={"content-type": "application/json"})
    assert garbled.status_code == 400
    conflicting = make_document(terminal_id, 1, key, seed="different")
    assert http.post("/v1/transactions", json=conflicting).status_code == 409


@pytest.fixture(scope="module")
def http(posray_cluster):
    _, base_url = posray_cluster
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


class TestMetricsOnTheDashboard:
    def test_posray_series_reach_the_nodes_prometheus_endpoint_and_move(self, traffic, posray_cluster):
        settings, _ = posray_cluster
        url = metrics_url()
        every_shard = {str(s) for s in range(settings.shard_count)}

        def moved():
            samples = scrape(url)
            ready = (
                total(samples, "ray_posray_documents_accepted_total", endpoint="single") >= 5
                and total(samples, "ray_posray_documents_accepted_total", endpoint="batch") >= 3
                and total(samples, "ray_posray_documents_rejected_total", reason="unauthenticated") >= 1
                and total(samples, "ray_posray_documents_rejected_total", reason="invalid") >= 1
                and total(samples, "ray_posray_documents_rejected_total", reason="conflict") >= 1
                and total(samples, "ray_posray_ledger_batch_documents_count") > 0
                and shards_with(samples, "ray_posray_stream_backlog") == every_shard
                and shards_with(samples, "ray_posray_checkpoint_age_s") == every_shard
                and total(samples, "ray_posray_active_terminals") >= 1
            )
            return samples if ready else None

        samples = wait_until(moved, timeout_s=SCRAPE_TIMEOUT_S, interval_s=1)
        assert samples, f"posray series did not appear within {SCRAPE_TIMEOUT_S} s: " + repr(
            sorted({n for n, _, _ in scrape(url)}))
        assert total(samples, "ray_posray_ack_latency_ms_count", endpoint="single") >= 8
        assert total(samples, "ray_posray_ack_latency_ms_bucket", endpoint="single", le="+Inf") >= 8
        assert total(samples, "ray_posray_ingest_batch_documents_count") > 0
        assert total(samples, "ray_posray_ledger_lag_ms_count") > 0
        assert not any("terminal" in labels for _, labels, _ in samples), "terminal ids never label a series"


class TestHealth:
    def test_healthz_answers_alive(self, http):
        r = http.get("/healthz")
        assert (r.status_code, r.json()) == (200, {"status": "alive"})

    def test_readyz_answers_200_when_redis_postgres_and_the_ledger_are_fine(self, http):
        ready = wait_until(lambda: http.get("/readyz").status_code == 200, timeout_s=30, interval_s=0.5)
        r = http.get("/readyz")
        assert ready, r.text
        assert r.json() == {"status": "ready"}

    def test_readyz_is_cheap_enough_to_poll(self, http):
        started = time.perf_counter()
        for _ in range(20):
            http.get("/readyz")
        assert (time.perf_counter() - started) / 20 < 0.25


class TestStatus:
    def test_status_reports_lag_and_checkpoint_age_per_shard(self, traffic, posray_cluster):
        settings, _ = posray_cluster

        def settled():
            report = asyncio.run(gather_status(settings))
            rows = report["shards"].values()
            return report if all(r["backlog"] == 0 and r["checkpoint_age_s"] == 0 for r in rows) else None

        report = wait_until(settled, timeout_s=30, interval_s=0.5)
        assert report, asyncio.run(gather_status(settings))
        for row in report["shards"].values():
            assert row["ledger_lag_s"] == 0.0
            assert row["checkpointed"] == row["recorded"]
