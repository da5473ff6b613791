"""Ray job `bench`: the fiscal and retail analytics over one generated snapshot as Ray tasks, in one Polars process and in DuckDB.

    posray analytics bench --documents 10000000 --out /tmp/bench
    ray job submit --working-dir . -- python -m jobs.bench --documents 10000000 --out /shared/bench

When --snapshot holds no snapshot, it is generated first (posray.synthetic.bulk: the snapshot's
schema and layout, drawn straight to Parquet). The Ray engine runs one task per partition of
days (posray.analytics.partial: partial aggregates in the task, merged in the driver), on the
cluster at --address or RAY_ADDRESS, else on a private local Ray started before the timing (its
start-up is reported apart). Every engine runs --repeat times; the results must agree. Writes
<out>/bench.json and <out>/bench.png; exits 1 when the engines disagree, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import polars as pl

from posray import ray_auth
from posray.adapters import parquet_snapshot
from posray.analytics import partial
from jobs.analytics_bench import EnginesDisagree, PolarsEngine, check_agree, measure, snapshot_size, summarise, write_report
from posray.synthetic.bulk import read_manifest, write_bulk_snapshot
from jobs.arguments import bench_arguments, job_arguments, settings_for
from posray.adapters.parquet_snapshot import read_watermark
from posray.synthetic.world import GeneratorConfig

ENGINES = ("ray", "polars", "duckdb")
# A task reserves one CPU, so its Polars uses one thread (as Ray sets OMP_NUM_THREADS=1): tasks
# side by side on a node would otherwise each start a thread per core and fight for them.
TASK_OPTIONS = {"num_cpus": 1, "runtime_env": {"env_vars": {"POLARS_MAX_THREADS": "1"}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.bench", description=__doc__.splitlines()[0])
    job_arguments(parser)
    bench_arguments(parser)
    return run(parser.parse_args(argv))


def partition_results(snapshot_dir: str, days: list[str], marks: dict[int, int], report: str,
                      period: str = "month") -> dict[str, pl.DataFrame]:
    """The body of one Ray task: one partition's fiscal or retail partial aggregates."""
    documents = parquet_snapshot.scan_partition(Path(snapshot_dir), "documents", days, marks)
    if report == "fiscal":
        lazy = partial.fiscal_partials(documents, period)
    else:
        lazy = partial.retail_partials(documents, parquet_snapshot.scan_partition(Path(snapshot_dir), "items", days, marks))
    return dict(zip(lazy, pl.collect_all(list(lazy.values()))))


def _timed_partition(*args) -> tuple[dict[str, pl.DataFrame], float]:
    """partition_results and the CPU seconds the worker spent on it (all its threads)."""
    started = time.process_time()
    results = partition_results(*args)
    return results, time.process_time() - started


class RayEngine:
    """The fiscal and retail results from one Ray task per partition of the snapshot's days."""

    def __init__(self, snapshot_dir: Path, tasks: int):
        import ray

        self._ray = ray
        self._snapshot = str(snapshot_dir)
        self.partitions = parquet_snapshot.partitions(snapshot_dir, tasks)
        self._marks = read_watermark(snapshot_dir)
        # Reads only: a task lost with its node is simply run again.
        self._task = ray.remote(max_retries=2, **TASK_OPTIONS)(_timed_partition)
        self.last_task_cpu_s = 0.0

    def _parts(self, report: str, period: str = "month") -> list[dict[str, pl.DataFrame]]:
        refs = [self._task.remote(self._snapshot, days, self._marks, report, period) for days in self.partitions]
        done = self._ray.get(refs)
        self.last_task_cpu_s = sum(cpu_s for _, cpu_s in done)
        return [results for results, _ in done]

    def fiscal(self, period: str = "month") -> dict[str, pl.DataFrame]:
        return partial.merge_fiscal(self._parts("fiscal", period))

    def retail(self, top: int = 15) -> dict[str, pl.DataFrame]:
        return partial.merge_retail(self._parts("retail"), top)


def _warm_up() -> int:
    """Run once per CPU before the timing, so the timed tasks find workers with Polars loaded."""
    time.sleep(0.5)  # overlap, so that each warms a worker of its own
    return pl.DataFrame({"pid": [os.getpid()]}).item()


def start_ray(address: str | None) -> tuple[bool, float, int]:
    """Connect to (or start) Ray and warm one worker per CPU; (started here, seconds, CPUs)."""
    ray_auth.require_token_auth()
    import ray

    started = time.perf_counter()
    connected_here = not ray.is_initialized()
    if connected_here:
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        options = {"include_dashboard": False} if address == "local" else {}
        if address == "local":
            # Ray runs workers at nice 15 so that its own daemons stay responsive. The Polars and
            # DuckDB engines run in this process at nice 0; on a shared machine the benchmark
            # would then compare priorities, not engines. On a dedicated node it makes no difference.
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray_auth.for_local_ray(address)
        ray.init(address=address, log_to_driver=False, **options)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    warm = ray.remote(**TASK_OPTIONS)(_warm_up)
    ray.get([warm.remote() for _ in range(cpus)])
    return connected_here, time.perf_counter() - started, cpus


