"""`posray bench --baselines`: the machine's limits, measured in the same run and with the same documents.

    noop   an empty Serve app beside posray (same ingress, replicas, limits), same requests
    naive  a single-process Starlette + asyncpg peer: one INSERT and one commit per document
    redis  the documents' canonical bytes XADDed into a scratch stream, one round trip per batch
    copy   the same rows COPYed into a scratch copy of ledger_entries, batches of ledger_batch_max

The HTTP baselines run closed loop with the run's connections, duration and batch size; the raw
ones over --baseline-documents documents (the series' documents, reused when fewer remain).
Every scratch key, table and app is removed afterwards (the no-op app stays with --keep-noop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import secrets
import time
from array import array
from datetime import datetime, timezone
from urllib.parse import urlsplit

import orjson

from tooling.bench.workload import AckRecorder, RequestBuilder, Series

NAMES = {"noop": "noop_serve", "naive": "naive_peer", "redis": "redis_xadd", "copy": "pg_copy",
         "ledger": "posray_ledger"}
ALL = tuple(NAMES)
SINGLE_DOC_PIPELINE = 100  # raw appends of a single-document run go in pipelines of this many
PEER_POOL_SIZE = 16
_ENDLESS = 10**12


def add_arguments(add, positive_int=int) -> None:
    """Register the baseline options on `posray bench`.

    Args:
        add: the bench parser's add_argument.
        positive_int: the argument type of counts (refuses zero and negatives).
    """
    add("--baselines", type=parse_names, nargs="?", const=ALL, default=(), metavar="NAMES",
        help="after the run, measure the baselines: all, or a comma list of " + ",".join(ALL))
    add("--baselines-only", action="store_true", help="measure the baselines without a posray run")
    add("--keep-noop", action="store_true", help="leave the no-op Serve app deployed at /noop")
    add("--baseline-documents", type=positive_int, default=100_000,
        help="documents appended by the raw Redis and COPY baselines (default 100000)")


def parse_names(text: str) -> tuple[str, ...]:
    """Baseline names from a comma list ("all" for every one), in the order they run."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if names == {"all"}:
        return ALL
    unknown = names - set(ALL)
    if unknown or not names:
        raise ValueError(text)
    return tuple(n for n in ALL if n in names)


class CountingRecorder:
    """on_response for the no-op app: a 200 answer accepts every document of its request."""

    def __init__(self, first_doc: int, batch_size: int):
        self.batch_size = batch_size
        self.doc_errors: collections.Counter = collections.Counter()

    def __call__(self, index: int, status: int, body: bytes) -> int:
        return self.batch_size if status == 200 else 0

    def acks(self) -> tuple[array, array, array]:
        return array("q"), array("q"), array("q")


class CyclingBuilder(RequestBuilder):
    """The run's requests under a path prefix, starting over when the documents run out."""

    def __init__(self, series: Series, host: str, first_doc: int, batch_size: int, prefix: str):
        super().__init__(series, host, first_doc, batch_size)
        self.path = prefix + self.path
        self.cycle = super().request_count

    @property
    def request_count(self) -> int:
        return _ENDLESS

    def __getstate__(self):
        return {**super().__getstate__(), "cycle": self.cycle}

    def __call__(self, i: int) -> bytes:
        return super().__call__(i % self.cycle)


class NullMonitor:
    """Stands in for the ledger monitor while a baseline runs (nothing to sample)."""

    async def sample(self) -> tuple[int, int]:
        return 0, 0


async def measure(settings, options, series: Series, first: int, posray_docs_per_s, say=print) -> dict:
    """Run the baselines `options.baselines` in order; return the report's `baselines` block.

    A baseline that fails is reported with its `error` and the others still run.
    """
    from tooling.bench.report import baselines_block

    runs = {"noop": noop_serve_rate, "naive": naive_peer_rate, "redis": _raw_redis, "copy": _raw_copy,
            "ledger": _ledger}
    blocks: dict[str, dict] = {}
    entries: list = []
    for name in options.baselines:
        say(f"baseline {name}: {NAMES[name]} ...")
        try:
            if name in ("redis", "copy", "ledger") and not entries:
                entries = await asyncio.to_thread(load_entries, series, first, options.baseline_documents)
            blocks[NAMES[name]] = await runs[name](settings, options, series, first, entries, say)
        except Exception as e:  # one failed baseline must not lose the others
            blocks[NAMES[name]] = {"error": f"{type(e).__name__}: {e}"}
    return baselines_block(posray_docs_per_s, blocks)


