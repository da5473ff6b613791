"""Logical shards move to more or fewer actors; a terminal's shard, idempotency and order stay."""

from __future__ import annotations

import httpx
import pytest

from deployments import launcher
from posray.domain.transaction import shard_of
from tooling.simulator import make_document

from tests.cluster.test_crash import assert_recorded_exactly_once, send_stream
from tests.cluster.test_end_to_end import register

pytestmark = pytest.mark.cluster


def test_moving_shards_to_other_actors_keeps_codes_idempotency_and_sequence_order(posray_cluster, operator_token):
    settings, base_url = posray_cluster
    with httpx.Client(base_url=base_url, timeout=30) as http:
        terminals = [register(http, operator_token, merchant="m-rescale") for _ in range(8)]
    before = [make_document(tid, n, key) for n in range(1, 6) for tid, key in terminals]
    after = [make_document(tid, n, key) for n in range(6, 11) for tid, key in terminals]
    first: list[dict] = []
    send_stream(base_url, before, first)

    moved = launcher.rescale(settings, ingest_actors=3, ledger_actors=1)
    try:
        again: list[dict] = []
        send_stream(base_url, before, again)  # the same documents, resent after the move
        later: list[dict] = []
        send_stream(base_url, after, later)
    finally:
        launcher.rescale(moved, settings.ingest_actors, settings.ledger_actors)  # the other tests' layout

    assert [(a["code"], a["shard"], a["seq"]) for a in again] == [(a["code"], a["shard"], a["seq"]) for a in first]
    assert all(a["duplicate"] for a in again) and not any(a["duplicate"] for a in first + later)
    shards = {a["shard"] for a in first + later}
    assert shards == {shard_of(tid, settings.shard_count) for tid, _ in terminals}
    for shard in shards:  # sequences go on where they were: no reuse, the order of capture kept
        seqs_before = [a["seq"] for a in first if a["shard"] == shard]
        seqs_after = [a["seq"] for a in later if a["shard"] == shard]
        assert min(seqs_after) > max(seqs_before)
    assert_recorded_exactly_once(settings.pg_dsn, first + later, sorted(tid for tid, _ in terminals))
