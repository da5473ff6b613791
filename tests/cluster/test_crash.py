"""Kill -9 the actors in the middle of a stream of submissions: nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest
import ray

from actors.placement import ingest_name, ledger_name
from tooling.simulator import make_document

from tests.cluster.conftest import wait_until
from tests.cluster.test_end_to_end import ledger_rows, register

pytestmark = pytest.mark.cluster


def send_stream(base_url: str, docs: list[dict], acked: list[dict], stop_after_s: float = 120) -> list[int]:
    """Send documents in batches of 10, retrying each batch until every document is answered."""
    statuses: list[int] = []
    deadline = time.monotonic() + stop_after_s
    with httpx.Client(base_url=base_url, timeout=15) as http:
        for start in range(0, len(docs), 10):
            chunk = docs[start:start + 10]
            while time.monotonic() < deadline:
                try:
                    r = http.post("/v1/transactions/batch", json={"documents": chunk})
                except httpx.HTTPError:
                    statuses.append(-1)
                    time.sleep(0.2)
                    continue
                statuses.append(r.status_code)
                if r.status_code == 200:
                    results = r.json()["results"]
                    retry = [d for d, x in zip(chunk, results) if x["status"] != "accepted"]
                    acked.extend(x for x in results if x["status"] == "accepted")
                    assert all(x["status_code"] == 503 for x in results if x["status"] != "accepted")
                    if not retry:
                        break
                    chunk = retry
                time.sleep(0.2)
    return statuses


def kill_actor_process(name: str, namespace: str) -> int:
    actor = ray.get_actor(name, namespace=namespace)
    pid = ray.get(actor.pid.remote(), timeout=30)
    os.kill(pid, signal.SIGKILL)
    return pid


def assert_recorded_exactly_once(dsn: str, acked: list[dict], terminals: list[str]) -> None:
    distinct = {(a["shard"], a["seq"]) for a in acked}
    def recorded():
        rows = ledger_rows(dsn, "SELECT shard, seq FROM ledger_entries WHERE terminal_id = ANY($1::text[])", terminals)
        return [(r["shard"], r["seq"]) for r in rows]
    wait_until(lambda: len(recorded()) >= len(distinct), timeout_s=60)
    rows = recorded()
    assert len(rows) == len(set(rows)), "a document was recorded twice"
    assert set(rows) == distinct, "recorded documents differ from acknowledged ones"


@pytest.mark.parametrize("victim", ["ledger", "ingest"])
def test_killing_an_actor_mid_stream_loses_and_duplicates_nothing(victim, posray_cluster, operator_token):
    settings, base_url = posray_cluster
    with httpx.Client(base_url=base_url, timeout=30) as http:
        terminals = [register(http, operator_token, merchant=f"m-crash-{victim}") for _ in range(4)]
    docs = [make_document(tid, n, key) for n in range(1, 101) for tid, key in terminals]
    acked: list[dict] = []
    sender = threading.Thread(target=lambda: statuses.extend(send_stream(base_url, docs, acked)))
    statuses: list[int] = []
    sender.start()
    wait_until(lambda: len(acked) >= 100, timeout_s=60, interval_s=0.02)
    name = (ledger_name if victim == "ledger" else ingest_name)(settings.key_prefix, 0)
    acked_at_kill = len(acked)
    kill_actor_process(name, settings.ray_namespace)
    sender.join(timeout=180)
    print(f"killed {name} after {acked_at_kill} of {len(docs)} acks; HTTP statuses seen:",
          {s: statuses.count(s) for s in set(statuses)})
    assert acked_at_kill < len(docs), "the kill must happen mid-stream"
    assert not sender.is_alive()
    ids = {tid for tid, _ in terminals}
    assert len({(a["shard"], a["seq"]) for a in acked}) == len(docs), "every document is acknowledged"
    assert all(s in (200, 503, -1) for s in statuses), statuses
    assert_recorded_exactly_once(settings.pg_dsn, acked, sorted(ids))
    # The next test starts from a recovered cluster: every replica reaches the restarted actor.
    with httpx.Client(base_url=base_url, timeout=10) as http:
        assert wait_until(lambda: all(http.get("/readyz").status_code == 200 for _ in range(4)), timeout_s=60)
