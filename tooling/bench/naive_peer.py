"""The naive peer of `posray bench --baselines`: one Starlette process, one INSERT and one commit per sale.

What a straightforward implementation of the same ingest contract looks like: uvicorn serves a
Starlette app in one process; each document is validated and authenticated exactly as posray's
edge does (posray.wire, check_document, the terminal MAC with keys looked up in PostgreSQL and
kept in a small in-process cache), then INSERTed in its own transaction (synchronous_commit as
configured, on by default: one WAL flush per sale). Batches are a loop over the same per-document
INSERT. Run as `python -m tooling.bench.naive_peer --port P --schema S --seed-file F` with the
database in POSRAY_BENCH_PEER_DSN (not on the command line, where `ps` would show it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from deployments.api.errors import status_of
from posray.domain.errors import DocumentConflict, DocumentRejected, InvalidRequest, Unauthenticated
from posray.domain.keys import terminal_key
from posray.domain.terminal_mac import mac_matches
from posray.domain.transaction import Rules, canonical_document, check_document, document_hash
from posray.wire import validate_document

DSN_ENV = "POSRAY_BENCH_PEER_DSN"
TABLE = "naive_sales"
TERMINAL_CACHE_MAX = 100_000
JSON_TYPE = "application/json"
READY_TIMEOUT_S = 60


def table_ddl(schema: str) -> str:
    """The peer's table in `schema`: one row per sale, unique per (terminal, counter)."""
    return (
        f'CREATE TABLE "{schema}".{TABLE} ('
        " id bigserial PRIMARY KEY, terminal_id text NOT NULL, counter bigint NOT NULL,"
        " issued_at_ms bigint NOT NULL, total_minor bigint NOT NULL, document bytea NOT NULL,"
        " document_hash bytea NOT NULL, accepted_at timestamptz NOT NULL DEFAULT now(),"
        " UNIQUE (terminal_id, counter))"
    )


class TerminalKeys:
    """Terminal keys by id: one query per miss, at most `size_max` kept (then start over)."""

    def __init__(self, pool, master: bytes, size_max: int = TERMINAL_CACHE_MAX):
        self._pool, self._master, self._size_max = pool, master, size_max
        self._cache: dict[str, tuple[bool, bytes]] = {}

    async def get(self, terminal_id: str) -> tuple[bool, bytes] | None:
        """(active, key) of a registered terminal, or None when it is unknown."""
        hit = self._cache.get(terminal_id)
        if hit is not None:
            return hit
        row = await self._pool.fetchrow(
            "SELECT key_version, status FROM terminals WHERE terminal_id = $1", terminal_id)
        if row is None:
            return None
        if len(self._cache) >= self._size_max:
            self._cache.clear()
        found = (row["status"] == "active", terminal_key(self._master, terminal_id, row["key_version"]))
        self._cache[terminal_id] = found
        return found


class NaivePeer:
    """Checks and stores one document at a time; answers in posray's result shape."""

    def __init__(self, pool, keys: TerminalKeys, rules: Rules, schema: str):
        self._pool, self._keys, self._rules = pool, keys, rules
        self._insert = (
            f'INSERT INTO "{schema}".{TABLE} (terminal_id, counter, issued_at_ms, total_minor,'
            " document, document_hash) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (terminal_id, counter) DO NOTHING RETURNING id")
        self._existing = f'SELECT id, document_hash FROM "{schema}".{TABLE} WHERE terminal_id = $1 AND counter = $2'

    async def accept(self, doc) -> tuple[int, dict]:
        """(HTTP status, result) of one parsed document; never raises for a bad document."""
        try:
            issued_ms = await self._check(doc)
            row_id, duplicate = await self._store(doc, issued_ms)
        except DocumentRejected as e:
            status = status_of(e)
            return status, {"status": "rejected", "status_code": status, **e.to_json()}
        return 200, {"status": "accepted", "code": str(row_id), "shard": 0, "seq": row_id,
                     "duplicate": duplicate}

    async def _check(self, doc) -> int:
        validate_document(doc)
        issued_ms = check_document(doc, self._rules, int(time.time() * 1000))
        found = await self._keys.get(doc["terminal_id"])
        if found is None:
            raise Unauthenticated("terminal_id", "is not a registered terminal")
        active, key = found
        if not active:
            raise Unauthenticated("terminal_id", "is revoked")
        if not mac_matches(key, doc, doc["mac"]):
            raise Unauthenticated("mac", "does not match the document and the terminal's key")
        return issued_ms

    async def _store(self, doc: dict, issued_ms: int) -> tuple[int, bool]:
        """One INSERT, its own transaction (autocommit): (row id, whether it was already there)."""
        canonical = canonical_document(doc)
        digest = document_hash(canonical)
        tid, counter = doc["terminal_id"], doc["counter"]
        row_id = await self._pool.fetchval(
            self._insert, tid, counter, issued_ms, doc["total_minor"], canonical, digest)
        if row_id is not None:
            return row_id, False
        prior = await self._pool.fetchrow(self._existing, tid, counter)
        if bytes(prior["document_hash"]) != digest:
            raise DocumentConflict("counter", "another document was accepted under this counter")
        return prior["id"], True


