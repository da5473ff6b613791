"""`python -m jobs.bench` end to end on a small generated snapshot: the Ray job, single-process
Polars and DuckDB agree, and the times, chart and JSON are written. Needs Ray (a private local
instance started here), not Redis or PostgreSQL."""

from __future__ import annotations

import json
import os

import pytest

from jobs import bench as bench_job


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def bench_run(local_ray, tmp_path_factory):
    pytest.importorskip("duckdb")
    out = tmp_path_factory.mktemp("bench")
    argv = ["--out", str(out), "--documents", "20000", "--days", "14", "--merchants", "12", "--repeat", "1",
            "--tasks", "3"]
    status = bench_job.main(argv)
    return status, out, argv


class TestBenchJob:
    def test_the_three_engines_agree_on_every_fiscal_and_retail_result(self, bench_run):
        status, out, _ = bench_run
        report = json.loads((out / "bench.json").read_text())
        assert status == 0 and report["agree"] is True
        assert set(report["summary"]["engines"]) == {"ray", "polars", "duckdb"}

    def test_the_report_has_times_ratios_load_and_the_ray_partitions(self, bench_run):
        _, out, _ = bench_run
        report = json.loads((out / "bench.json").read_text())
        assert report["data"]["documents"]["rows"] > 15_000 and report["data"]["generated"]["reused"] is False
        assert report["ray"]["tasks"] == 3 and sum(report["ray"]["days_per_task"]) == 14
        assert report["summary"]["ray_over_best"] > 0 and len(report["machine"]["load_before"]) == 3
        assert all(len(r["fiscal"]) == 1 and len(r["retail"]) == 1 for r in report["runs"].values())
        assert (out / "bench.png").read_bytes().startswith(b"\x89PNG")

    def test_a_second_run_reuses_the_snapshot(self, bench_run):
        _, out, argv = bench_run
        assert bench_job.main(argv[:-2] + ["--engines", "ray,polars"]) == 0
        report = json.loads((out / "bench.json").read_text())
        assert report["data"]["generated"] == {"reused": True} and set(report["summary"]["engines"]) == {"ray", "polars"}
