"""`posray faults`: run the fault scenarios against a private stack and write docs/reliability.md."""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import json
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from posray import ray_auth
from tooling.faults import SCENARIOS, STACKS, run_scenario
from tooling.faults_stack import FaultStack, FaultOptions

EXPLAIN = {
    "ingest-kill": (
        "The IngestShard owning half of the shards dies mid-call. Its pending calls fail with "
        "RayActorError, which the replica turns into 503 + Retry-After (`Unavailable`, "
        "deployments/ingress.py); Ray restarts the actor (`max_restarts=-1`) and its constructor "
        "re-reads the shard heads. A batch the actor had already appended to Redis before dying was "
        "durable (AOF `appendfsync always`) but never acknowledged: the terminal resends it and gets "
        "the same code back (`duplicate: true`, idempotency key (terminal, counter)), so nothing is "
        "captured twice."),
    "ledger-kill": (
        "The LedgerWriter dies between XREADGROUP and XACK. Terminals see nothing: capture does not "
        "involve it. Ray restarts the actor; its recorders resync from PostgreSQL's chain head and "
        "the consumer group redelivers the pending entries; the ledger write is idempotent, keyed "
        "by (shard, seq), so a batch that was committed but not XACKed is skipped, not written twice."),
    "replica-kill": (
        "One of the two Serve replicas dies. Requests in flight on it are lost (the terminal gets "
        "no answer or an error and resends; resends are idempotent). HAProxy and the Serve "
        "controller route around it and the controller starts a replacement replica "
        "(health check every 5 s)."),
    "redis-restart": (
        "Valkey is killed with SIGKILL and restarted on the same port from its AOF. While it is "
        "away every capture fails fast with a connection error and terminals get 503 + Retry-After. "
        "Every acknowledged document was fsynced before its ack (`appendfsync always`), so the "
        "restarted server holds all of them, with the streams, the consumer groups' pending lists "
        "and the idempotency keys; the LedgerWriters reconnect with back-off and resume."),
    "pg-restart": (
        "PostgreSQL is stopped with a fast shutdown and started again. Capture does not need it: "
        "terminals keep getting codes while the LedgerWriters fail, back off and leave entries "
        "pending. The streams grow until a shard's bound (`POSRAY_STREAM_BACKLOG_MAX`), then "
        "capture answers 503 + Retry-After (`Overloaded`) instead of growing further. When "
        "PostgreSQL is back the writers resync and drain the backlog; redelivered batches are "
        "absorbed by the (shard, seq) key."),
    "ledger-foreign": (
        "A writer that does not know the capture store (a history generator, another deployment's "
        "writer) appends 40 chained rows to shard 0's ledger at the next sequences, which the capture "
        "store has already handed out or will hand out under its reservation. The shard's recorder "
        "finds captured entries at recorded places holding other documents: it writes them to "
        "`capture_conflicts`, removes the store's fence and stops the shard (`LedgerConflict`: "
        "metric `posray_ledger_conflicts`, `/readyz` 503). The next capture call of the shard finds "
        "no fence, and the IngestShard fences it again above the ledger's new height. The "
        "acknowledged documents that collided are answered 410 (lost, with the time they were "
        "acknowledged); the operator releases the conflicts (`posray capture release 0`) and the "
        "shard records again."),
    "redis-flush": (
        "PostgreSQL is stopped, so the ledger falls behind while capture goes on within its "
        "reservation; 3 s later FLUSHALL on the capture store: streams, counters, fences, consumer "
        "groups and idempotency keys are gone, with every acknowledged document not yet recorded, "
        "and PostgreSQL comes back 2 s later. The next capture call meets no fence (`NotFenced`, 503 + "
        "Retry-After); the IngestShard fences the shard again from the ledger's height and records "
        "in `capture_fences` the sequences it had acknowledged above that height (exactly: it "
        "remembers what it handed out). Those documents are answered 410; new documents may reuse "
        "their sequences, and their codes differ (a code binds the document's hash), so an old code "
        "never resolves to a new sale."),
    "redis-rewind": (
        "The capture store's AOF is copied (as a backup would), the store keeps capturing for 3 s, "
        "then it is killed and restarted from the copy: every entry, counter step and idempotency "
        "key of those 3 s is gone, while the fence key it carries is still valid. The restarted "
        "store has lost its Lua scripts (NOSCRIPT), which the IngestShard treats as a failover: it "
        "fences the shard again; the sequences it had acknowledged above the store's and the "
        "ledger's height are recorded lost and answered 410. Had the store carried the same fence "
        "and scripts, the first reissued sequence would be caught by the IngestShard's record of "
        "what it handed out (not acknowledged; re-fenced)."),
    "second-deployment": (
        "A second posray deployment with its own capture store is pointed at this PostgreSQL and "
        "tries to capture. Its IngestShard cannot fence any shard: the ledger's latest fence names "
        "the first deployment's store (`StoreMismatch`), so every capture call answers 503 and "
        "nothing it received gets a code. The first deployment does not notice. (If the store "
        "really moved, `posray capture rebind` hands the shards over, with a new epoch.)"),
    "primary-kill": (
        "Capture runs on a replicated set (a primary, 2 replicas, 3 sentinels; AOF with "
        "`appendfsync always` on every node) and each capture call waits for one replica's AOF "
        "(`POSRAY_CAPTURE_REPLICAS=1`: WAIT + WAITAOF pipelined with the script). PostgreSQL is "
        "stopped (so the ledger cannot take what capture acknowledges), the replicas are paused "
        "(SIGSTOP) and their links cut (`CLIENT KILL TYPE replica`) for 2 s, so they fall behind; then the primary is killed with SIGKILL, the "
        "replicas resume and the sentinels promote one; 5 s later PostgreSQL and the old primary "
        "(now a replica) come back. While the replicas lag, no call can be "
        "acknowledged (503 + Retry-After: \"captured but not replicated\"); the terminals resend. "
        "The IngestShards follow the sentinels to the new primary, whose missing scripts "
        "(NOSCRIPT) make them fence every shard again under the same store id "
        "(`sentinel:<master>#<prefix>`). Every acknowledged sale was on a replica's disk: none lost."),
    "primary-kill-async": (
        "The same fault without WAITAOF (`POSRAY_CAPTURE_REPLICAS=0`, Redis' asynchronous "
        "replication): for the 2 s the replicas lag (and the ledger is stopped), the primary keeps "
        "acknowledging what only its own AOF holds, and the promoted replica never received it. The IngestShards re-fence every "
        "shard on the new primary and record, exactly, the sequences they had acknowledged above "
        "what it holds; those sales are answered 410. Lost, and said so; never aliased."),
    "forged-entry": (
        "Someone with write access to the capture store appends to shard 0's stream an entry that "
        "carries an already-recorded sequence and another document. The recorder compares it with "
        "the ledger, finds a different document, stops the shard (conflict), removes the store's "
        "fence (capture re-fences above the ledger) and alarms; nothing acknowledged is lost. After "
        "the release the forged entry is acknowledged as lost and never recorded."),
}


