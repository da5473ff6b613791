"""`posray bench` against the real cluster: short runs, single documents then batches."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tooling.bench.cli import BenchOptions, run_bench
from tests.cluster.conftest import wait_until

pytestmark = pytest.mark.cluster


def bench(settings, base_url, tmp_path, **changes) -> dict:
    options = BenchOptions(terminals=200, documents=20_000, connections=8, duration_s=2.0,
                           out_dir=tmp_path / "out", url=base_url, cache_dir=tmp_path / "cache",
                           drain_timeout_s=60, **changes)
    return asyncio.run(run_bench(settings, options, say=lambda line: None))


def test_short_runs_are_recorded_exactly_once_and_a_rerun_sends_no_document_twice(posray_cluster, tmp_path):
    settings, base_url = posray_cluster
    single = bench(settings, base_url, tmp_path, batch_size=1)
    batched = bench(settings, base_url, tmp_path, batch_size=10)

    for report in (single, batched):
        result = report["result"]
        assert result["documents_accepted"] > 0
        assert result["errors_total"] == 0, result["errors"]
        assert report["exactly_once"]["passed"], report["exactly_once"]
        assert report["exactly_once"]["acknowledged"] == result["documents_accepted"]
        assert report["ledger"]["drained"]
        assert result["latency_ms"]["p50"] > 0
        saved = json.loads(open(report["files"]["json"]).read())
        assert saved["result"] == result and saved["timeline"]
        with open(report["files"]["png"], "rb") as png:
            assert png.read(8) == b"\x89PNG\r\n\x1a\n"

    # The second run reused the cached series and its terminals, starting after the first run.
    assert single["context"]["terminals_imported_s"] is not None
    assert batched["context"]["terminals_imported_s"] is None and batched["context"]["signed_s"] is None
    assert batched["context"]["series"] == single["context"]["series"]
    assert batched["context"]["first_document"] == single["context"]["documents_sent_to"]
    assert batched["result"]["requests_per_s"] * 10 == pytest.approx(batched["result"]["accepted_docs_per_s"], rel=0.01)


def test_the_noop_serve_baseline_runs_beside_posray_and_is_removed_afterwards(posray_cluster, tmp_path):
    settings, base_url = posray_cluster

    report = bench(settings, base_url, tmp_path, batch_size=1, baselines=("noop",))

    noop = report["baselines"]["noop_serve"]
    assert "error" not in noop, noop
    assert noop["docs_per_s"] > 0 and noop["errors_total"] == 0, noop
    assert noop["route"] == "/noop/v1/transactions" and noop["latency_ms"]["p50"] > 0
    assert noop["ratio"] == pytest.approx(report["result"]["accepted_docs_per_s"] / noop["docs_per_s"], rel=1e-3)
    with open(report["files"]["baselines_png"], "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    # Deleted: /noop/... now falls through to posray's own app, which knows no such route.
    gone = wait_until(lambda: httpx.post(f"{base_url}/noop/healthz", timeout=10).status_code == 404)
    assert gone
