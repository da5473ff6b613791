"""Faults under load: break one part of posray while terminals send, then check that no ack was lost."""

from __future__ import annotations

import asyncio
import time
from array import array
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tooling import faults_fencing as fencing
from tooling.faults_load import LoadProcess, Stream, resend, unacknowledged
from tooling.faults_stack import FaultStack

SAMPLE_INTERVAL_S = 0.5
LATE_LAG_MS_MIN = 2000


@dataclass(frozen=True)
class Scenario:
    """One fault: how to inject it, and (for an outage) how long it lasts and how it ends."""

    name: str
    title: str
    inject: Callable[[FaultStack], str]
    away_s: float = 0.0
    restore: Callable[[FaultStack], str] | None = None
    # The fault can destroy acknowledged documents (a store flushed, rewound, written behind its
    # back): each must then be reported lost (410), never resolve to another sale.
    may_lose: bool = False
    # An operator answers the conflict alarm: `posray capture release` (every second here).
    operator_releases: bool = False
    # The capture store the scenario needs: one Valkey ("single"), or a replicated set whose
    # acks wait for a replica's AOF ("replicated", WAITAOF) or do not ("replicated-async").
    stack: str = "single"


def _kill_actor(kind: str) -> Callable[[FaultStack], str]:
    def inject(stack: FaultStack) -> str:
        from tooling.harness import fault_targets

        label = "IngestShard" if kind == "ingest" else "LedgerWriter"
        return f"kill -9 {label} 0 (pid {fault_targets.kill_actor(stack.settings, kind, 0)})"
    return inject


def _kill_replica(stack: FaultStack) -> str:
    from tooling.harness import fault_targets

    return f"kill -9 Serve replica (pid {fault_targets.kill_replica()})"


def _kill_redis(stack: FaultStack) -> str:
    pid = stack.redis.info.pid
    stack.redis.kill()
    return f"kill -9 Valkey (pid {pid})"


def _start_redis(stack: FaultStack) -> str:
    return f"Valkey restarted from its AOF (pid {stack.redis.start().pid})"


def _stop_pg(stack: FaultStack) -> str:
    stack.pg.stop()
    return "PostgreSQL fast shutdown (pg_ctl stop -m fast)"


def _start_pg(stack: FaultStack) -> str:
    return f"PostgreSQL started (pid {stack.pg.start().pid})"


SCENARIOS = {
    "ingest-kill": Scenario("ingest-kill", "kill -9 IngestShard", _kill_actor("ingest")),
    "ledger-kill": Scenario("ledger-kill", "kill -9 LedgerWriter", _kill_actor("ledger")),
    "replica-kill": Scenario("replica-kill", "kill -9 Serve replica", _kill_replica),
    "redis-restart": Scenario("redis-restart", "kill -9 Redis, restart from AOF", _kill_redis, 5.0,
                              _start_redis),
    "pg-restart": Scenario("pg-restart", "stop + start PostgreSQL", _stop_pg, 10.0, _start_pg),
    "ledger-foreign": Scenario("ledger-foreign", "ledger written behind capture's back",
                               fencing.foreign_writer, may_lose=True, operator_releases=True),
    "redis-flush": Scenario("redis-flush", "FLUSHALL on the capture store, ledger behind",
                            fencing.flush_store, 2.0, fencing.start_pg, may_lose=True,
                            operator_releases=True),
    "redis-rewind": Scenario("redis-rewind", "capture store restored from an older AOF",
                             fencing.snapshot_aof, 3.0, fencing.restore_old_aof, may_lose=True,
                             operator_releases=True),
    "second-deployment": Scenario("second-deployment", "a second deployment's Redis on the same PostgreSQL",
                                  fencing.second_deployment),
    "forged-entry": Scenario("forged-entry", "forged stream entry at a recorded seq", fencing.forge_entry,
                             operator_releases=True),
}
SCENARIOS |= {
    "primary-kill": Scenario("primary-kill", "kill -9 the primary, replica promoted (WAITAOF)",
                             fencing.kill_lagging_primary, 5.0, fencing.restart_old_primary,
                             may_lose=True, operator_releases=True, stack="replicated"),
    "primary-kill-async": Scenario("primary-kill-async", "kill -9 the primary, replica promoted (no WAITAOF)",
                                   fencing.kill_lagging_primary, 5.0, fencing.restart_old_primary,
                                   may_lose=True, operator_releases=True, stack="replicated-async"),
}
STACKS = {"single": {}, "replicated": {"replicated": True, "capture_replicas_min": 1},
          "replicated-async": {"replicated": True, "capture_replicas_min": 0}}
FENCING = ("ledger-foreign", "redis-flush", "redis-rewind", "second-deployment", "forged-entry")


