"""A real multi-node Ray cluster (head + 2 workers, one network namespace each) under load:
a worker's link cut for 10 s, then the same worker killed outright. See tests/cluster/multinode.py.

    sudo .venv/bin/python -m tests.cluster.test_multinode [--json results.json]
    sudo .venv/bin/python -m pytest tests/cluster/test_multinode.py -s

Needs root and iproute2 (skipped otherwise). It takes about 2.5 minutes on a quiet 2-core
machine, 3-7 when other heavy work shares it; POSRAY_TEST_MULTINODE=0 leaves it out of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import pytest

from tests.cluster import multinode
from tests.cluster.netns import unavailable_reason

pytestmark = pytest.mark.cluster
ENABLE_FLAG = "POSRAY_TEST_MULTINODE"


def check(results: dict) -> None:
    """The assertions of the issue, on a finished run's results."""
    placed = results["placement_after_deploy"]
    on_workers = {name for name, node in placed.items() if node.startswith("worker")}
    assert on_workers, f"SPREAD placed no posray actor on a worker: {placed}"
    for name, phase in results["phases"].items():
        assert "gave_up_waiting_at_s" not in phase["fault"], (name, "no recovery in time", phase["fault"])
        check_ = phase["exactly_once"]
        assert check_["drained"], f"{name}: the ledger did not drain"
        assert check_["passed"], f"{name}: exactly-once failed: {check_}"
        assert check_["acknowledged"] == check_["recorded"] == phase["documents_sent"], (name, check_)
        assert phase["resend"]["unacknowledged_at_end"] == 0, (name, phase["resend"])
        # Terminals get an answer (success or 503 + Retry-After), never a hang past their timeout.
        assert phase["requests_timed_out"] == 0, (name, phase["errors_by_kind"], phase["probes"])
        assert phase["probe_503_without_retry_after"] == 0, (name, phase["probes"])
        answers = {kind for kind in list(phase["errors_by_kind"]) + list(phase["probes"])}
        allowed = {"accepted", "http_503", "doc_503"}
        if name == "node_loss" and phase["fault"]["replicas_on_node"]:
            # A Serve replica died with the node: requests in flight on it end with a closed
            # connection, and Serve answers 500 while it has not yet noticed the dead replica
            # (ray-project/ray#47219). Outcome unknown either way; the resend above settles it.
            allowed |= {"disconnected", "http_500"}
        assert answers <= allowed, (name, answers)
    kill = results["phases"]["node_loss"]["fault"]
    assert kill["actors_on_node"], f"the killed worker held no posray actor: {placed}"
    assert kill.get("node_declared_dead_s") is not None, kill
    assert kill.get("actors_all_answering_s") is not None, f"actors did not come back: {kill}"
    survivors = set(multinode.NODES) - {kill["node"]}
    assert set(kill["placement_after"].values()) <= survivors, kill
    assert results["overall"]["passed"], results["overall"]


@pytest.mark.timeout(900)
def test_a_partitioned_then_a_killed_worker_lose_and_duplicate_nothing():
    if os.environ.get(ENABLE_FLAG) == "0":
        pytest.skip(f"multi-node test left out ({ENABLE_FLAG}=0)")
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    results = multinode.MultiNodeRun().run()
    print("\n" + multinode.table(results))
    check(results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason:
        print(f"skipped: {reason}", file=sys.stderr)
        return 2
    results = multinode.MultiNodeRun().run()
    print()
    print(multinode.table(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1, default=str)
    try:
        check(results)
    except AssertionError as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        return 1
    print("\nPASSED")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    sys.exit(main())