async def noop_serve_rate(settings, options, series: Series, first: int, entries=None, say=print) -> dict:
    """Deploy the no-op Serve app, drive it like posray, delete it (unless --keep-noop)."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")  # read by Ray when first imported, as posray up does
    from tooling.harness import noop_app  # every Ray call of the bench lives in deployments/

    url = urlsplit(options.url or f"http://{settings.http_host}:{settings.http_port}")
    prefix = noop_app.deploy_noop(settings, url.geturl())
    try:
        builder = CyclingBuilder(series, url.netloc, first, options.batch_size, prefix)
        summary = await _load(options, builder, url.hostname, url.port or 80, CountingRecorder, say)
    finally:
        if not options.keep_noop:
            noop_app.delete_noop(settings)
    return _http_block(summary, setup=f"{builder.path}, batch {options.batch_size}, "
                       f"{options.connections} connections", route=builder.path,
                       replicas=settings.replicas, kept_deployed=options.keep_noop)


async def naive_peer_rate(settings, options, series: Series, first: int, entries=None, say=print) -> dict:
    """Start the naive peer in a subprocess on a scratch table, drive it like posray, stop it."""
    from tooling.bench import naive_peer
    from tooling.embedded import free_port

    async with scratch_schema(settings.pg_dsn) as (pool, schema):
        await pool.execute(naive_peer.table_ddl(schema))
        commit = await pool.fetchval("SHOW synchronous_commit")
        port = free_port()
        async with naive_peer.running(settings, schema, port, PEER_POOL_SIZE):
            builder = RequestBuilder(series, f"127.0.0.1:{port}", first, options.batch_size)
            summary = await _load(options, builder, "127.0.0.1", port, AckRecorder, say)
        rows = await pool.fetchval(f'SELECT count(*) FROM "{schema}".{naive_peer.TABLE}')
    return _http_block(summary, setup=f"one INSERT + commit per document, {options.connections} connections",
                       transaction="per_document", synchronous_commit=commit,
                       pool_size=PEER_POOL_SIZE, server_processes=1, rows_in_table=rows)


async def redis_append_rate(redis_url: str, entries: list, batch_size: int, prefix: str | None = None) -> dict:
    """XADD `entries` (canonical bytes, hash hex) into a scratch stream, one pipeline per batch.

    The stream key starts with `prefix` (default: a fresh posray-bench-baseline:<hex>) and is
    deleted afterwards. Sequential: one client, one round trip at a time.
    """
    from posray.adapters.redis_capture import RedisCapture, connect
    from tooling.bench.report import percentiles_ms

    key = f"{prefix or 'posray-bench-baseline:' + secrets.token_hex(4)}:stream"
    client = connect(redis_url)
    trips, now_ms = [], int(time.time() * 1000)
    try:
        durability = await RedisCapture(client, "", 0, 0).durability()
        started, cpu = time.perf_counter(), time.process_time()
        for a in range(0, len(entries), batch_size):
            sent = time.perf_counter()
            async with client.pipeline(transaction=False) as pipe:
                for seq, (canonical, digest) in enumerate(entries[a : a + batch_size], start=a + 1):
                    pipe.xadd(key, {"s": seq, "t": now_ms, "h": digest, "d": canonical})
                await pipe.execute()
            trips.append(time.perf_counter() - sent)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        length = await client.xlen(key)
    finally:
        await client.delete(key)
        await client.aclose()
    return {"docs_per_s": round(len(entries) / elapsed, 1), "documents": len(entries),
            "stream_length": length, "batch_size": batch_size, "round_trips": len(trips),
            "round_trip_ms": percentiles_ms(trips), "duration_s": round(elapsed, 3),
            "client_cpu_s": round(cpu, 3), "durability": durability, "clients": 1,
            "setup": f"pipelines of {batch_size}, one client"}


async def copy_rate(pg_dsn: str, rows: list[tuple], batch_size: int) -> dict:
    """COPY `rows` into a scratch copy of ledger_entries (its indexes included), `batch_size` per COPY."""
    from posray.adapters.pg_ledger import ENTRY_COLUMNS
    from tooling.bench.report import percentiles_ms

    trips = []
    async with scratch_schema(pg_dsn) as (pool, schema):
        await pool.execute(f'CREATE TABLE "{schema}".ledger_entries (LIKE ledger_entries INCLUDING INDEXES)')
        async with pool.acquire() as conn:
            started, cpu = time.perf_counter(), time.process_time()
            for a in range(0, len(rows), batch_size):
                sent = time.perf_counter()
                await conn.copy_records_to_table("ledger_entries", schema_name=schema,
                                                 records=rows[a : a + batch_size], columns=ENTRY_COLUMNS)
                trips.append(time.perf_counter() - sent)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        count = await pool.fetchval(f'SELECT count(*) FROM "{schema}".ledger_entries')
        commit = await pool.fetchval("SHOW synchronous_commit")
    return {"docs_per_s": round(len(rows) / elapsed, 1), "rows": len(rows), "rows_in_table": count,
            "batch_size": batch_size, "round_trips": len(trips), "round_trip_ms": percentiles_ms(trips),
            "duration_s": round(elapsed, 3), "client_cpu_s": round(cpu, 3), "synchronous_commit": commit,
            "connections": 1,
            "setup": f"COPY batches of {batch_size} rows, one connection"}


def load_entries(series: Series, first: int, count: int) -> list[tuple[bytes, str]]:
    """(canonical bytes, SHA-256 hex) of `count` documents from `first` on, reused when fewer remain."""
    from posray.domain.transaction import canonical_document, document_hash

    offsets = array("Q")
    offsets.frombytes(series.index_path.read_bytes())
    last = min(series.documents, first + count)
    with open(series.docs_path, "rb") as handle:
        handle.seek(offsets[first])
        blob = handle.read(offsets[last] - offsets[first])
    base = []
    for j in range(first, last):
        raw = blob[offsets[j] - offsets[first] : offsets[j + 1] - offsets[first] - 1]  # drop the comma
        canonical = canonical_document(orjson.loads(raw))
        base.append((canonical, document_hash(canonical).hex()))
    return [base[i % len(base)] for i in range(count)] if base else []


def ledger_rows(entries: list[tuple[bytes, str]], shard_count: int, code_key, batch_size: int) -> list[tuple]:
    """Rows shaped like posray's ledger_entries (ENTRY_COLUMNS order), one per entry, fresh (shard, seq)."""
    from posray.domain.chain import record_bytes
    from posray.domain.codes import make_code
    from posray.domain.merkle import leaf_hash
    from posray.domain.transaction import document_hash, issued_at_ms, shard_of

    accepted_ms = int(time.time() * 1000)
    accepted = datetime.fromtimestamp(accepted_ms / 1000, tz=timezone.utc)
    seqs: collections.Counter = collections.Counter()
    rows = []
    for j, (canonical, _) in enumerate(entries):
        doc = orjson.loads(canonical)
        shard = shard_of(doc["terminal_id"], shard_count)
        seqs[shard] += 1
        seq = seqs[shard]
        record = record_bytes(shard, seq, make_code(code_key, shard, seq, document_hash(canonical)),
                              accepted_ms, canonical)
        issued = datetime.fromtimestamp(issued_at_ms(doc["issued_at"]) / 1000, tz=timezone.utc)
        rows.append((shard, seq, j // batch_size, j % batch_size, doc["terminal_id"], doc["counter"],
                     issued, accepted, doc["total_minor"], record, leaf_hash(record), accepted.date()))
    return rows


