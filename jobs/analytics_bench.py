"""The analytics benchmark's engine-independent parts: the single-process Polars engine, timing, the agreement check and the report.

An engine answers `fiscal(period)` and `retail(top)` with the results of
posray.analytics.partial.FISCAL and RETAIL. Three take part: the Ray job (jobs.bench: one task
per partition of days, partial aggregates merged), Polars in one process over the whole scan (the
functions the fiscal and retail jobs call) and DuckDB SQL (jobs.analytics_bench_sql). All
read the same snapshot; their results must agree, else the benchmark fails.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import polars as pl
from polars.testing import assert_frame_equal

from posray.analytics.partial import FISCAL, RETAIL, fiscal_results, retail_results
from posray.analytics.snapshot import SCHEMAS
from posray.adapters.parquet_snapshot import part_files, scan_table
from posray.domain.errors import PosrayError

REPORTS = ("fiscal", "retail")
REL_TOL = 1e-9
Results = dict[str, pl.DataFrame]


class EnginesDisagree(PosrayError, AssertionError):
    """Two engines gave different results for the same query on the same files."""


class PolarsEngine:
    """The fiscal and retail results computed by Polars in this process over the whole scan."""

    def __init__(self, snapshot_dir: Path):
        self._snapshot = Path(snapshot_dir)

    def fiscal(self, period: str = "month") -> Results:
        return _collect(fiscal_results(scan_table(self._snapshot, "documents"), period))

    def retail(self, top: int = 15) -> Results:
        documents, items = scan_table(self._snapshot, "documents"), scan_table(self._snapshot, "items")
        return _collect(retail_results(documents, items, top))


def _collect(lazy: dict[str, pl.LazyFrame]) -> Results:
    return dict(zip(lazy, pl.collect_all(list(lazy.values()))))


def check_agree(reference: Results, other: Results, engine: str) -> None:
    """Raise EnginesDisagree unless `other` has every result of `reference` with its columns
    and the same rows in the same order: integers, strings and dates equal, floats within REL_TOL.
    """
    for name, expected in reference.items():
        if name not in other:
            raise EnginesDisagree(f"{engine}: no result {name!r}")
        try:
            got = other[name].select(expected.columns).cast(expected.schema)
            assert_frame_equal(got, expected, check_exact=False, rel_tol=REL_TOL, abs_tol=1e-12)
        except Exception as e:  # a missing column, a failed cast or a different value
            raise EnginesDisagree(f"{engine} disagrees with the reference on {name}: {e}") from e


def measure(engines: dict[str, object], repeat: int = 3, period: str = "month", top: int = 15,
            progress: Callable[[str], None] = print) -> tuple[dict, dict[str, Results]]:
    """Run every engine's fiscal then retail results `repeat` times, engines taking turns.

    CPU seconds are this process's (all threads: Polars, DuckDB, the Ray driver) plus, for an
    engine with `last_task_cpu_s`, what its remote tasks reported: unlike wall time they hardly
    depend on what else the machine runs.

    Returns:
        Wall and CPU seconds per engine and report (one per run, with the load average before
        each run), and each engine's results of its last run.
    """
    runs = {name: {key: [] for r in REPORTS for key in (r, f"{r}_cpu")} | {"load_1m": []} for name in engines}
    results: dict[str, Results] = {}
    for attempt in range(repeat):
        for name, engine in engines.items():
            runs[name]["load_1m"].append(round(os.getloadavg()[0], 2))
            produced: Results = {}
            for report in REPORTS:
                started, cpu_started = time.perf_counter(), time.process_time()
                produced |= engine.fiscal(period) if report == "fiscal" else engine.retail(top)
                runs[name][report].append(round(time.perf_counter() - started, 3))
                cpu_s = time.process_time() - cpu_started + getattr(engine, "last_task_cpu_s", 0.0)
                runs[name][f"{report}_cpu"].append(round(cpu_s, 3))
            results[name] = produced
            progress(f"bench: run {attempt + 1}/{repeat} {name}: fiscal {runs[name]['fiscal'][-1]:.2f} s, "
                     f"retail {runs[name]['retail'][-1]:.2f} s")
    return runs, results


def snapshot_size(snapshot_dir: Path) -> dict:
    """Rows, files and bytes of the snapshot's tables."""
    size = {}
    for table in SCHEMAS:
        files = [p for _, _, p in part_files(snapshot_dir, table)]
        rows = scan_table(snapshot_dir, table).select(pl.len()).collect().item()
        size[table] = {"rows": rows, "files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    return size


def summarise(runs: dict, size: dict, ray_name: str = "ray") -> dict:
    """Median wall (and CPU) seconds per engine and report, the totals, rows per second, and
    the Ray job's total against the best other engine's."""
    rows = size["documents"]["rows"] + size["items"]["rows"]
    engines = {}
    for name, timed in runs.items():
        medians = {report: statistics.median(timed[report]) for report in REPORTS}
        total = sum(medians.values())
        engines[name] = {f"{r}_s": round(s, 3) for r, s in medians.items()} | {
            "total_s": round(total, 3), "rows_per_s": round(rows / total) if total else None}
        if all(timed.get(f"{r}_cpu") for r in REPORTS):
            engines[name]["total_cpu_s"] = round(sum(statistics.median(timed[f"{r}_cpu"]) for r in REPORTS), 3)
    summary = {"engines": engines}
    for key, suffix in (("total_s", ""), ("total_cpu_s", "_cpu")):
        others = {n: e[key] for n, e in engines.items() if n != ray_name and key in e}
        if key in engines.get(ray_name, {}) and others:
            best = min(others, key=others.get)
            summary |= {f"best_other{suffix}": best, f"ray_over_best{suffix}": round(engines[ray_name][key] / others[best], 3)}
    return summary


def write_report(out: Path, report: dict, chart_name: str = "bench.png") -> tuple[Path, Path]:
    """Write `report` as bench.json and a bar chart of the engines' times; return both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "bench.json"
    json_path.write_text(json.dumps(report, indent=1, default=str) + "\n")
    png_path = out / chart_name
    png_path.write_bytes(_chart(report))
    return json_path, png_path


def _chart(report: dict) -> bytes:
    """Stacked bars: fiscal and retail seconds per engine, total and ratio written on top."""
    from posray.analytics.charts import new_figure, png_bytes

    engines = report["summary"]["engines"]
    names = list(engines)
    docs = report["data"]["documents"]["rows"]
    figure, axes = new_figure("Fiscal + retail analytics, median wall time",
                              f"{docs:,} documents; {report['machine']['cpus']} cores; lower is better",
                              size=(6.5, 3.8))
    fiscal_s = [engines[n]["fiscal_s"] for n in names]
    retail_s = [engines[n]["retail_s"] for n in names]
    axes.bar(names, fiscal_s, color="#4c72b0", label="fiscal")
    axes.bar(names, retail_s, bottom=fiscal_s, color="#dd8452", label="retail")
    best = min(engines[n]["total_s"] for n in names)
    for x, n in enumerate(names):
        total = engines[n]["total_s"]
        axes.annotate(f"{total:.1f} s ({total / best:.2f}x)", (x, total), ha="center", va="bottom", fontsize=9)
    axes.set_ylabel("seconds")
    axes.set_ylim(0, max(engines[n]["total_s"] for n in names) * 1.18)
    axes.legend(loc="upper left", frameon=False)
    return png_bytes(figure)


__all__ = ["FISCAL", "RETAIL", "REPORTS", "EnginesDisagree", "PolarsEngine", "check_agree", "measure",
           "snapshot_size", "summarise", "write_report"]
