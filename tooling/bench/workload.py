"""The bench's workload: its terminals, pre-signed documents (cached on disk), requests and acks.

Document j of a series belongs to terminal j mod T with counter j div T + 1, so any document's
terminal and counter follow from its index, and consecutive documents (one batch) come from
different terminals. Signing costs ~50 µs per document in Python, so a series is signed once in
a process pool and kept in the cache directory; a state file remembers, per target database,
how far into the series previous runs went, so a rerun never resends a document.
"""

from __future__ import annotations

import collections
import hashlib
import json
import mmap
import os
import re
import time
from array import array
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import orjson

from tooling.bench.loadgen import encode_request

TERMINALS_PER_MERCHANT = 1000
SIGN_CHUNK = 20_000
SERIES_AGE_MAX_S = 20 * 86400  # documents stay inside the 30-day upload window
_RESULT = re.compile(
    rb'\{"status":"(?:accepted"[^{}]*?"shard":(\d+),"seq":(\d+)|rejected","status_code":(\d+))'
)


def terminal_id(series_id: str, i: int) -> str:
    return f"BENCH-{series_id}-{i}"


def place(j: int, terminals: int) -> tuple[int, int]:
    """(terminal number, counter) of document j."""
    return j % terminals, j // terminals + 1


def params_key(master: bytes, terminals: int, documents: int) -> str:
    """Names a series' parameters (and the operator, through a hash of its master key)."""
    fingerprint = hashlib.sha256(b"posray-bench|" + master).hexdigest()[:16]
    return hashlib.sha256(f"v1|{fingerprint}|{terminals}|{documents}".encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Series:
    """A set of bench terminals and their signed documents in `cache_dir`."""

    series_id: str
    generation: int
    terminals: int
    documents: int
    cache_dir: Path

    @property
    def docs_path(self) -> Path:
        return self.cache_dir / f"{self.series_id}.docs"

    @property
    def index_path(self) -> Path:
        return self.cache_dir / f"{self.series_id}.idx"

    @property
    def meta_path(self) -> Path:
        return self.cache_dir / f"{self.series_id}.json"

    def signed_at(self) -> float | None:
        """When the cached documents were signed (None: not cached)."""
        if not (self.meta_path.exists() and self.docs_path.exists() and self.index_path.exists()):
            return None
        return json.loads(self.meta_path.read_text())["signed_at"]


def series_of(cache_dir: Path, key: str, generation: int, terminals: int, documents: int) -> Series:
    sid = hashlib.sha256(f"{key}|{generation}".encode()).hexdigest()[:8]
    return Series(sid, generation, terminals, documents, cache_dir)


def sign_series(series: Series, master: bytes, processes: int, say=print,
                progress: Callable[[int], None] | None = None) -> None:
    """Sign every document of `series` in a process pool and write them to the cache.

    `progress` is called with the documents signed so far after each chunk; without it,
    `say` tells every tenth chunk.
    """
    series.cache_dir.mkdir(parents=True, exist_ok=True)
    issued_at = (datetime.now(timezone.utc) - timedelta(minutes=2)).replace(microsecond=0).isoformat()
    chunks = [(master, series.series_id, series.terminals, a, min(a + SIGN_CHUNK, series.documents), issued_at)
              for a in range(0, series.documents, SIGN_CHUNK)]
    started = time.monotonic()
    offsets, position = array("Q", [0]), 0
    tmp = series.docs_path.with_suffix(".tmp")
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool, open(tmp, "wb") as out:
        for n, (blob, lengths) in enumerate(pool.map(_sign_chunk, chunks), start=1):
            out.write(blob)
            for length in array("I", lengths):
                position += length
                offsets.append(position)
            if progress is not None:
                progress(offsets.buffer_info()[1] - 1)
            elif n % 10 == 0 or n == len(chunks):
                say(f"  signed {offsets.buffer_info()[1] - 1:,} of {series.documents:,} documents")
    series.index_path.write_bytes(offsets.tobytes())
    tmp.rename(series.docs_path)
    series.meta_path.write_text(json.dumps({
        "series": series.series_id, "terminals": series.terminals, "documents": series.documents,
        "issued_at": issued_at, "signed_at": time.time(),
        "sign_s": round(time.monotonic() - started, 1)}))


def _sign_chunk(args) -> tuple[bytes, bytes]:
    """Documents a..b of a series as JSON, each followed by a comma (batches are slices)."""
    from posray.domain.keys import terminal_key
    from tooling.simulator import make_document

    master, series_id, terminals, a, b, issued_at = args
    keys: dict[int, bytes] = {}
    parts = []
    for j in range(a, b):
        i, counter = place(j, terminals)
        tid = terminal_id(series_id, i)
        key = keys.get(i)
        if key is None:
            key = keys[i] = terminal_key(master, tid, 1)
        parts.append(orjson.dumps(make_document(tid, counter, key, issued_at=issued_at)) + b",")
    return b"".join(parts), array("I", map(len, parts)).tobytes()


class RequestBuilder:
    """request(i): the HTTP request of documents first_doc + i*B ... + B - 1 (picklable)."""

    def __init__(self, series: Series, host: str, first_doc: int, batch_size: int):
        self.series, self.host, self.first_doc, self.batch_size = series, host, first_doc, batch_size
        self.path = "/v1/transactions" if batch_size == 1 else "/v1/transactions/batch"
        self._docs = self._offsets = None

    @property
    def request_count(self) -> int:
        return (self.series.documents - self.first_doc) // self.batch_size

    def __getstate__(self):
        return {k: getattr(self, k) for k in ("series", "host", "first_doc", "batch_size", "path")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._docs = self._offsets = None

    def open(self) -> "RequestBuilder":
        with open(self.series.docs_path, "rb") as handle:
            self._docs = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._offsets = array("Q")
        self._offsets.frombytes(self.series.index_path.read_bytes())
        return self

    def __call__(self, i: int) -> bytes:
        a = self.first_doc + i * self.batch_size
        body = self._docs[self._offsets[a] : self._offsets[a + self.batch_size] - 1]
        if self.batch_size > 1:
            body = b'{"documents":[' + body + b"]}"
        return encode_request(self.host, self.path, body)


class AckRecorder:
    """on_response for the engine: keeps (document, shard, seq) of every acknowledgement.

    Reads posray's answers with one regular expression (they are written with a fixed member
    order) and falls back to parsing the JSON when the count does not match.
    """

    def __init__(self, first_doc: int, batch_size: int):
        self.first_doc, self.batch_size = first_doc, batch_size
        self.doc, self.shard, self.seq = array("q"), array("q"), array("q")
        self.doc_errors: collections.Counter = collections.Counter()

    def __call__(self, index: int, status: int, body: bytes) -> int:
        if status != 200:
            return 0
        base = self.first_doc + index * self.batch_size
        found = _RESULT.findall(body)
        if len(found) != self.batch_size:
            found = _parse_results(body)
        accepted = 0
        for k, (shard, seq, code) in enumerate(found):
            if code:
                self.doc_errors[f"doc_{int(code)}"] += 1
                continue
            self.doc.append(base + k)
            self.shard.append(int(shard))
            self.seq.append(int(seq))
            accepted += 1
        if b'"duplicate":true' in body:  # a resent document: the bench never sends one twice
            self.doc_errors["duplicate"] += body.count(b'"duplicate":true')
        return accepted

    def acks(self) -> tuple[array, array, array]:
        return self.doc, self.shard, self.seq


def _parse_results(body: bytes) -> list[tuple]:
    parsed = orjson.loads(body)
    results = parsed["results"] if "results" in parsed else [parsed]
    return [(r["shard"], r["seq"], None) if r.get("status") == "accepted" else (0, 0, r.get("status_code", 0))
            for r in results]


# -- which series a run uses, and how far into it -------------------------------------------

async def choose_series(pool, master: bytes, target: str, terminals: int, documents: int,
                        batch_size: int, cache_dir: Path) -> tuple[Series, int, bool]:
    """(series, first unused document, whether its terminals must be imported).

    A series whose terminals are already in the database is reused only if the state file
    knows how far previous runs went in it and enough documents remain; otherwise the next
    generation of the same parameters is used.
    """
    from posray.adapters.pg_terminals import PgTerminals

    key = params_key(master, terminals, documents)
    state = _load_state(cache_dir)
    known = state.get(target, {}).get(key)
    generation, cursor = (known["generation"], known["cursor"]) if known else (0, 0)
    while True:
        series = series_of(cache_dir, key, generation, terminals, documents)
        ids = [terminal_id(series.series_id, 0), terminal_id(series.series_id, terminals - 1)]
        present = len(await PgTerminals(pool).get_many(ids))
        if present == 0:
            return series, 0, True
        signed_at = series.signed_at()
        fresh = signed_at is not None and time.time() - signed_at < SERIES_AGE_MAX_S
        if present == 2 and known and fresh and cursor + batch_size <= documents:
            return series, cursor, False
        generation, cursor, known = generation + 1, 0, None


def save_cursor(cache_dir: Path, target: str, master: bytes, series: Series, cursor: int) -> None:
    """Remember that documents before `cursor` of `series` were sent to `target`."""
    key = params_key(master, series.terminals, series.documents)
    state = _load_state(cache_dir)
    state.setdefault(target, {})[key] = {"generation": series.generation, "cursor": cursor}
    tmp = cache_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, cache_dir / "state.json")


def target_of(pg_dsn: str, key_prefix: str) -> str:
    """Names the database + Redis prefix a run went to, without writing the DSN down."""
    return hashlib.sha256(f"{pg_dsn}|{key_prefix}".encode()).hexdigest()[:12]


def _load_state(cache_dir: Path) -> dict:
    path = cache_dir / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


async def import_terminals(pool, series: Series, progress: Callable[[int], None] | None = None) -> float:
    """Register the series' terminals with COPY (the bulk import path); return the seconds taken.
    `progress` is called with the rows handed to COPY so far."""
    from posray.adapters.pg_terminals import PgTerminals

    sid = series.series_id
    rows = [(terminal_id(sid, i), f"BENCH-{sid}-M{i // TERMINALS_PER_MERCHANT}", None)
            for i in range(series.terminals)]
    started = time.monotonic()
    await PgTerminals(pool).import_terminals(rows, progress=progress)
    return time.monotonic() - started
