"""`posray bench`: load the ingest path, then check every acknowledged document was recorded once.

Steps: pick (or sign and cache) a series of documents, bulk-import its terminals, run the load
generator in worker processes while sampling the stream backlog, wait for the ledger to drain,
check PostgreSQL against the acknowledgements, and write the results as JSON and PNG.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from tooling.bench import baselines
from tooling.bench.driver import drive
from tooling.bench.workload import RequestBuilder


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """What `posray bench` was asked to do (see add_parser for each option)."""

    terminals: int = 10_000
    documents: int = 500_000
    batch_size: int = 1
    connections: int = 64
    duration_s: float = 20.0
    rate: float | None = None  # documents per second (open loop); None: closed loop
    processes: int = 1
    out_dir: Path = Path("bench-results")
    url: str | None = None
    cache_dir: Path | None = None
    timeout_s: float = 30.0
    drain_timeout_s: float = 300.0
    baselines: tuple[str, ...] = ()  # names of tooling.bench.baselines to measure after the run
    baselines_only: bool = False
    keep_noop: bool = False
    baseline_documents: int = 100_000
    measure_cpu: bool = False  # CPU per document and role of this deployment over the run (bench-suite)


def add_parser(subparsers) -> None:
    """Register `posray bench` on the `posray` parser."""
    bench = subparsers.add_parser(
        "bench", help="load-test the ingest path and check exactly-once recording",
        description=__doc__.splitlines()[0] + " See docs/performance.md.")
    add = bench.add_argument
    add("--terminals", type=_positive(int), default=10_000, help="distinct bench terminals (default 10000)")
    add("--documents", type=_positive(int), default=500_000,
        help="signed documents in the cached series; the run stops early if they run out (default 500000)")
    add("--batch-size", type=_positive(int), default=1, help="documents per request; 1 = POST /v1/transactions")
    add("--connections", type=_positive(int), default=64, help="keep-alive connections (default 64)")
    add("--duration-s", type=_positive(float), default=20.0, help="length of the sending phase (default 20)")
    add("--rate", type=_positive(float), help="open loop at this many documents/s (default: closed loop)")
    add("--processes", type=_positive(int), default=1, help="load generator processes (default 1)")
    add("--out", dest="out_dir", type=Path, default=Path("bench-results"), help="folder for JSON + PNG")
    add("--url", help="base URL of the Serve ingress (default from settings)")
    add("--cache-dir", type=Path, help="signed documents cache (default DATA_DIR/bench-cache)")
    add("--timeout-s", type=_positive(float), default=30.0, help="an answer later than this is an error")
    add("--drain-timeout-s", type=_positive(float), default=300.0, help="wait this long for the ledger")
    add("--measure-cpu", action="store_true",
        help="report µs of CPU per document for each role of this deployment (read from /proc)")
    baselines.add_arguments(add, _positive(int))
    bench.set_defaults(func=cmd_bench)


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise ValueError(text)
        return value
    parse.__name__ = kind.__name__
    return parse


def cmd_bench(args) -> int:
    """0 when the run had no error and exactly-once held, 1 otherwise, 2 when misconfigured."""
    from posray.adapters.keyfile import KeyFileError
    from posray.locate import deployment_settings
    from posray.domain.errors import PosrayError

    settings = deployment_settings(args)
    if settings.pg_dsn is None or settings.redis_url is None:
        print("posray bench: no PostgreSQL/Redis configured (run `posray up` or set POSRAY_PG_DSN "
              "and POSRAY_REDIS_URL)", file=sys.stderr)
        return 2
    names = BenchOptions.__dataclass_fields__
    options = BenchOptions(**{k: v for k, v in vars(args).items() if k in names})
    if options.baselines_only and not options.baselines:
        options = replace(options, baselines=baselines.ALL)
    try:
        run = run_baselines_only if options.baselines_only else run_bench
        report = asyncio.run(run(settings, options))
    except (KeyFileError, PosrayError, ValueError) as e:
        print(f"posray bench: {e}", file=sys.stderr)
        return 2
    measured = all("error" not in b for b in (report.get("baselines") or {}).values() if isinstance(b, dict))
    if options.baselines_only:
        return 0 if measured else 1
    passed = report["result"]["errors_total"] == 0 and (report["exactly_once"] or {}).get("passed")
    return 0 if passed and measured else 1


async def run_bench(settings, options: BenchOptions, say=print) -> dict:
    """Run one bench against the deployment of `settings`; return the report (also written)."""
    from posray.adapters.keyfile import load_keys
    from posray.adapters.pg import create_pool
    from tooling.bench import ledger, report as reports, workload

    master = load_keys(settings.seed_file).terminal_master
    url = urlsplit(options.url or f"http://{settings.http_host}:{settings.http_port}")
    cache_dir = options.cache_dir or settings.data_dir / "bench-cache"
    target = workload.target_of(settings.pg_dsn, settings.key_prefix)
    pool = await create_pool(settings.pg_dsn, size_max=2)
    monitor = ledger.LedgerMonitor(settings.redis_url, settings.key_prefix, settings.shard_count)
    try:
        series, first, context = await prepare(pool, master, target, options, cache_dir, say)
        builder = RequestBuilder(series, url.netloc, first, options.batch_size)
        if builder.request_count < 1:
            raise ValueError("no unused documents left in the series: raise --documents")
        context["load_average_before"] = os.getloadavg()
        cpu_before = await _cpu_start(settings) if options.measure_cpu else None
        load, acks, doc_errors, samples, (start, wall_start_ms) = await drive(
            options, builder, url.hostname, url.port or 80, monitor, say)
        sent_to = first + (load.last_index + 1) * options.batch_size
        workload.save_cursor(cache_dir, target, master, series, sent_to)

        def drained(backlog: int, captured: int) -> None:
            samples.append((time.monotonic() - start, backlog, captured))
            say(f"  draining: stream backlog {backlog:,}")

        await monitor.wait_drained(options.drain_timeout_s, drained)
        unanswered = {first + i * options.batch_size + k for i in load.unanswered
                      for k in range(options.batch_size)}
        if cpu_before is not None:
            context["cpu_us_per_document"] = _cpu_used(settings, cpu_before, int(sum(load.accepted)))
        recorded = await ledger.check_exactly_once(pool, series, first, acks, unanswered)
    finally:
        await monitor.close()
        await pool.close()
    context.update(wall_start_ms=wall_start_ms, load_average_after=os.getloadavg(),
                   documents_sent_to=sent_to)
    report = reports.build_report(params_of(options, settings), load, doc_errors, samples, recorded, context)
    if options.baselines:
        report["baselines"] = await baselines.measure(
            settings, options, series, first, report["result"]["accepted_docs_per_s"], say)
    write_files(report, options, say)
    return report


async def _cpu_start(settings) -> tuple:
    """Idle CPU per role (3 s with no load), then the snapshot the run's usage starts from."""
    from tooling.bench import cpu

    markers = cpu.markers_of(settings)
    idle = await asyncio.to_thread(cpu.idle_rate, markers)
    return markers, idle, cpu.snapshot(markers), time.monotonic()


