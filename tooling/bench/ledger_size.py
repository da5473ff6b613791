"""`posray bench-ledger-size`: what the ledger costs as it grows (docs/performance.md, "Ledger size").

In a database of its own with posray's schema (dropped at the end), the bench measures an empty
ledger, then bulk-fills it step by step to each size and measures again: the append rate of
posray's recording code (ledger_capacity's drain: Redis streams → ShardRecorder → COPY), and the
latency of a receipt lookup by code, by the printed fields, and of a proof bundle.

The fill is bulk SQL through the same tables, triggers and partitions (not the measured part):
FILL_SHARDS shards, batches of FILL_BATCH rows, one partition per day of `rows_per_day`, the days
before today (today's partition receives the measured appends, as a live ledger's would). Filled
rows share one real record (their leaf hashes, tree nodes and checkpoints are consistent with it),
terminals are spread over FILL_TERMINALS ids so the terminal indexes are written in random order.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import shutil
import statistics
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

FILL_SHARDS = 16
FILL_BATCH = 1000
FILL_TERMINALS = 200_000
FILL_CHUNK_ROWS = 250_000  # rows per INSERT statement of the fill
DISK_RESERVE_BYTES = 15 * 10 ** 9  # never fill the shared disk below this
_TREE_LEVELS = (4, 8, 12, 16, 20, 24, 28)


@dataclass(frozen=True, slots=True)
class SizeOptions:
    """What `posray bench-ledger-size` was asked to do."""

    sizes: tuple[int, ...] = (1_000_000, 5_000_000, 10_000_000)
    rows_per_day: int = 1_000_000
    append_documents: int = 20_000
    samples: int = 300
    batch_max: int = 1000
    out: Path = Path("bench-results/ledger-size.md")
    keep: bool = False


def add_parser(subparsers) -> None:
    """Register `posray bench-ledger-size` on the `posray` parser."""
    bench = subparsers.add_parser("bench-ledger-size", help="ledger append rate and lookup latency against ledger size",
                                  description=__doc__.splitlines()[0])
    bench.add_argument("--sizes", default="1000000,5000000,10000000",
                       help="ledger sizes in rows to fill to, comma separated (an empty ledger is always measured first)")
    bench.add_argument("--rows-per-day", type=int, default=1_000_000, help="filled rows per daily partition")
    bench.add_argument("--append-documents", type=int, default=20_000, help="documents appended at each size")
    bench.add_argument("--samples", type=int, default=300, help="lookups of each kind at each size")
    bench.add_argument("--out", type=Path, default=Path("bench-results/ledger-size.md"))
    bench.add_argument("--keep", action="store_true", help="keep the bench database (default: dropped)")
    bench.set_defaults(func=cmd_ledger_size)


def cmd_ledger_size(args) -> int:
    from posray.locate import deployment_settings, require

    settings = deployment_settings(args)
    require(settings, "pg_dsn", "redis_url")
    options = SizeOptions(tuple(int(s) for s in args.sizes.split(",") if s), args.rows_per_day,
                          args.append_documents, args.samples, out=args.out, keep=args.keep)
    report = asyncio.run(run_size_bench(settings.redis_url, settings.pg_dsn, options))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(markdown(report))
    print(markdown(report))
    return 0


async def run_size_bench(redis_url: str, pg_dsn: str, options: SizeOptions, say=print) -> dict:
    """Measure at one batch per shard, then fill to each size and measure; drop the database unless kept."""
    import os

    from posray.adapters.pg import apply_schema, ensure_database
    from posray.domain.codes import CodeKey
    from tooling.bench.ledger_capacity import _drop_database

    name = f"posray_bench_size_{secrets.token_hex(4)}"
    dsn = await ensure_database(pg_dsn, name)
    code_key = CodeKey(secrets.token_bytes(32))
    rows, load = [], os.getloadavg()
    first_day = datetime.now(timezone.utc).date() - timedelta(
        days=math.ceil(max(options.sizes, default=0) / options.rows_per_day) + 1)
    try:
        await apply_schema(dsn)
        filled, fill_s, stopped = 0, 0.0, None
        # "Empty": one batch per shard, so that every size's lookups read batches of one shape.
        for size in (FILL_SHARDS * FILL_BATCH, *options.sizes):
            if size > filled:
                stopped = _disk_refusal(rows, size - filled)
                if stopped:
                    say(f"bench-ledger-size: stopped before {size:,} rows: {stopped}")
                    break
                say(f"filling to {size:,} rows ...")
                started = time.perf_counter()
                await fill(dsn, filled, size, options.rows_per_day, first_day, code_key)
                fill_s, filled = time.perf_counter() - started, size
            say(f"measuring at {filled:,} rows ...")
            rows.append({"size": filled, "fill_s": round(fill_s, 1),
                         **await measure(redis_url, dsn, code_key, options, 1000 * (len(rows) + 1))})
            say(str(rows[-1]))
    finally:
        if not options.keep:
            await _drop_database(pg_dsn, name)
    return {"rows": rows, "stopped": stopped, "load_before": [round(x, 2) for x in load],
            "load_after": [round(x, 2) for x in os.getloadavg()], "options": options}


def _disk_refusal(rows: list[dict], more_rows: int) -> str | None:
    """Why filling `more_rows` would endanger the shared disk (estimated from the last bytes/row)."""
    per_row = max((r["bytes_per_row"] for r in rows if r["size"]), default=1500)
    need = int(more_rows * per_row * 1.3)  # WAL and index growth on top
    free = shutil.disk_usage("/var/lib/postgresql" if Path("/var/lib/postgresql").exists() else "/").free
    if free - need < DISK_RESERVE_BYTES:
        return f"needs about {need / 1e9:.1f} GB, {free / 1e9:.1f} GB free, {DISK_RESERVE_BYTES / 1e9:.0f} GB kept free"
    return None


def template_record(code_key) -> tuple[bytes, bytes]:
    """One real record (and its leaf hash) that every filled row holds."""
    from posray.domain.chain import record_bytes
    from posray.domain.codes import make_code
    from posray.domain.merkle import leaf_hash
    from posray.domain.transaction import canonical_document, document_hash
    from tooling.simulator import make_document

    canonical = canonical_document(make_document("term-0000001", 1, b"\0" * 32))
    record = record_bytes(0, 1, make_code(code_key, 0, 1, document_hash(canonical)), 0, canonical)
    return record, leaf_hash(record)


async def fill(dsn: str, filled: int, size: int, rows_per_day: int, first_day: date, code_key) -> None:
    """Bulk-insert rows filled+1..size (over all shards): batches, rows, log nodes, then checkpoints."""
    import asyncpg

    from posray.domain.merkle import node_hash

    record, leaf = template_record(code_key)
    level_hash = {0: leaf}
    for level in range(1, max(_TREE_LEVELS) + 1):
        level_hash[level] = node_hash(level_hash[level - 1], level_hash[level - 1])
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")  # the fill only; the measured appends commit as usual
        g = filled
        while g < size:  # chunks that never cross a day
            end = min(size, g + FILL_CHUNK_ROWS, (g // rows_per_day + 1) * rows_per_day)
            day = first_day + timedelta(days=g // rows_per_day)
            await conn.execute("SELECT posray_ledger_partitions($1, $1)", day)
            for shard in range(FILL_SHARDS):
                await _fill_shard(conn, shard, (end - g) // FILL_SHARDS, g, day, record, leaf, level_hash)
            g = end
        await _checkpoint_all(dsn)
        # Flush the fill's dirty pages now, so the measured lookups do not queue behind its
        # write-back (a live ledger never writes gigabytes in a minute).
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:
            pass
    finally:
        await conn.close()


async def _fill_shard(conn, shard: int, count: int, g: int, day: date, record: bytes, leaf: bytes,
                      level_hash: dict[int, bytes]) -> None:
    head = await conn.fetchrow("SELECT coalesce(max(batch_no), -1) AS b, coalesce(max(last_seq), 0) AS s"
                               " FROM ledger_batches WHERE shard = $1", shard)
    first, batches = head["s"] + 1, -(-count // FILL_BATCH)
    at = datetime.combine(day, datetime.min.time(), timezone.utc) + timedelta(hours=12)
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO ledger_batches (shard, batch_no, first_seq, last_seq, merkle_root, prev_hash,"
            " header_hash, recorded_at) SELECT $1, $2 + k, $3 + k * $4, least($3 + k * $4 + $4 - 1, $3 + $5 - 1),"
            " $6, $6, $6, $7 FROM generate_series(0, $8 - 1) AS k",
            shard, head["b"] + 1, first, FILL_BATCH, count, leaf, at, batches)
        # Terminal and counter from a global row number: every (terminal, counter) once, terminals
        # in random order along the index, as live traffic writes them.
        await conn.execute(
            "INSERT INTO ledger_entries (shard, seq, batch_no, leaf_index, terminal_id, counter, issued_at,"
            " accepted_at, total_minor, record, leaf_hash, recorded_on)"
            " SELECT $1::int, q, $2::bigint + (q - $3) / $4, (q - $3) % $4,"
            "  'term-' || lpad((((q - $3 + $9::bigint) * $10::int + $1::int) * 2654435761 % $11::int)::text, 7, '0'),"
            "  ((q - $3 + $9::bigint) * $10::int + $1::int) / $11::int + 1, $5, $5, 1000 + q % 9000, $6, $7, $8"
            " FROM generate_series($3::bigint, $3::bigint + $12 - 1) AS q",
            shard, head["b"] + 1, first, FILL_BATCH, at, record, leaf, day, g // FILL_SHARDS, FILL_SHARDS,
            FILL_TERMINALS, count)
        for level in _TREE_LEVELS:
            # blocks completed by this fill (one may hold earlier leaves: its hash is then only
            # plausible, which is all a latency bench needs)
            lo, hi = (first - 1) // (1 << level), (first - 1 + count) // (1 << level)
            if hi > lo:
                await conn.execute(
                    "INSERT INTO tlog_nodes (shard, level, idx, hash) SELECT $1, $2, i, $3"
                    " FROM generate_series($4::bigint, $5::bigint - 1) AS i ON CONFLICT DO NOTHING",
                    shard, level, level_hash[level], lo, hi)


async def _checkpoint_all(dsn: str) -> None:
    """A checkpoint at every shard's head, its root computed from the stored log (unsigned: a bench)."""
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_ledger import PgLedger
    from posray.services.proofs import tree_root

    pool = await create_pool(dsn, size_max=2)
    try:
        ledger = PgLedger(pool)
        for shard, (_, last_seq) in (await ledger.heights()).items():
            root = await tree_root(ledger, shard, last_seq)
            await ledger.add_checkpoint(shard, last_seq, root, "bench checkpoint", int(time.time() * 1000))
    finally:
        await pool.close()