def add_parser(subparsers) -> None:
    """Register `posray faults` on the `posray` parser."""
    p = subparsers.add_parser("faults", help="inject faults under load, check exactly-once, write a report",
                              description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    p.add_argument("--duration-s", type=float, default=30.0, help="load per scenario (default 30)")
    p.add_argument("--fault-at-s", type=float, default=5.0, help="inject the fault this far in (default 5)")
    p.add_argument("--rate", type=float, default=300.0, help="documents per second (default 300)")
    p.add_argument("--replicas", type=int, default=2, help="Serve replicas (default 2)")
    p.add_argument("--no-pg-fsync", dest="pg_fsync", action="store_false",
                   help="PostgreSQL without fsync: faster start, for throwaway test runs only")
    p.add_argument("--out", type=Path, default=Path("docs/reliability.md"), help="the Markdown report")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.set_defaults(func=cmd_faults)


def cmd_faults(args) -> int:
    """0 when every scenario kept exactly-once and every error was a 503 with Retry-After."""
    ray_auth.require_token_auth()
    options = FaultOptions(duration_s=args.duration_s, fault_at_s=args.fault_at_s, rate=args.rate,
                           replicas=args.replicas, pg_fsync=args.pg_fsync)
    command = "posray faults " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["faults"] else [])
    results = run_faults(args.scenarios, options)
    report = render(results, options, command.strip())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.out}")
    return 0 if all(passed(r) for r in results) else 1