async def run_scenario(stack: FaultStack, scenario: Scenario, say=print) -> dict:
    """Load, inject the fault, keep loading, resend what was refused, drain, check exactly once."""
    o = stack.options
    await stack.wait_ready()
    await stack.wait_drained(o.drain_timeout_s)
    streams = stack.streams()
    first_doc = streams[0].builder.first_doc
    fences_before = await stack.fence_summary()
    load = LoadProcess(streams)
    start = await load.start()
    samples: list = []
    sampler = asyncio.ensure_future(_sample(stack, start, samples))
    releases: list = []
    operator = asyncio.ensure_future(_operator(stack, start, releases)) if scenario.operator_releases else None
    try:
        events = await _inject(stack, scenario, start, say)
        streams = await load.results(o.duration_s + o.timeout_s + 120)
    finally:
        sampler.cancel()
        load.close()
    unacked = unacknowledged(streams)
    say(f"  load done: {sum(len(s.acks[0]) for s in streams):,} acknowledged, {len(unacked):,} to resend")
    s = stack.settings
    retries = await resend(stack.series, s.http_host, s.http_port, unacked, o.timeout_s, say)
    unresolved = set(unacked) - {j for r in retries for j in r.acks[0]}
    drained_s = await stack.wait_drained(o.drain_timeout_s)
    if operator is not None:
        operator.cancel()
    acks = _merge_acks(streams + retries)
    recorded = await stack.check(first_doc, acks, unresolved)
    outcome = await stack.outcome(acks)
    say(f"  outcome: {outcome.as_dict()}")
    summary = summarize(scenario, streams, retries, samples, events, recorded, s.stream_backlog_max)
    summary.update(unresolved=len(unresolved), drained=drained_s is not None, first_doc=first_doc,
                   outcome=outcome.as_dict(), may_lose=scenario.may_lose,
                   released=sum(n for _, n in releases),
                   released_first_s=round(releases[0][0], 2) if releases else None,
                   fences=_delta(await stack.fence_summary(), fences_before),
                   second_deployment=stack.second_deployment, reconcile=await stack.reconcile())
    stack.second_deployment = None
    return summary


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


async def _operator(stack: FaultStack, start: float, releases: list) -> None:
    """The operator watching the conflict alarm: `posray capture release SHARD` within a second.

    Appends (seconds from the start, conflicts released) for every release that released any.
    """
    while True:
        try:
            released = await stack.release_conflicts()
            if released:
                releases.append((time.monotonic() - start, released))
        except Exception:  # PostgreSQL away (another fault): try again
            pass
        await asyncio.sleep(1.0)


async def _inject(stack: FaultStack, scenario: Scenario, start: float, say) -> dict:
    """At fault_at_s: inject; for an outage, restore after away_s. Times in s from the start."""
    await asyncio.sleep(max(0.0, start + stack.options.fault_at_s - time.monotonic()))
    events = {"fault_s": time.monotonic() - start, "fault_ms": int(time.time() * 1000)}
    events["fault"] = await asyncio.to_thread(scenario.inject, stack)
    say(f"  {events['fault_s']:5.1f}s  {events['fault']}")
    events["restored_s"], events["restored_ms"] = events["fault_s"], events["fault_ms"]
    if scenario.restore is not None:
        await asyncio.sleep(max(0.0, start + events["fault_s"] + scenario.away_s - time.monotonic()))
        events["restore"] = await asyncio.to_thread(scenario.restore, stack)
        events["restored_s"], events["restored_ms"] = time.monotonic() - start, int(time.time() * 1000)
        say(f"  {events['restored_s']:5.1f}s  {events['restore']}")
    return events


async def _sample(stack: FaultStack, start: float, samples: list) -> None:
    """Every SAMPLE_INTERVAL_S: (seconds from the start, per-shard stream lengths or None)."""
    while True:
        samples.append((time.monotonic() - start, await stack.backlogs()))
        await asyncio.sleep(SAMPLE_INTERVAL_S)


def _merge_acks(streams: list[Stream]) -> tuple[array, array, array]:
    merged = (array("q"), array("q"), array("q"))
    for stream in streams:
        for mine, theirs in zip(merged, stream.acks):
            mine.extend(theirs)
    return merged


def summarize(scenario: Scenario, streams, retries, samples, events, recorded, bound: int) -> dict:
    """One scenario's row: acknowledged vs recorded, errors seen, backlog, recovery times."""
    answers = _answers(streams)
    errors = _errors(streams, answers)
    sampled = [max(lengths) for _, lengths in samples if lengths is not None]
    ref_s = events["restored_s"]
    return {
        "scenario": scenario.name, "title": scenario.title, **events,
        "requests": int(answers["status"].size),
        "duration_s": round(max(st.result.elapsed_s for st in streams), 2),
        "acknowledged_in_load": int(sum(len(s.acks[0]) for s in streams)),
        "acknowledged_on_resend": int(sum(len(r.acks[0]) for r in retries)),
        "captured_despite_error": int(sum(r.doc_errors["duplicate"] for r in retries)),
        "resend_errors": dict(_errors(retries, _answers(retries))["counts"]) if retries else {},
        "exactly_once": {"passed": recorded.exactly_once, **recorded.counts, "examples": recorded.examples},
        "errors": errors["counts"],
        "error_bodies": _bodies(streams),
        "error_answer_ms_max": errors["wait_ms_max"],
        "ok_answer_ms_p99": _p99_ms(answers["wait"][answers["ok"]]),
        "backlog_shard_max": max(sampled, default=None), "backlog_shard_bound": bound,
        "backlog_unsampled_s": round(SAMPLE_INTERVAL_S * sum(1 for _, v in samples if v is None), 1),
        "ingest_recovered_s": _ingest_recovery(answers, events["fault_s"], ref_s),
        "requests_unsent": sum(st.result.unsent for st in streams),
        **_ledger_recovery(recorded, events["fault_ms"], events["restored_ms"]),
    }