def _cpu_used(settings, started: tuple, documents: int) -> dict[str, float]:
    """µs of CPU per document and role from `started` to now, idle usage subtracted."""
    from tooling.bench import cpu

    markers, idle, before, at = started
    return cpu.per_document_us(before, cpu.snapshot(markers), documents, idle, time.monotonic() - at)


def params_of(options: BenchOptions, settings) -> dict:
    """The report's `params`: the options as JSON values, the URL and the shard count."""
    url = options.url or f"http://{settings.http_host}:{settings.http_port}"
    return {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            "url": url, "shard_count": settings.shard_count}


async def prepare(pool, master, target, options: BenchOptions, cache_dir: Path, say):
    """(series, first unused document, context) of this run; signs and imports terminals as needed."""
    from tooling.bench import workload
    from posray.progress import Progress

    series, first, must_import = await workload.choose_series(
        pool, master, target, options.terminals, options.documents, options.batch_size, cache_dir)
    context = {"series": series.series_id, "generation": series.generation, "first_document": first,
               "cpus": os.cpu_count(), "signed_s": None, "terminals_imported_s": None}
    signed_at = series.signed_at()
    if signed_at is None or time.time() - signed_at > workload.SERIES_AGE_MAX_S:
        say(f"signing {options.documents:,} documents for {options.terminals:,} terminals "
            f"(series {series.series_id}, cached in {cache_dir}) ...")
        started = time.monotonic()
        with Progress("signing", total=options.documents, unit="documents") as tick:
            await asyncio.to_thread(workload.sign_series, series, master, os.cpu_count() or 1, say, tick)
        context["signed_s"] = round(time.monotonic() - started, 1)
    if must_import:
        with Progress("importing terminals", total=options.terminals, unit="terminals") as tick:
            context["terminals_imported_s"] = round(await workload.import_terminals(pool, series, tick), 2)
        say(f"imported {options.terminals:,} terminals BENCH-{series.series_id}-* with COPY "
            f"in {context['terminals_imported_s']} s")
    say(f"series {series.series_id}: documents {first:,}..{options.documents - 1:,} unused")
    return series, first, context