def run_faults(names: list[str], options: FaultOptions, say=print) -> list[dict]:
    """Run the named scenarios one after another, on one private stack per kind of capture store
    they need (one Valkey; a replicated set with or without WAITAOF); results in `names` order."""
    results: dict[str, dict] = {}
    groups = [(kind, [n for n in names if SCENARIOS[n].stack == kind]) for kind in STACKS]
    groups = [(kind, group) for kind, group in groups if group]
    for kind, group in groups:
        group_options = dataclasses.replace(options, **STACKS[kind])
        if len(groups) == 1:
            results.update(zip(group, _run_group(group, group_options, say)))
            continue
        # Ray starts once per process: each stack gets a process of its own.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.update(zip(group, pool.submit(_run_group, group, group_options).result()))
    return [results[n] for n in names]


def _run_group(names: list[str], options: FaultOptions, say=print) -> list[dict]:
    """Start a private stack, run the named scenarios one after another, stop the stack."""
    stack = FaultStack(options)
    try:
        stack.start(len(names), say)
        return asyncio.run(_run_all(stack, names, say))
    finally:
        stack.close()


async def _run_all(stack: FaultStack, names: list[str], say) -> list[dict]:
    results = []
    try:
        for name in names:
            say(f"scenario {name}: {SCENARIOS[name].title}")
            started = time.monotonic()
            result = await run_scenario(stack, SCENARIOS[name], say)
            result["scenario_s"] = round(time.monotonic() - started, 1)
            say(f"  {row(result)}  ({result['scenario_s']} s)")
            results.append(result)
    finally:
        await stack.aclose()
    return results


RETRY_LATER = {"503 + Retry-After", "in-batch 503 + retry_after_s"}


def passed(result: dict) -> bool:
    """Every acknowledged sale recorded as sent or (where the fault destroys data) reported lost;
    none aliased, none recorded twice; every error the terminals saw a 503 with Retry-After."""
    e, o = result["exactly_once"], result["outcome"]
    clean = not result["unresolved"] and set(result["errors"]) <= RETRY_LATER and o["kept"]
    if result.get("may_lose"):
        return clean and e["recorded_twice"] == e["acknowledged_twice"] == e["unexpected"] == 0
    return clean and e["passed"] and o["lost_reported"] == 0


HEADER = ("| scenario | acknowledged | recorded as sent | lost, reported (410) | aliased "
          "| silently missing | duplicates | errors seen by terminals "
          "| slowest error answer | stream backlog max / bound (per shard) | ingest recovered "
          "| ledger caught up | result |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")


def row(r: dict) -> str:
    """One Markdown table row of a scenario's result."""
    e, o = r["exactly_once"], r["outcome"]
    errors = ", ".join(f"{v:,} {k}" for k, v in r["errors"].items()) or "none"
    slowest = f"{r['error_answer_ms_max']:,.0f} ms" if r["error_answer_ms_max"] is not None else "–"
    dup = e["recorded_twice"] + e["acknowledged_twice"]
    kept = o["kept"] and not dup and not r["unresolved"]
    verdict = "pass" if passed(r) else ("every sale kept; errors other than 503 + Retry-After"
                                        if kept else "**FAIL**")
    silent = o["missing_silently"] + o["pending"] + o["lookup_failed"]
    return (f"| {r['title']} | {o['acknowledged']:,} | {o['recorded_as_sent']:,} | {o['lost_reported']:,} "
            f"| {o['aliased']} | {silent} | {dup} "
            f"| {errors} | {slowest} | {r['backlog_shard_max']} / {r['backlog_shard_bound']} "
            f"| {_secs(r['ingest_recovered_s'])} | {_secs(r['ledger_caught_up_s'])} | {verdict} |")