def build_app(dsn: str, seed_file: Path, schema: str, rules: Rules, pool_size: int = 16):
    """The Starlette app: POST /v1/transactions, POST /v1/transactions/batch, GET /healthz."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from posray.adapters.keyfile import load_keys
    from posray.adapters.pg import create_pool

    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool = await create_pool(dsn, size_max=pool_size)
        master = load_keys(seed_file).terminal_master
        state["peer"] = NaivePeer(pool, TerminalKeys(pool, master), rules, schema)
        yield
        await pool.close()

    async def single(request):
        doc = _parse(await request.body())
        status, result = await state["peer"].accept(doc) if doc is not None else _malformed()
        return Response(orjson.dumps(result), status, media_type=JSON_TYPE)

    async def batch(request):
        body = _parse(await request.body())
        if not isinstance(body, dict) or not isinstance(body.get("documents"), list):
            return Response(orjson.dumps(_malformed()[1]), 400, media_type=JSON_TYPE)
        results = []
        for doc in body["documents"]:  # the naive way: one INSERT (one commit) after another
            status, result = await state["peer"].accept(doc)
            results.append(result)
        return Response(orjson.dumps({"results": results}), 200, media_type=JSON_TYPE)

    async def healthz(request):
        return Response(b'{"status":"alive"}', 200 if "peer" in state else 503, media_type=JSON_TYPE)

    routes = [Route("/v1/transactions", single, methods=["POST"]),
              Route("/v1/transactions/batch", batch, methods=["POST"]),
              Route("/healthz", healthz, methods=["GET"])]
    return Starlette(routes=routes, lifespan=lifespan)


def _parse(raw: bytes):
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _malformed() -> tuple[int, dict]:
    error = InvalidRequest("body", "is not valid JSON")
    return 400, {"status": "rejected", "status_code": 400, **error.to_json()}


@contextlib.asynccontextmanager
async def running(settings, schema: str, port: int, pool_size: int = 16):
    """Run the peer in a subprocess on 127.0.0.1:`port` until the block ends (then terminate it).

    Raises:
        RuntimeError: the peer exited or did not answer within READY_TIMEOUT_S.
    """
    rules = json.dumps({"vat_rates_bp": list(settings.vat_rates_bp), "future_skew_s": settings.future_skew_s,
                        "max_age_s": settings.upload_window_s})
    cmd = [sys.executable, "-m", "tooling.bench.naive_peer", "--port", str(port), "--schema", schema,
           "--seed-file", str(settings.seed_file), "--pool-size", str(pool_size), "--rules", rules]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env={**os.environ, DSN_ENV: settings.pg_dsn},
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            await _wait_ready(proc, log, port)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _wait_ready(proc, log, port: int) -> None:
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read()[-1500:].decode(errors="replace")
                raise RuntimeError(f"the naive peer exited with code {proc.returncode}: {tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the naive peer did not answer on port {port} in {READY_TIMEOUT_S} s")


def main(argv: list[str] | None = None) -> int:
    """Serve the naive peer until terminated (SIGTERM/SIGINT)."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m tooling.bench.naive_peer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--schema", required=True, help="scratch schema holding the naive_sales table")
    parser.add_argument("--seed-file", type=Path, required=True, help="the operator seed (terminal keys)")
    parser.add_argument("--pool-size", type=int, default=16, help="PostgreSQL connections (default 16)")
    parser.add_argument("--rules", default="{}",
                        help='JSON: {"vat_rates_bp": [...], "future_skew_s": ..., "max_age_s": ...}')
    args = parser.parse_args(argv)
    given = json.loads(args.rules)
    rules = Rules(frozenset(given.get("vat_rates_bp", (0, 500, 1000, 1300, 2000))),
                  given.get("future_skew_s", 300), given.get("max_age_s", 30 * 86400))
    app = build_app(os.environ[DSN_ENV], args.seed_file, args.schema, rules, args.pool_size)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