async def measure(redis_url: str, dsn: str, code_key, options: SizeOptions, shard_base: int) -> dict:
    """Append rate, then lookup latencies; the table and index bytes per row of ledger_entries.

    The appends go to FILL_SHARDS shards from `shard_base` on, new at each size: a scratch capture
    store fences shards of its own (the filled shards' chains are the fill's, no store's); the
    tables and indexes they are appended to are the filled ones.
    """
    from tooling.bench.ledger_capacity import append_rate

    entries = _documents(options.append_documents)
    append = await append_rate(redis_url, dsn, entries, FILL_SHARDS, options.batch_max, code_key, shard_base)
    await _checkpoint_all(dsn)
    lookups = await _lookups(dsn, code_key, options.samples)
    size = await _bytes(dsn)
    return {"append_docs_per_s": append["docs_per_s"], **lookups, **size}


def _documents(count: int) -> list[tuple[bytes, str]]:
    """Fresh documents (canonical bytes, hash hex) of bench terminals, never recorded before."""
    from posray.domain.transaction import canonical_document, document_hash
    from tooling.simulator import make_document

    stem = secrets.token_hex(3)
    out = []
    for i in range(count):
        canonical = canonical_document(make_document(f"bench-{stem}-{i % 5000:04d}", i // 5000 + 1, b"\0" * 32))
        out.append((canonical, document_hash(canonical).hex()))
    return out


async def _lookups(dsn: str, code_key, samples: int) -> dict:
    """p50/p99 ms of by_code, by printed fields (the ledger's part) and proof_bundle, random receipts."""
    from posray.adapters.memory_capture import MemoryCaptureLog, MemoryCaptureStore
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_fences import PgFences
    from posray.adapters.pg_ledger import PgLedger
    from posray.domain.chain import record_code
    from posray.services.lookup import by_code, proof_bundle

    pool = await create_pool(dsn, size_max=2)
    capture = MemoryCaptureLog(MemoryCaptureStore(), 3600, 10 ** 6)  # nothing pending: the ledger answers
    try:
        ledger, fences = PgLedger(pool), PgFences(pool)
        sizes = {s: size for s, (size, _) in (await ledger.latest_checkpoints(list(range(FILL_SHARDS)))).items()}
        # Receipts drawn uniformly over the filled ledger (shard by its size, then a sequence): the
        # appended shards' batches are of another size, and a lookup's cost follows its batch's.
        shards, weights = zip(*sizes.items())
        picks = []
        for _ in range(samples):
            shard = random.choices(shards, weights)[0]
            seq = random.randint(1, sizes[shard])
            row = await pool.fetchrow(
                "SELECT e.terminal_id, e.counter, e.record, e.recorded_on FROM ledger_entries e"
                " JOIN ledger_batches b ON b.shard = e.shard AND b.recorded_on = e.recorded_on"
                " WHERE e.shard = $1 AND e.seq = $2 AND b.shard = $1 AND b.last_seq >= $2 AND b.first_seq <= $2",
                shard, seq)
            picks.append((shard, seq, record_code(code_key, shard, seq, bytes(row["record"])), row))
        timings: dict[str, list[float]] = {"code": [], "fields": [], "proof": []}
        for shard, seq, code, row in picks:
            timings["code"].append(await _timed(by_code(ledger, capture, fences, code_key, code)))
            timings["fields"].append(await _timed(_by_fields(ledger, row)))
            timings["proof"].append(await _timed(proof_bundle(ledger, fences, code_key, code)))
    finally:
        await pool.close()
    out = {}
    for kind, values in timings.items():
        cuts = statistics.quantiles(values, n=100)
        out[f"{kind}_p50_ms"], out[f"{kind}_p99_ms"] = round(cuts[49], 2), round(cuts[98], 2)
    return out


async def _by_fields(ledger, row) -> None:
    """What lookup.by_fields asks the ledger: candidates of the counter since the printed day, each read."""
    found = await ledger.find_by_fields(row["terminal_id"], row["counter"], row["recorded_on"] - timedelta(days=1))
    assert found, "a filled receipt must be found by its fields"
    for shard, seq, _, _ in found:
        await ledger.entry(shard, seq)


async def _timed(awaitable) -> float:
    started = time.perf_counter()
    await awaitable
    return (time.perf_counter() - started) * 1000


async def _bytes(dsn: str) -> dict:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT sum(pg_table_size(c.oid)) AS heap, sum(pg_indexes_size(c.oid)) AS idx, sum(c.reltuples) AS n"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ledger_entries'::regclass")
        await conn.execute("ANALYZE ledger_entries")
        rows = await conn.fetchval("SELECT sum(last_seq - first_seq + 1) FROM ledger_batches")
        database = await conn.fetchval("SELECT pg_database_size(current_database())")
        partitions = await conn.fetchval("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ledger_entries'::regclass")
    finally:
        await conn.close()
    rows = int(rows or 0)
    return {"rows": rows, "partitions": partitions, "database_gb": round(database / 1e9, 2),
            "bytes_per_row": round((int(row["heap"] or 0) + int(row["idx"] or 0)) / rows) if rows else 0,
            "index_bytes_per_row": round(int(row["idx"] or 0) / rows) if rows else 0}


def markdown(report: dict) -> str:
    """The table of docs/performance.md: one line per size, ratios against the empty ledger."""
    rows = report["rows"]
    empty = rows[0] if rows else {}
    lines = ["| ledger rows | partitions | fill s | append docs/s (vs empty) | by code p50 / p99 ms |"
             " by fields p50 / p99 ms | proof p50 / p99 ms | bytes/row (indexes) | database GB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ratio = r["append_docs_per_s"] / empty["append_docs_per_s"] if empty.get("append_docs_per_s") else 0
        lines.append(
            f"| {r['rows']:,} | {r['partitions']} | {r['fill_s']:,.0f} | {r['append_docs_per_s']:,.0f} ({ratio:.0%}) |"
            f" {r['code_p50_ms']} / {r['code_p99_ms']} | {r['fields_p50_ms']} / {r['fields_p99_ms']} |"
            f" {r['proof_p50_ms']} / {r['proof_p99_ms']} | {r['bytes_per_row']:,} ({r['index_bytes_per_row']:,}) |"
            f" {r['database_gb']} |")
    lines.append("")
    lines.append(f"load average (1, 5, 15 min) before: {report['load_before']}, after: {report['load_after']}")
    if report.get("stopped"):
        lines.append(f"stopped early: {report['stopped']}")
    return "\n".join(lines) + "\n"