def _secs(value: float | None) -> str:
    if value is None:
        return "no interruption"
    return "not within the run" if value != value else f"{value:.1f} s"  # NaN: never recovered


def render(results: list[dict], options: FaultOptions, command: str) -> str:
    """docs/reliability.md: machine, command, date, the table, then what happened in each scenario."""
    lines = ["# Reliability: faults under load", "",
             f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M %Z')}.", "",
             "Faults of whole nodes on a multi-node Ray cluster (a worker's link cut, a worker killed) "
             "are in [reliability-multinode.md](reliability-multinode.md) "
             "(`python -m tests.cluster.test_multinode`).", "",
             f"Machine: {_machine()}.", "", _method(options), "", HEADER]
    lines += [row(r) for r in results]
    lines += _findings(results)
    lines += ["", FENCING_SECTION]
    lines += ["", "## What happens inside", ""]
    for r in results:
        lines += [f"### {r['title']}", "", EXPLAIN[r["scenario"]], "", _details(r), ""]
    return "\n".join(lines)


FENCING_SECTION = """## Fencing capture against the ledger

A receipt code is a promise: once the ledger has caught up, it resolves to exactly the document
that was acknowledged, or posray says the document was lost. Three mechanisms keep it, whatever
happens to the capture store (Redis/Valkey) or to the ledger behind its back:

1. **Codes bound to content.** A code's keyed tag covers the document's SHA-256 as well as
   (shard, seq) (docs/protocol.md, "Receipt codes"). A code whose place holds another document
   does not resolve to it: lookups, `/r/{code}`, `posray verify-receipt` and `posray audit` all
   recompute the binding from the recorded bytes.
2. **Fences.** Before a store may capture a shard, the IngestShard sets a fence in PostgreSQL
   (`capture_fences`: a new epoch, a floor at or above everything the ledger holds and the store
   handed out, a reservation of the next sequences) and installs it in the store. The capture
   script checks the epoch and the reservation on every call; a store that was flushed, restored
   from an older copy, restarted without its scripts, failed over or fenced by another writer
   refuses (`NotFenced`, 503 + Retry-After) until it is fenced again. Re-fencing compares what the
   store holds with what the ledger and the IngestShard know, and records in `capture_fences`
   the acknowledged sequences the store lost: exactly, when the IngestShard still knows what it
   handed out, else up to the store's last reservation. Lookups of codes in a lost range answer
   **410** ("acknowledged and then lost"); metric `posray_capture_lost_sequences`. A second
   deployment's store on the same ledger cannot fence at all (`posray capture rebind` moves the
   shards deliberately).
3. **The ledger never drops silently.** A LedgerWriter that meets a captured entry at a recorded
   place compares the documents: the same document is a redelivery (acknowledged, exactly once);
   another one is a conflict. The shard's recording stops (metric `posray_ledger_conflicts`,
   `/readyz` 503, `posray status`), the entry is kept in `capture_conflicts` (its code answers
   410), the store's fence is removed so capture re-fences above the ledger, and recording
   resumes when an operator releases it (`posray capture release SHARD`, after
   `posray audit --reconcile`; runbook in docs/operations.md).
4. **Resends stay idempotent when the keys are gone.** A store that lost data also lost the
   idempotency keys (terminal, counter) of documents it captured. The fence that finds the loss
   says so (`capture_fences.keys_lost`); for the keys' lifetime after it, capture asks the ledger
   about every document issued before the loss (one indexed query per call, only for those: a
   sale issued later cannot have been captured before): a recorded one gets its first answer
   again (same code, `duplicate: true`), another document under a recorded counter gets 409, and
   an acknowledged one that was lost is captured again. One race is left: a document the
   LedgerWriter had read from the store before the loss and commits after the resend's check is
   recorded a second time; `posray audit --reconcile` lists such counters (it reads the entries
   recorded since the fence that found the keys gone).

The table above measures it: in every row *aliased* is 0 and every acknowledged sale is either
recorded as sent or answered 410. *Recorded as sent*: the ledger holds, at the code's place, a
record of the very bytes sent and the code recomputed from it is the code the terminal printed.
*Lost, reported*: `GET /v1/receipts/{code}` answered 410. *Aliased*: it answered 200 with another
document. *Silently missing*: 404 (or still not recorded when checked). In the scenarios that
stop a shard, the operator's `posray capture release` is simulated by releasing every second.
"""