async def run_baselines_only(settings, options, say=print) -> dict:
    """`posray bench --baselines-only`: pick the series (as a run would), measure, write the report."""
    from posray.adapters.keyfile import load_keys
    from posray.adapters.pg import create_pool
    from tooling.bench import workload

    master = load_keys(settings.seed_file).terminal_master
    cache_dir = options.cache_dir or settings.data_dir / "bench-cache"
    pool = await create_pool(settings.pg_dsn, size_max=2)
    try:
        target = workload.target_of(settings.pg_dsn, settings.key_prefix)
        series, first, context = await prepare(pool, master, target, options, cache_dir, say)
    finally:
        await pool.close()
    context["load_average_before"] = os.getloadavg()
    measured = await baselines.measure(settings, options, series, first, None, say)
    context["load_average_after"] = os.getloadavg()
    report = {"params": params_of(options, settings), "context": context, "baselines": measured}
    write_files(report, options, say)
    return report


def write_files(report: dict, options: BenchOptions, say) -> None:
    """Write the JSON, the run's chart and the baselines' bar chart; print the summary."""
    from tooling.bench.report import baseline_lines, write_baseline_chart, write_chart, write_json

    mode = "baselines" if "result" not in report else f"rate{int(options.rate)}" if options.rate else "closed"
    stem = f"bench-{time.strftime('%Y%m%d-%H%M%S')}-b{options.batch_size}-c{options.connections}-{mode}"
    files = report["files"] = {"json": str(options.out_dir / f"{stem}.json")}
    if "result" in report:
        files["png"] = str(write_chart(report, options.out_dir / f"{stem}.png"))
        _say_result(report, say)
    if report.get("baselines"):
        name = f"{stem}-baselines.png" if "result" in report else f"{stem}.png"
        chart = write_baseline_chart(report["baselines"], options.out_dir / name)
        files["baselines_png"] = str(chart)
        for line in baseline_lines(report["baselines"]):
            say(line)
    write_json(report, options.out_dir / f"{stem}.json")
    say(f"wrote {', '.join(files.values())}")


def _say_result(report: dict, say) -> None:
    r, led, check = report["result"], report["ledger"], report["exactly_once"]
    lat = r["latency_ms"]
    say(f"accepted {r['documents_accepted']:,} documents in {r['duration_s']} s: "
        f"{r['accepted_docs_per_s']:,.0f} docs/s ({r['requests_per_s']:,.0f} requests/s)")
    say(f"ack latency ms: p50 {lat['p50']}  p99 {lat['p99']}  p99.9 {lat['p99_9']}  max {lat['max']}")
    say("errors: " + (", ".join(f"{k} {v:,}" for k, v in r["errors"].items()) or "none")
        + (f"; {r['unsent_due_requests']:,} due requests never sent" if r["unsent_due_requests"] else "")
        + ("; the series ran out of documents" if r["documents_ran_out"] else ""))
    lag = led["ack_to_recorded_ms"] or {}
    say(f"ledger: backlog max {led['backlog_max_during_run']:,}, drained {led['drained']} "
        f"({led['drained_s_after_run']} s after the run); ack→recorded ms p50 {lag.get('p50')} "
        f"p99 {lag.get('p99')} max {lag.get('max')}")
    say(f"exactly once: {'PASSED' if check['passed'] else 'FAILED'} ({check['acknowledged']:,} acknowledged, "
        f"{check['recorded']:,} recorded, missing {check['missing']}, twice {check['recorded_twice']}, "
        f"unexpected {check['unexpected']}){' ' + str(check['examples']) if check['examples'] else ''}")