def ensure_snapshot(snapshot: Path, config: GeneratorConfig) -> dict:
    """Reuse the bulk snapshot written with `config`, or write it into an empty folder.

    Raises:
        FileExistsError: the folder holds something else.
    """
    wanted = json.loads(json.dumps(asdict(config) | {"start": config.start.isoformat()}))
    found = read_manifest(snapshot)
    if found is not None and {k: found.get(k) for k in wanted} == wanted:
        return {"reused": True}
    if snapshot.exists() and any(snapshot.iterdir()):
        raise FileExistsError(f"{snapshot} holds another snapshot; pass an empty or new --snapshot")
    written = write_bulk_snapshot(snapshot, config)
    print(f"bench: wrote {written.documents:,} documents, {written.items:,} items in {written.files} files "
          f"to {snapshot} in {written.seconds:.1f} s", file=sys.stderr, flush=True)
    return {"reused": False, "seconds": round(written.seconds, 1)}


def run(args) -> int:
    """Run the benchmark for parsed arguments; print the table; 0 when the engines agree."""
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    if unknown := set(wanted) - set(ENGINES):
        print(f"bench: unknown engines {sorted(unknown)}; choose from {', '.join(ENGINES)}", file=sys.stderr)
        return 2
    if "duckdb" in wanted and not _has_duckdb():
        print("bench: DuckDB is not installed: pip install duckdb (or pip install 'posray[bench]'), "
              "or leave it out with --engines ray,polars", file=sys.stderr)
        return 2
    out = Path(args.out or settings_for(args).data_dir / "bench")
    snapshot = Path(args.snapshot or out / "snapshot")
    config = GeneratorConfig(seed=args.seed, merchants=args.merchants, start=args.start, days=args.days,
                             documents=args.documents, shard_count=args.shards, anomalies=False)
    try:
        generated = ensure_snapshot(snapshot, config)
    except FileExistsError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 2
    report = {"machine": _machine(), "data": snapshot_size(snapshot) | {"config": read_manifest(snapshot),
                                                                        "generated": generated}}
    engines, connected_here = _engines(wanted, snapshot, args, report)
    try:
        runs, results = measure(engines, args.repeat, args.period, args.top,
                                progress=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        _close(engines, connected_here)
    report |= {"runs": runs, "summary": summarise(runs, report["data"])}
    report["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    try:
        _check(results)
    except EnginesDisagree as e:
        report["agree"] = False
        write_report(out, report)
        print(f"bench: ENGINES DISAGREE: {e}", file=sys.stderr)
        return 1
    report["agree"] = True
    json_path, png_path = write_report(out, report)
    print(table(report) + f"\n-> {json_path}, {png_path}")
    return 0


def _engines(wanted: list[str], snapshot: Path, args, report: dict) -> tuple[dict, bool]:
    engines, connected_here = {}, False
    if "ray" in wanted:
        connected_here, startup_s, cpus = start_ray(args.address)
        engine = RayEngine(snapshot, args.tasks or cpus)
        report["ray"] = {"startup_s": round(startup_s, 2), "cpus": cpus, "tasks": len(engine.partitions),
                         "worker_niceness": os.environ.get("RAY_worker_niceness", "15 (Ray's default)"),
                         "days_per_task": [len(p) for p in engine.partitions], "started_here": connected_here}
        engines["ray"] = engine
    if "polars" in wanted:
        engines["polars"] = PolarsEngine(snapshot)
    if "duckdb" in wanted:
        from jobs.analytics_bench_sql import DuckDBEngine

        engines["duckdb"] = DuckDBEngine(snapshot)
    return engines, connected_here


def _close(engines: dict, connected_here: bool) -> None:
    if "duckdb" in engines:
        engines["duckdb"].close()
    if connected_here:
        import ray

        ray.shutdown()


def _check(results: dict) -> None:
    """Every engine against the Polars one (the jobs' own functions), else against the first."""
    names = list(results)
    reference = "polars" if "polars" in results else names[0]
    for name in names:
        if name != reference:
            check_agree(results[reference], results[name], name)


def table(report: dict) -> str:
    """The summary as a Markdown table."""
    summary = report["summary"]
    best = min(e["total_s"] for e in summary["engines"].values())
    lines = ["| engine | fiscal s | retail s | total s | x best | rows/s | CPU s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, e in summary["engines"].items():
        lines.append(f"| {name} | {e['fiscal_s']:.2f} | {e['retail_s']:.2f} | {e['total_s']:.2f} | "
                     f"{e['total_s'] / best:.2f} | {e['rows_per_s']:,} | {e.get('total_cpu_s', float('nan')):.1f} |")
    if "ray_over_best" in summary:
        lines.append(f"\nray / {summary['best_other']} = {summary['ray_over_best']:.2f} (CPU seconds: "
                     f"{summary.get('ray_over_best_cpu', float('nan')):.2f}); Ray start-up "
                     f"{report['ray']['startup_s']:.1f} s (not in the times)")
    return "\n".join(lines)


def _has_duckdb() -> bool:
    try:
        import duckdb  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


def _machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("polars", "ray", "duckdb"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "memory_gib": round(memory / 2**30, 1), "platform": platform.platform(),
            "load_before": [round(x, 2) for x in os.getloadavg()], **versions}


if __name__ == "__main__":
    sys.exit(main())