FINDINGS = {
    "disconnected": (
        "the connection closed with the request in flight: the replica answering it died and "
        "Serve's HAProxy does not replay a request it already sent (`retry-on conn-failure` only). "
        "The terminal cannot know whether its documents were captured, so it resends them; "
        "idempotency answers with the same code when they were (*captured before the error* below)."),
    "timeout": "no answer within the client timeout: a hang, which posray promises not to have.",
    "HTTP 500": (
        "not posray's handler (its 500 body is JSON `{\"error\":\"internal\"...}`, never sent for a "
        "backing service) but Serve's HAProxy: its generated config maps its own 502/503/504 to "
        "`errorfile ... 500.http` (\"Normalize 502/503/504 to 500 per Serve's default behavior\"), "
        "so a request HAProxy sent to the killed replica, or could not place before the replica was "
        "marked down, comes back as a plain-text 500 without Retry-After: the HAProxy form of "
        "ray-project/ray#47219."),
}
REMEDY = (
    "Every posray POST is idempotent (the same document returns the same code), so HAProxy may "
    "replay it on the other replica: posray starts Ray with `RAY_SERVE_HAPROXY_RETRY_ON="
    "\"conn-failure empty-response\"` (deployments/launcher.py INGRESS_ENV, cluster.yaml); the "
    "line above the table says which value this run had. HAProxy replays only requests that fit "
    "its buffer (tune.bufsize 16 KB: single documents and small batches); larger batches still "
    "need the terminal's resend.")


def _findings(results: list[dict]) -> list[str]:
    """Every error other than 503 + Retry-After, once per kind, with what it means."""
    seen: dict[str, list[str]] = {}
    for r in results:
        for kind in r["errors"]:
            if kind not in RETRY_LATER:
                seen.setdefault(kind, []).append(f"{r['title']} ({r['errors'][kind]:,})")
    if not seen:
        return ["", "Every error a terminal saw was a 503 with Retry-After (in a batch answer: a "
                "document refused with status 503 and `retry_after_s`)."]
    lines = ["", "Errors other than 503 with Retry-After:", ""]
    for kind, where in seen.items():
        meaning = FINDINGS.get(kind) or FINDINGS.get("HTTP 500" if kind.startswith("HTTP 5") else "", "")
        bodies = "; ".join(f"{n:,} × `{body.strip()}`" for r in results
                           for body, n in r.get("error_bodies", {}).get(kind, {}).items())
        lines.append(f"- **{kind}** in {', '.join(where)}: {meaning or 'unexpected.'}"
                     + (f" Bodies: {bodies}." if bodies else ""))
    if set(seen) & {"disconnected", "HTTP 500", "HTTP 502", "HTTP 504"}:
        lines += ["", REMEDY]
    return lines


def _machine() -> str:
    from importlib.metadata import version

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, Ray {version('ray')}; load average {load} at the end")


def _method(o: FaultOptions) -> str:
    return (
        f"Each scenario starts from a drained ledger and runs the bench load generator in open loop for "
        f"{o.duration_s:g} s at {o.rate:g} documents/s ({1 - o.batch_share:.0%} as single documents, "
        f"{o.batch_share:.0%} in batches of 10) from {o.terminals} registered terminals, against a private "
        f"stack: Ray with Serve's HAProxy ingress, {o.replicas} replicas, 4 shards, 2 IngestShard and "
        f"2 LedgerWriter actors, Valkey with `appendfsync always`, PostgreSQL. "
        f"The fault hits {o.fault_at_s:g} s in; the "
        f"load keeps going. Then, like a terminal, every document that got no code (503, timeout, lost "
        f"connection) is resent until answered, the ledger drains, and PostgreSQL is compared with the "
        f"acknowledgements (`tooling.bench.ledger.check_exactly_once`): *acknowledged* and *recorded* "
        f"count distinct documents; *duplicates* are documents recorded or acknowledged twice. "
        f"An answer later than {o.timeout_s:g} s counts as a timeout. *Slowest error answer*: from "
        f"sending the request to the error answer. *Recovered*: from the kill (or, for Redis and "
        f"PostgreSQL, from the server's restart) to the first success after the last failed request; "
        f"*ledger caught up*: to the recording of the last document whose ack-to-ledger lag exceeded "
        f"max(2 s, 5 × its median before the fault). *Stream backlog*: documents captured and not "
        f"yet recorded in a shard (its sequence minus its recorded height, the quantity the capture "
        f"bound limits), sampled every 0.5 s. "
        f"Serve's HAProxy `retry-on`: `{os.environ.get('RAY_SERVE_HAPROXY_RETRY_ON', 'conn-failure')}`"
        f"{'' if 'RAY_SERVE_HAPROXY_RETRY_ON' in os.environ else ' (the default)'}.")


