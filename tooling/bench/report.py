"""Bench results: the summary, a per-second timeline, the JSON file and the PNG chart."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from tooling.bench.loadgen import LoadResult


def merge(results: list[LoadResult]) -> LoadResult:
    """One LoadResult of several worker processes that ran side by side."""
    merged = LoadResult()
    for r in results:
        for name in ("due_s", "latency_s", "status", "accepted"):
            getattr(merged, name).extend(getattr(r, name))
        merged.errors.update(r.errors)
        merged.unanswered.extend(r.unanswered)
        merged.sent += r.sent
        merged.unsent += r.unsent
        merged.connects += r.connects
        merged.exhausted |= r.exhausted
        merged.elapsed_s = max(merged.elapsed_s, r.elapsed_s)
        merged.last_index = max(merged.last_index, r.last_index)
    return merged


def percentiles_ms(values_s) -> dict:
    """p50, p99, p99.9, max and mean of durations in seconds, as milliseconds."""
    values = np.asarray(values_s, dtype=np.float64) * 1000
    if values.size == 0:
        return {"p50": None, "p99": None, "p99_9": None, "max": None, "mean": None}
    p50, p99, p999 = np.percentile(values, [50, 99, 99.9])
    return {"p50": _r(p50), "p99": _r(p99), "p99_9": _r(p999), "max": _r(values.max()), "mean": _r(values.mean())}


def build_report(params: dict, load: LoadResult, doc_errors: collections.Counter,
                 samples: list[tuple[float, int, int]], recorded, context: dict) -> dict:
    """Everything a run measured, as one JSON-ready dict.

    Args:
        samples: (seconds from the start, stream backlog, captured) taken during and after the run.
        recorded: the exactly-once check (tooling.bench.ledger.Recorded), or None if skipped.
        context: run facts (series, first document, wall-clock start in ms, load averages ...).
    """
    result = load_summary(load, doc_errors)
    during = [b for t, b, _ in samples if t < load.elapsed_s + 1]  # sampled at each second's end
    ledger = {
        "backlog_max_during_run": max(during, default=0),
        "backlog_at_end_of_run": during[-1] if during else None,
        "drained": bool(samples) and samples[-1][1] == 0,
        "drained_s_after_run": _r(samples[-1][0] - load.elapsed_s) if samples else None,
        "ack_to_recorded_ms": percentiles_ms(recorded.lag_ms / 1000) if recorded is not None else None,
    }
    check = None if recorded is None else {
        "passed": recorded.exactly_once, **recorded.counts, "examples": recorded.examples}
    return {"params": params, "context": context, "result": result, "ledger": ledger,
            "exactly_once": check,
            "timeline": timeline(load, samples, recorded, context["wall_start_ms"])}


def load_summary(load: LoadResult, doc_errors: collections.Counter) -> dict:
    """Rates, latency percentiles (answers with status 200) and errors of one load run."""
    status = np.frombuffer(load.status, dtype=np.uint16) if load.status else np.zeros(0, np.uint16)
    latency = np.frombuffer(load.latency_s, dtype=np.float64) if load.latency_s else np.zeros(0)
    accepted = int(sum(load.accepted))
    elapsed = max(load.elapsed_s, 1e-9)
    errors = collections.Counter(load.errors) + doc_errors
    return {
        "duration_s": _r(load.elapsed_s),
        "requests_sent": load.sent,
        "requests_answered_200": int((status == 200).sum()),
        "documents_accepted": accepted,
        "accepted_docs_per_s": _r(accepted / elapsed),
        "requests_per_s": _r(int((status == 200).sum()) / elapsed),
        "latency_ms": percentiles_ms(latency[status == 200]),
        "errors": dict(sorted(errors.items())),
        "errors_total": sum(errors.values()),
        "unsent_due_requests": load.unsent,
        "unanswered_requests": len(load.unanswered),
        "documents_ran_out": load.exhausted,
        "connections_opened": load.connects,
    }


def timeline(load: LoadResult, samples, recorded, wall_start_ms: int) -> list[dict]:
    """Per second from the start: accepted docs, answers, latency p50/p99, backlog, ledger lag."""
    due = np.frombuffer(load.due_s, dtype=np.float64) if load.due_s else np.zeros(0)
    latency = np.frombuffer(load.latency_s, dtype=np.float64) if load.latency_s else np.zeros(0)
    status = np.frombuffer(load.status, dtype=np.uint16) if load.status else np.zeros(0, np.uint16)
    accepted = np.frombuffer(load.accepted, dtype=np.uint32) if load.accepted else np.zeros(0, np.uint32)
    second = np.floor(due + latency).astype(np.int64)
    lag_second = lag = None
    if recorded is not None and recorded.lag_ms.size:
        lag_second = (recorded.accepted_ms - wall_start_ms) // 1000
        lag = recorded.lag_ms
    last = max([int(second.max()) if second.size else 0] + [int(t) for t, _, _ in samples])
    backlog = {int(t): b for t, b, _ in samples}
    rows = []
    for s in range(last + 1):
        here = second == s
        ok = here & (status == 200)
        row = {"t_s": s, "accepted_docs": int(accepted[here].sum()), "answers": int(here.sum()),
               "errors": int((here & (status != 200)).sum()),
               "latency_ms_p50": _pct(latency[ok], 50), "latency_ms_p99": _pct(latency[ok], 99),
               "backlog": backlog.get(s)}
        if lag is not None:
            in_second = lag[lag_second == s] / 1000
            row["ack_to_recorded_ms_p50"] = _pct(in_second, 50)
            row["ack_to_recorded_ms_p99"] = _pct(in_second, 99)
        rows.append(row)
    return rows


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))
    return path


def write_chart(report: dict, path: Path) -> Path:
    """Three panels over time: accepted documents/s; latency p50/p99; backlog and ledger lag."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["timeline"]
    t = [r["t_s"] for r in rows]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(10, 9))
    p = report["params"]
    mode = f"open loop {p['rate']:,} docs/s" if p.get("rate") else "closed loop"
    fig.suptitle(f"posray bench: batch {p['batch_size']}, {p['connections']} connections, {mode}")
    top.plot(t, [r["accepted_docs"] for r in rows], color="tab:green", drawstyle="steps-post")
    top.set_ylabel("accepted docs/s")
    top.grid(alpha=0.3)
    for key, label in (("latency_ms_p50", "p50"), ("latency_ms_p99", "p99")):
        middle.plot(t, [_nan(r[key]) for r in rows], label=label)
    middle.set_ylabel("ack latency (ms)")
    middle.set_yscale("log")
    middle.legend(loc="upper left")
    middle.grid(alpha=0.3)
    bottom.plot(t, [_nan(r["backlog"]) for r in rows], color="tab:red", marker=".", label="stream backlog")
    bottom.set_ylabel("backlog (docs)")
    bottom.set_xlabel("seconds from start")
    bottom.grid(alpha=0.3)
    if rows and "ack_to_recorded_ms_p99" in rows[0]:
        lag = bottom.twinx()
        lag.plot(t, [_nan(r["ack_to_recorded_ms_p99"]) for r in rows], color="tab:purple",
                 label="ack→recorded p99 (ms)")
        lag.set_ylabel("ack→recorded p99 (ms)")
        lag.legend(loc="upper right")
    bottom.legend(loc="upper left")
    for axis in (top, middle, bottom):
        axis.axvline(report["result"]["duration_s"], color="grey", linestyle="--", linewidth=0.8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- baselines (tooling.bench.baselines) ------------------------------------------------------

BASELINE_LABELS = {
    "noop_serve": "no-op Serve app, same ingress",
    "naive_peer": "naive peer (Starlette + asyncpg)",
    "redis_xadd": "raw Redis XADD, pipelined",
    "pg_copy": "raw PostgreSQL COPY",
    "posray_ledger": "posray ledger drain, one process",
}


def ratio(posray_docs_per_s: float | None, baseline_docs_per_s: float | None) -> float | None:
    """posray's rate as a fraction of a baseline's (None when either is unknown or zero)."""
    if not posray_docs_per_s or not baseline_docs_per_s:
        return None
    return round(posray_docs_per_s / baseline_docs_per_s, 4)


def baselines_block(posray_docs_per_s: float | None, blocks: dict[str, dict]) -> dict:
    """The report's `baselines`: posray's rate, then each baseline's block with its `ratio`."""
    out: dict = {"posray_docs_per_s": posray_docs_per_s,
                 "ratio_is": "posray_docs_per_s / baseline docs_per_s"}
    for name, block in blocks.items():
        out[name] = {**block, "ratio": ratio(posray_docs_per_s, block.get("docs_per_s"))}
    return out


def baseline_lines(baselines: dict) -> list[str]:
    """The console summary of the baselines, one line each."""
    posray = baselines.get("posray_docs_per_s")
    lines = [f"baselines (posray {posray:,.0f} docs/s):" if posray else "baselines:"]
    for name, label in BASELINE_LABELS.items():
        block = baselines.get(name)
        if block is None:
            continue
        if "error" in block:
            lines.append(f"  {label}: FAILED ({block['error']})")
            continue
        lat = block.get("latency_ms") or block.get("round_trip_ms") or {}
        latency = f"  p50 {lat.get('p50')} ms  p99 {lat.get('p99')} ms" if lat else ""
        share = f"  posray/baseline {block['ratio']:.3f}" if block.get("ratio") is not None else ""
        lines.append(f"  {label} ({block.get('setup', '')}): {block['docs_per_s']:,.0f} docs/s"
                     f"{latency}{share}")
    return lines


def write_baseline_chart(baselines: dict, path: Path) -> Path:
    """A bar chart (log scale) of posray's rate next to each baseline's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [("posray", baselines.get("posray_docs_per_s"), "tab:green")]
    bars += [(BASELINE_LABELS[name], baselines[name].get("docs_per_s"), "tab:blue")
             for name in BASELINE_LABELS if name in baselines]
    bars = [(label, rate, color) for label, rate, color in bars if rate]
    fig, axis = plt.subplots(figsize=(9, 1.0 + 0.6 * max(len(bars), 1)))
    axis.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for y, (_, rate, _) in enumerate(bars):
        axis.annotate(f" {rate:,.0f}", (rate, y), va="center", fontsize=8)
    axis.set_xscale("log")
    if bars:
        axis.set_xlim(right=max(b[1] for b in bars) * 4)  # room for the last label
    axis.invert_yaxis()
    axis.set_xlabel("documents/s (log scale)")
    axis.set_title("posray against its baselines (same run, same documents)")
    axis.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _pct(values_s: np.ndarray, q: float):
    return _r(float(np.percentile(values_s, q)) * 1000) if values_s.size else None


def _r(value) -> float:
    return round(float(value), 3)


def _nan(value):
    return float("nan") if value is None else value