@contextlib.asynccontextmanager
async def scratch_schema(pg_dsn: str):
    """A pool and a fresh schema posray_bench_<hex>, dropped (with its tables) on exit."""
    from posray.adapters.pg import create_pool

    pool = await create_pool(pg_dsn, size_max=2)
    schema = f"posray_bench_{secrets.token_hex(4)}"
    try:
        await pool.execute(f'CREATE SCHEMA "{schema}"')
        yield pool, schema
    finally:
        try:
            await pool.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await pool.close()


async def _raw_redis(settings, options, series, first, entries, say) -> dict:
    batch = options.batch_size if options.batch_size > 1 else SINGLE_DOC_PIPELINE
    block = await redis_append_rate(settings.redis_url, entries, batch)
    if options.batch_size == 1:
        block["batch_size_note"] = f"the run sends single documents; raw appends use pipelines of {batch}"
    return block


async def _raw_copy(settings, options, series, first, entries, say) -> dict:
    from posray.adapters.keyfile import load_keys

    code_key = load_keys(settings.seed_file).code
    batch = settings.ledger_batch_max
    rows = await asyncio.to_thread(ledger_rows, entries, settings.shard_count, code_key, batch)
    return await copy_rate(settings.pg_dsn, rows, batch)


async def _ledger(settings, options, series, first, entries, say) -> dict:
    """posray's recording code draining the same documents in one process (see ledger_capacity)."""
    from posray.adapters.keyfile import load_keys
    from tooling.bench.ledger_capacity import ledger_capacity

    shards = max(1, settings.shard_count // settings.ledger_actors)  # what one LedgerWriter owns
    return await ledger_capacity(settings.redis_url, settings.pg_dsn, entries, shards,
                                 settings.ledger_batch_max, load_keys(settings.seed_file).code)


async def _load(options, builder, host: str, port: int, recorder, say) -> dict:
    """Drive `builder`'s requests closed loop with the run's connections and duration."""
    from tooling.bench.driver import drive
    from tooling.bench.report import load_summary

    closed = dataclasses.replace(options, rate=None)
    load, _, doc_errors, _, _ = await drive(closed, builder, host, port, NullMonitor(), say, recorder)
    return load_summary(load, doc_errors)


def _http_block(summary: dict, **facts) -> dict:
    keep = ("requests_per_s", "latency_ms", "documents_accepted", "duration_s", "errors",
            "errors_total", "documents_ran_out")
    return {"docs_per_s": summary["accepted_docs_per_s"], **{k: summary[k] for k in keep},
            "loop": "closed", **facts}