def _details(r: dict) -> str:
    e = r["exactly_once"]
    parts = [f"Fault: {r['fault']} at {r['fault_s']:.1f} s"
             + (f"; {r['restore']} at {r['restored_s']:.1f} s." if r.get("restore") else "."),
             f"{r['requests']:,} requests answered or failed ({r['requests_unsent']:,} more were due but "
             f"found no free connection before the end); {r['acknowledged_in_load']:,} documents "
             f"acknowledged during the load, {r['acknowledged_on_resend']:,} more on resend "
             f"({r['captured_despite_error']:,} of them had been captured before the error: same code back); "
             f"{r['acknowledged_in_load'] / max(r['duration_s'], 1e-9):,.0f} documents/s acknowledged "
             f"during the load.",
             f"p99 of successful answers {r['ok_answer_ms_p99']} ms; ack-to-ledger lag: median "
             f"{r['ledger_lag_ms_median_before']} ms before the fault, max {r['ledger_lag_ms_max']:,} ms."]
    for kind in ("HTTP 503", "in-batch 503"):
        reasons = r.get("error_bodies", {}).get(kind)
        if reasons:
            top = sorted(reasons.items(), key=lambda item: -item[1])
            parts.append(f"{kind} reasons: " + "; ".join(f"{n:,} × “{why}”" for why, n in top) + ".")
    if r["backlog_unsampled_s"]:
        parts.append(f"Backlog not sampled for {r['backlog_unsampled_s']} s (Redis away).")
    if r["resend_errors"]:
        errors = ", ".join(f"{v} {k}" for k, v in r["resend_errors"].items())
        parts.append(f"Errors while resending: {errors}.")
    f, o = r.get("fences") or {}, r["outcome"]
    if f.get("fences") or f.get("conflicts") or r.get("released"):
        parts.append(f"Fencing: {f.get('fences', 0)} fence(s) set, {f.get('losses', 0)} loss record(s) "
                     f"covering {f.get('lost_sequences', 0)} sequence(s), {f.get('conflicts', 0)} conflicting "
                     f"entries; the operator released {r.get('released', 0)}"
                     + (f" (first at {r['released_first_s']} s)." if r.get("released_first_s") else "."))
    if r.get("reconcile") and not r["reconcile"]["ok"]:
        c = r["reconcile"]
        parts.append(f"`posray audit --reconcile` afterwards (whole run so far): {c['keys_checked']:,} "
                     f"idempotency keys checked, {c['mismatches']} mismatch(es) ({c['unexplained']} not a "
                     f"known conflict), {c['losses']} loss record(s), {c['conflicts']} conflict(s): exit 1.")
    if r.get("second_deployment"):
        d = r["second_deployment"]
        parts.append(f"Second deployment: {d['sent']} sent, {d['acknowledged']} acknowledged, "
                     f"{d['refused']} refused.")
    if o["examples"]:
        parts.append("Example codes: " + "; ".join(f"{k} {', '.join(v)}" for k, v in o["examples"].items()) + ".")
    if not e["passed"] or r["unresolved"]:
        parts.append(f"Exactly-once check: {json.dumps({k: v for k, v in e.items() if k != 'passed'})}; "
                     f"unresolved after resending: {r['unresolved']}.")
    return " ".join(parts)