def _answers(streams: list[Stream]) -> dict:
    """Per request of all streams: status, Retry-After, answer time, wait, full success."""
    cols = {k: [] for k in ("status", "retry_after", "answer", "wait", "ok")}
    for s in streams:
        r = s.result
        status = np.frombuffer(r.status, np.uint16) if r.status else np.zeros(0, np.uint16)
        due = np.frombuffer(r.due_s) if r.due_s else np.zeros(0)
        latency = np.frombuffer(r.latency_s) if r.latency_s else np.zeros(0)
        accepted = np.frombuffer(r.accepted, np.uint32) if r.accepted else np.zeros(0, np.uint32)
        cols["status"].append(status)
        cols["retry_after"].append(np.frombuffer(s.retry_after, np.uint8) if s.retry_after
                                   else np.zeros(0, np.uint8))
        cols["answer"].append(due + latency)
        cols["wait"].append(np.frombuffer(s.wait_s) if s.wait_s else np.zeros(0))
        cols["ok"].append((status == 200) & (accepted == s.builder.batch_size))
    return {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}


def _errors(streams: list[Stream], answers: dict) -> dict:
    """Error counts by kind (HTTP status, Retry-After, no answer, refused inside a batch)."""
    status, ra = answers["status"], answers["retry_after"].astype(bool)
    counts = {"503 + Retry-After": int(((status == 503) & ra).sum()),
              "503 without Retry-After": int(((status == 503) & ~ra).sum())}
    for code in sorted(set(status[(status != 200) & (status != 503) & (status != 0)].tolist())):
        counts[f"HTTP {code}"] = int((status == code).sum())
    for s in streams:
        for kind, n in s.result.errors.items():
            if not kind.startswith("http_"):
                counts[kind] = counts.get(kind, 0) + n
        for kind, n in s.batch_rejects.items():
            counts[kind] = counts.get(kind, 0) + n
    answered_errors = answers["wait"][(status != 200) & (status != 0)]
    wait_max = round(float(answered_errors.max()) * 1000, 1) if answered_errors.size else None
    return {"counts": {k: v for k, v in counts.items() if v}, "wait_ms_max": wait_max}


def _bodies(streams: list[Stream]) -> dict:
    """{"HTTP 503": {reason: count}, "in-batch 503": {...}, "HTTP 500": {body start: count}}."""
    out: dict = {}
    for s in streams:
        for (status, body), n in s.error_bodies.items():
            kind = out.setdefault(status if isinstance(status, str) else f"HTTP {status}", {})
            kind[body] = kind.get(body, 0) + n
    return out


def _p99_ms(values: np.ndarray) -> float | None:
    return round(float(np.percentile(values, 99)) * 1000, 1) if values.size else None


def _ingest_recovery(answers: dict, fault_s: float, ref_s: float) -> float | None:
    """From `ref_s` to the first full success sent after the last failed request (None: none failed)."""
    sent = answers["answer"] - answers["wait"]
    failed = ~answers["ok"] & (answers["answer"] >= fault_s)
    if not failed.any():
        return None
    last_failed_sent = sent[failed].max()
    later = answers["ok"] & (sent > last_failed_sent)
    if not later.any():
        return float("nan")
    return round(max(0.0, float(answers["answer"][later].min()) - ref_s), 2)


def _ledger_recovery(recorded, fault_ms: int, ref_ms: int) -> dict:
    """From `ref_ms` until the last late document was recorded (None: none late).

    Late: recorded more than max(2 s, 5 × the median lag before the fault) after its acknowledgement.
    """
    accepted, lag = recorded.accepted_ms, recorded.lag_ms
    before = lag[accepted < fault_ms]
    threshold = max(LATE_LAG_MS_MIN, 5 * float(np.median(before)) if before.size else 0)
    late = lag > threshold
    after = lag[accepted >= fault_ms - 60_000]
    out = {"ledger_late_threshold_ms": round(threshold),
           "ledger_lag_ms_max": int(after.max()) if after.size else None,
           "ledger_lag_ms_median_before": float(np.median(before)) if before.size else None}
    caught_up = float((accepted[late] + lag[late]).max() - ref_ms) / 1000 if late.any() else None
    return {"ledger_caught_up_s": None if caught_up is None else round(max(0.0, caught_up), 2), **out}
