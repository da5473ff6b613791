"""A seeded retail world and the history of documents its terminals issue, ready for the ledger.

The history is what posray's edge would have produced: every document is valid and signed with
its terminal's key, and documents come out in acceptance order, numbered per shard (seq) and
given their receipt code, so that refunds can name the sale they refer to. The same seed, world
and window always give the same documents. Nothing here does I/O: the loader that writes a
history through the ledger-writing code path is posray.services.loading.

The world itself (merchants, stores, terminals) is posray.synthetic.world; its names are
re-exported here. Planted anomalies (World.planted, details in History.anomalies once iterated): a terminal that
skips counters, one with an abnormal refund ratio, one offline for days that uploads its
backlog late, one that issues duplicate-looking receipts within a minute.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable, Iterator

import numpy as np

from posray.synthetic.catalogue import Kind, Product
from posray.synthetic.world import (
    GeneratorConfig,
    Merchant,
    Planted,
    TerminalSpec,
    World,
    build_world,
    utc_offset_min,
)
from posray.domain.codes import CodeKey, make_code
from posray.domain.terminal_mac import document_mac
from posray.domain.transaction import (
    Rules,
    canonical_document,
    check_document,
    document_hash,
    line_amount,
    vat_included,
)
from posray.wire import validate_document

__all__ = ["GeneratedSale", "GeneratorConfig", "History", "Merchant", "Planted", "TerminalSpec", "World", "build_world",
           "utc_offset_min"]
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_RECENT_SALES_MAX = 64
REFUND_HEAVY_RATE = 0.25


@dataclass(frozen=True, slots=True)
class GeneratedSale:
    """One document as the edge accepted it: where it goes and its receipt code."""

    shard: int
    seq: int
    code: str
    accepted_at_ms: int
    document: dict
    canonical: bytes


@dataclass(slots=True)
class _Draft:
    sec: int
    doc_type: str
    lines: list[tuple[Product, int]]
    payments: list[tuple[str, int]]
    refers_to: str | None = None
    counter: int = 0


class History:
    """The documents a world's terminals issue in the window, in acceptance order.

    Args:
        code_key: the operator's receipt-code key (codes are made as the edge makes them).
        key_of: the signing key of a terminal id.
        next_seqs: per shard, the next free sequence (1 on an empty ledger).
        counters: per terminal, the last counter it already used (0 for a new terminal).
        shards: only the documents of these shards. A terminal's documents, the sales its
            refunds name included, all live in its shard, so the histories of disjoint sets of
            shards are independent parts of the whole one and can be generated in parallel.
    """

    def __init__(
        self, world: World, config: GeneratorConfig, *, code_key: CodeKey,
        key_of: Callable[[str], bytes], next_seqs: dict[int, int] | None = None,
        counters: dict[str, int] | None = None, shards: frozenset[int] | None = None,
    ):
        self.world = world
        self.config = config
        self._code_key = code_key
        self._terminals = [t for t in world.terminals if shards is None or t.shard in shards]
        self._keys = {t.terminal_id: key_of(t.terminal_id) for t in self._terminals}
        self._next_seq = dict(next_seqs or {})
        self._counters = {t.terminal_id: (counters or {}).get(t.terminal_id, 0) for t in world.terminals}
        self._recent: dict[str, deque] = {t.terminal_id: deque(maxlen=_RECENT_SALES_MAX) for t in world.terminals}
        self._rules = Rules(vat_rates_bp=frozenset(config.vat_rates_bp))
        self._profiles: dict[tuple[str, int], np.ndarray] = {}
        self._offline = self._offline_episodes()
        self._scale = config.documents / max(self._expected_volume(), 1e-9)
        self._tiebreak = 0
        self.anomalies: dict = {
            "counter_gaps": {"terminal_id": world.planted.counter_gaps, "missing_counters": []},
            "refund_heavy": {"terminal_id": world.planted.refund_heavy, "refund_rate": REFUND_HEAVY_RATE},
            "duplicates": {"terminal_id": world.planted.duplicates, "pairs": []},
            "late_uploads": [
                {"terminal_id": tid, "first_day": str(config.start + timedelta(days=a)),
                 "last_day": str(config.start + timedelta(days=b))}
                for tid, (a, b) in sorted(self._offline.items())
            ],
        }

    def __iter__(self) -> Iterator[GeneratedSale]:
        pending: list = []
        for i in range(self.config.days):
            day = self.config.start + timedelta(days=i)
            for terminal in self._terminals:
                for item in self._terminal_day(terminal, day, i):
                    heapq.heappush(pending, item)
            # Documents issued later are issued after the next local midnight, so everything
            # accepted before it can go out now, in order.
            boundary = _local_ms(day + timedelta(days=1), 0)
            while pending and pending[0][0] < boundary:
                yield self._accept(heapq.heappop(pending))
        while pending:
            yield self._accept(heapq.heappop(pending))

    def _accept(self, item) -> GeneratedSale:
        accepted_ms, _, terminal, doc, canonical, sale = item
        seq = self._next_seq.get(terminal.shard, 1)
        self._next_seq[terminal.shard] = seq + 1
        code = make_code(self._code_key, terminal.shard, seq, document_hash(canonical))
        if sale is not None:
            self._recent[terminal.terminal_id].append((code, sale.lines, sale.payments[-1][0]))
        return GeneratedSale(terminal.shard, seq, code, accepted_ms, doc, canonical)

    def _expected_volume(self) -> float:
        total = 0.0
        for i in range(self.config.days):
            weekday = (self.config.start + timedelta(days=i)).weekday()
            for t in self.world.terminals:
                if t.kind.hours[weekday] is not None:
                    total += t.intensity * t.kind.weekday_weight[weekday]
        return total

    def _offline_episodes(self) -> dict[str, tuple[int, int]]:
        """Per terminal (first_day, last_day) indexes of a stretch without network."""
        days = self.config.days
        rng = random.Random(f"offline|{self.config.seed}|{self.config.start}|{days}")
        planted = self.world.planted
        episodes = {}
        for t in self.world.terminals:
            if t.terminal_id == planted.late_upload and days >= 3:
                length = min(5, days - 2)
            elif t.terminal_id in (planted.counter_gaps, planted.refund_heavy, planted.duplicates):
                continue
            elif rng.random() < 0.04 and days >= 4:
                length = rng.randint(1, min(3, days - 3))
            else:
                continue
            first = rng.randint(0, days - length - 1)
            episodes[t.terminal_id] = (first, first + length - 1)
        return episodes

    def _terminal_day(self, t: TerminalSpec, day: date, i: int) -> list:
        weekday = day.weekday()
        if t.kind.hours[weekday] is None:
            return []
        rng = random.Random(f"{self.config.seed}|{day}|{t.terminal_id}")
        nrng = np.random.default_rng([self.config.seed, day.toordinal(), t.index])
        sales = int(nrng.poisson(self._scale * t.intensity * t.kind.weekday_weight[weekday]))
        drafts = [self._sale(t.kind, rng, nrng, sec) for sec in self._times(t.kind, weekday, sales, nrng)]
        refund_rate = REFUND_HEAVY_RATE if t.terminal_id == self.world.planted.refund_heavy else t.kind.refund_rate
        recent = self._recent[t.terminal_id]
        if recent:
            for sec in self._times(t.kind, weekday, int(nrng.poisson(sales * refund_rate)), nrng):
                drafts.append(_refund(rng.choice(recent), rng, sec))
            for sec in self._times(t.kind, weekday, int(nrng.poisson(sales * t.kind.correction_rate)), nrng):
                drafts.append(_correction(rng.choice(recent), rng, sec))
        duplicate_of = None
        if t.terminal_id == self.world.planted.duplicates and i % 2 == 0 and sales:
            duplicate_of = drafts[rng.randrange(sales)]
            close_sec = int(t.kind.hours[weekday][1] * 3600) - 1
            copy_sec = min(duplicate_of.sec + rng.randint(10, 50), close_sec)
            drafts.append(_Draft(copy_sec, "sale", duplicate_of.lines, duplicate_of.payments))
        drafts.sort(key=lambda d: d.sec)
        self._number(t.terminal_id, drafts, rng)
        if duplicate_of is not None:
            copy = next(d for d in drafts if d.lines is duplicate_of.lines and d is not duplicate_of)
            self.anomalies["duplicates"]["pairs"].append([duplicate_of.counter, copy.counter])
        return [self._pending(t, day, i, d, rng) for d in drafts]

    def _number(self, terminal_id: str, drafts: list[_Draft], rng: random.Random) -> None:
        counter = self._counters[terminal_id]
        skips = terminal_id == self.world.planted.counter_gaps
        for draft in drafts:
            if skips and rng.random() < 0.03:
                skipped = rng.randint(1, 3)
                self.anomalies["counter_gaps"]["missing_counters"].extend(range(counter + 1, counter + 1 + skipped))
                counter += skipped
            counter += 1
            draft.counter = counter
        self._counters[terminal_id] = counter

    def _pending(self, t: TerminalSpec, day: date, i: int, draft: _Draft, rng: random.Random):
        offset = utc_offset_min(day)
        issued_ms = _local_ms(day, draft.sec) - offset * 60_000
        episode = self._offline.get(t.terminal_id)
        if episode and episode[0] <= i <= episode[1]:
            back = self.config.start + timedelta(days=episode[1] + 1)
            # The backlog goes up, in counter order, when the till is back online the next
            # morning at 08:30.
            accepted_ms = _local_ms(back, 8 * 3600 + 1800) - utc_offset_min(back) * 60_000 + draft.counter
        else:
            accepted_ms = issued_ms + rng.randint(80, 1500)
        doc = self._document(t, day, offset, draft)
        validate_document(doc)
        check_document(doc, self._rules, accepted_ms)
        self._tiebreak += 1
        return (accepted_ms, self._tiebreak, t, doc, canonical_document(doc),
                draft if draft.doc_type == "sale" else None)

    def _document(self, t: TerminalSpec, day: date, offset_min: int, draft: _Draft) -> dict:
        items, gross_by_rate = [], {}
        for product, qty_milli in draft.lines:
            amount = line_amount(qty_milli, product.price_minor)
            items.append({
                "name": product.name, "qty_milli": qty_milli, "unit_price_minor": product.price_minor,
                "amount_minor": amount, "vat_rate_bp": product.vat_rate_bp,
                "sku": product.sku, "category": product.category,
            })
            gross_by_rate[product.vat_rate_bp] = gross_by_rate.get(product.vat_rate_bp, 0) + amount
        hh, rest = divmod(draft.sec, 3600)
        sign = "+" if offset_min >= 0 else "-"
        doc = {
            "terminal_id": t.terminal_id,
            "counter": draft.counter,
            "issued_at": f"{day.isoformat()}T{hh:02d}:{rest // 60:02d}:{rest % 60:02d}"
                         f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}",
            "type": draft.doc_type,
            "currency": self.config.currency,
            "items": items,
            "payments": [{"method": m, "amount_minor": a} for m, a in draft.payments],
            "total_minor": sum(gross_by_rate.values()),
            "vat": [{"rate_bp": r, "gross_minor": g, "vat_minor": vat_included(g, r)}
                    for r, g in sorted(gross_by_rate.items())],
        }
        if draft.refers_to:
            doc["refers_to"] = draft.refers_to
        doc["mac"] = document_mac(self._keys[t.terminal_id], doc)
        return doc

    def _times(self, kind: Kind, weekday: int, n: int, nrng: np.random.Generator) -> list[int]:
        """`n` seconds after local midnight drawn from the kind's intraday traffic."""
        if n <= 0:
            return []
        cdf = self._profiles.get((kind.name, weekday))
        if cdf is None:
            cdf = self._profiles[(kind.name, weekday)] = _minute_cdf(kind, weekday)
        open_min = int(kind.hours[weekday][0] * 60)
        minutes = np.searchsorted(cdf, nrng.random(n), side="right")
        secs = (open_min + minutes) * 60 + nrng.integers(0, 60, n)
        return sorted(int(s) for s in secs)

    def _sale(self, kind: Kind, rng: random.Random, nrng: np.random.Generator, sec: int) -> _Draft:
        picked: dict[Product, int] = {}
        for product in rng.choices(kind.products, [p.popularity for p in kind.products],
                                   k=min(30, 1 + int(nrng.poisson(kind.lines_mean - 1)))):
            qty = rng.randint(150, 1800) if product.weighed else 1000 * rng.choice((1, 1, 1, 1, 2, 2, 3))
            picked[product] = picked.get(product, 0) + qty
        lines = list(picked.items())
        total = sum(line_amount(q, p.price_minor) for p, q in lines)
        cash = kind.cash_share * (0.5 if total > 5000 else 1.0)
        draw = rng.random()
        method = "cash" if draw < cash else "mobile" if draw < cash + kind.mobile_share else "card"
        if total >= 1000 and rng.random() < 0.015:
            voucher = min(rng.choice((500, 1000, 2000)), total - 1)
            return _Draft(sec, "sale", lines, [("voucher", voucher), (method, total - voucher)])
        return _Draft(sec, "sale", lines, [(method, total)])


