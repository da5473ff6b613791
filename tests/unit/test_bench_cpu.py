"""CPU per document and role, and the scaling model built from it (no servers)."""

from __future__ import annotations

import subprocess
import sys
import time

from tooling.bench.cpu import per_document_us, scaling_model, snapshot


def test_cpu_of_a_process_tree_named_by_a_marker_is_counted_by_role():
    marker = f"posray-cpu-test-{time.monotonic_ns()}"
    burn = "import sys, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(5)"
    child = subprocess.Popen([sys.executable, "-c", burn, marker, "ray::IngestShard"])
    try:
        deadline = time.monotonic() + 20  # a busy machine may take a while to give it 0.3 s
        seen = {}
        while seen.get("ingest_shards", 0) < 0.29 and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = snapshot([marker], own_pid=-1)  # exclude no process: the child must count
        assert 0.29 <= seen["ingest_shards"] < 5
        assert snapshot([marker]) == {}  # this test's own children never count
    finally:
        child.kill()
        child.wait()


def test_per_document_time_is_the_difference_over_the_documents_and_never_negative():
    used = per_document_us({"redis": 1.0, "postgres": 5.0}, {"redis": 1.5, "postgres": 4.0, "haproxy": 0.1}, 1000)
    assert used == {"haproxy": 100.0, "postgres": 0.0, "redis": 500.0}
    assert per_document_us({}, {"redis": 1.0}, 0) == {}


def test_idle_usage_over_the_window_is_subtracted():
    used = per_document_us({"ray_system": 10.0, "redis": 0.0}, {"ray_system": 12.0, "redis": 0.5}, 1000,
                           idle_per_s={"ray_system": 0.1, "redis": 0.001}, window_s=20.0)
    assert used == {"ray_system": 0.0, "redis": 480.0}


def test_the_model_plans_single_threaded_roles_one_process_per_busy_core():
    model = scaling_model({"serve_replicas": 60, "ingest_shards": 30, "ledger_writers": 24, "redis": 6,
                           "postgres": 20}, {"peak": 70_000})["peak"]
    # 70k docs/s x 30 µs = 2.1 cores, at 60 % utilisation 3.5 cores: 4 actors.
    assert model["ingest_actors"] == 4 and model["cores_by_role"]["ingest_shards"] == 3.5
    assert model["redis_instances"] == 1  # 0.42 core / 0.6 = 0.7
    assert model["serve_replicas"] == 7 and model["total_cores"] == 16.3 and model["nodes_of_16_cores"] == 2
