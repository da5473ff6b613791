"""What became of every acknowledged sale after a fault: recorded as sent, reported lost, or worse.

The promise of a 200 with a code: once the ledger has caught up, the code resolves to exactly the
document that was acknowledged (same canonical bytes), or, where the capture store truly lost it,
posray says so (the lookup answers 410). Each acknowledged document of a fault run is put in one
class, from what a customer holding its code would see:

- recorded as sent: the ledger holds, at the code's place, a record of the very document sent,
  and the code recomputed from that record is the code the terminal printed;
- lost and reported: `GET /v1/receipts/{code}` answers 410;
- aliased: the code resolves (200) to another document — the one outcome posray must never have;
- silently missing: 404, nothing recorded and nothing reported;
- still pending: captured, not recorded when the check ran (the ledger did not catch up).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
import orjson

from posray.domain.chain import record_code, record_document
from posray.domain.codes import CodeKey, make_code
from posray.domain.transaction import canonical_document, document_hash

EXAMPLES_MAX = 5
LOOKUPS_AT_ONCE = 16
CLASSES = ("recorded_as_sent", "lost_reported", "aliased", "missing_silently", "pending", "lookup_failed")


@dataclass
class Outcome:
    """Counts per class, and a few example codes of every class but the first."""

    acknowledged: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    examples: dict = field(default_factory=dict)

    @property
    def kept(self) -> bool:
        """Every acknowledged sale recorded as sent or reported lost; none aliased or silently gone."""
        c = self.counts
        return c["recorded_as_sent"] + c["lost_reported"] == self.acknowledged

    def add(self, kind: str, code: str) -> None:
        self.counts[kind] += 1
        if kind != "recorded_as_sent":
            shown = self.examples.setdefault(kind, [])
            if len(shown) < EXAMPLES_MAX:
                shown.append(code)

    def as_dict(self) -> dict:
        return {"acknowledged": self.acknowledged, "kept": self.kept, **self.counts, "examples": self.examples}


def sent_document(builder, j: int) -> bytes:
    """Canonical bytes of document j of an open RequestBuilder's series, as the terminal sent it."""
    offsets, docs = builder._offsets, builder._docs
    return canonical_document(orjson.loads(docs[offsets[j]: offsets[j + 1] - 1]))


async def classify(pool, builder, code_key: CodeKey, base_url: str, acks) -> Outcome:
    """Put every acknowledgement (document index, shard, seq) in one class (see the module doc).

    The ledger is read in one query; only codes the ledger does not hold as sent are looked up
    over HTTP, as a customer would, so the answer includes the edge's status mapping.
    """
    docs, shards, seqs = acks
    places = dict(zip(docs, zip(shards, seqs)))  # a document acknowledged twice has one place
    outcome = Outcome(acknowledged=len(places))
    records = await _records(pool, list(places.values()))
    to_ask: list[tuple[str, bytes]] = []
    for j, (shard, seq) in places.items():
        canonical = sent_document(builder, j)
        digest = document_hash(canonical)
        code = make_code(code_key, shard, seq, digest)
        record = records.get((shard, seq))
        if record is not None and record_document(record) == canonical and \
                record_code(code_key, shard, seq, record) == code:
            outcome.add("recorded_as_sent", code)
        else:
            to_ask.append((code, digest))
    for code, kind in await _ask(base_url, to_ask):
        outcome.add(kind, code)
    return outcome


async def _records(pool, places: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT e.shard, e.seq, e.record FROM ledger_entries e"
            " JOIN unnest($1::int[], $2::bigint[]) AS p(shard, seq) ON e.shard = p.shard AND e.seq = p.seq",
            [p[0] for p in places], [p[1] for p in places])
    return {(r["shard"], r["seq"]): bytes(r["record"]) for r in rows}


async def _ask(base_url: str, codes: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(code, class) from GET /v1/receipts/{code} for each (code, hash of the document sent)."""
    gate = asyncio.Semaphore(LOOKUPS_AT_ONCE)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        async def one(code: str, digest: bytes) -> tuple[str, str]:
            async with gate:
                for _ in range(20):
                    answer = await http.get(f"/v1/receipts/{code}")
                    if answer.status_code not in (429, 503):
                        break
                    await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
            return code, _kind(answer, digest)

        return list(await asyncio.gather(*(one(c, d) for c, d in codes)))


def _kind(answer: httpx.Response, digest: bytes) -> str:
    if answer.status_code == 410:
        return "lost_reported"
    if answer.status_code == 404:
        return "missing_silently"
    if answer.status_code != 200:
        return "lookup_failed"
    body = answer.json()
    if body.get("document_hash") != digest.hex():
        return "aliased"
    return "recorded_as_sent" if body.get("status") == "recorded" else "pending"