def _refund(original, rng: random.Random, sec: int) -> _Draft:
    code, lines, method = original
    chosen = list(lines) if rng.random() < 0.4 else [rng.choice(lines)]
    total = sum(line_amount(q, p.price_minor) for p, q in chosen)
    return _Draft(sec, "refund", chosen, [(method, total)], refers_to=code)


def _correction(original, rng: random.Random, sec: int) -> _Draft:
    """A small positive amendment of one line of an earlier sale (a forgotten surcharge)."""
    code, lines, method = original
    product, _ = rng.choice(lines)
    fix = Product(product.sku, f"Correction: {product.name}", product.category,
                  max(1, round(product.price_minor * rng.uniform(0.05, 0.3))), product.vat_rate_bp)
    return _Draft(sec, "correction", [(fix, 1000)], [(method, fix.price_minor)], refers_to=code)


def _minute_cdf(kind: Kind, weekday: int) -> np.ndarray:
    open_h, close_h = kind.hours[weekday]
    hours = (np.arange(int(open_h * 60), int(close_h * 60)) + 0.5) / 60.0
    weight = np.full(hours.shape, 0.15)
    for peak_h, spread_h, peak_weight in kind.peaks:
        weight += peak_weight * np.exp(-0.5 * ((hours - peak_h) / spread_h) ** 2)
    cdf = np.cumsum(weight)
    return cdf / cdf[-1]


def _local_ms(day: date, sec: int) -> int:
    """Milliseconds of local wall time `day` + `sec` read as if it were UTC."""
    return ((day.toordinal() - _EPOCH_ORDINAL) * 86400 + sec) * 1000
