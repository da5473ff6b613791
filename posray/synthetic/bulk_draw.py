"""Vectorised draws of one merchant kind's documents for one day, the arrays behind posray.synthetic.bulk.

The same habits as posray.synthetic.generator (baskets by popularity with repeats merged,
weighed goods, cash/mobile/card by amount, vouchers, refunds of all or one line, repriced
corrections, intraday peaks), drawn for every terminal of a kind at once with numpy. Documents
and their lines are dicts of equally long arrays; a line names its document by index.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from posray.synthetic.catalogue import Kind
from posray.synthetic.generator import _minute_cdf

_PIECES_MILLI = np.array([1, 1, 1, 1, 2, 2, 3]) * 1000
_VOUCHERS = np.array([500, 1000, 2000])
_DAY_S = 86_400


class Catalogue:
    """Every kind's products in flat arrays (a product is its index), and each kind's slice."""

    def __init__(self, kinds: tuple[Kind, ...]):
        products = [p for k in kinds for p in k.products]
        self.offset = dict(zip((k.name for k in kinds), np.cumsum([0] + [len(k.products) for k in kinds])))
        self.price = np.array([p.price_minor for p in products], np.int64)
        self.vat_bp = np.array([p.vat_rate_bp for p in products], np.int64)
        self.weighed = np.array([p.weighed for p in products])
        self.sku = pl.Series([p.sku for p in products], dtype=pl.String)
        self.name = pl.Series([p.name for p in products], dtype=pl.String)
        self.category = pl.Series([p.category for p in products], dtype=pl.String)

    def draw(self, kind: Kind, size: int, rng: np.random.Generator) -> np.ndarray:
        weights = np.array([p.popularity for p in kind.products])
        return self.offset[kind.name] + rng.choice(len(weights), size=size, p=weights / weights.sum())


def half_up_div(numerator: np.ndarray, denominator) -> np.ndarray:
    """posray.domain.transaction.half_up_div for non-negative arrays."""
    quotient, remainder = np.divmod(numerator, denominator)
    return quotient + (2 * remainder >= denominator)


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each count c, concatenated."""
    return np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)


def _times(kind: Kind, weekday: int, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seconds after local midnight from the kind's intraday traffic, ascending per terminal."""
    cdf = _minute_cdf(kind, weekday)
    n = int(counts.sum())
    secs = (int(kind.hours[weekday][0] * 60) + np.searchsorted(cdf, rng.random(n), side="right")) * 60
    secs += rng.integers(0, 60, n)
    owner = np.repeat(np.arange(counts.size), counts)
    return secs[np.lexsort((secs, owner))]


def _baskets(cat: Catalogue, kind: Kind, n: int, rng: np.random.Generator):
    """Lines (sale, product, qty_milli) of `n` sales, repeats of a product merged, in pick order."""
    picks = np.minimum(30, 1 + rng.poisson(kind.lines_mean - 1, n))
    sale = np.repeat(np.arange(n), picks)
    product = cat.draw(kind, sale.size, rng)
    qty = np.where(cat.weighed[product], rng.integers(150, 1801, sale.size), rng.choice(_PIECES_MILLI, sale.size))
    width = len(cat.price)
    keys, first, inverse = np.unique(sale * width + product, return_index=True, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=qty).astype(np.int64)
    order = np.argsort(first, kind="stable")
    return keys[order] // width, keys[order] % width, merged[order]


def _payments(kind: Kind, total: np.ndarray, rng: np.random.Generator):
    """Method index (METHODS) and voucher part of each sale, as the generator draws them."""
    cash = kind.cash_share * np.where(total > 5000, 0.5, 1.0)
    draw = rng.random(total.size)
    method = np.where(draw < cash, 0, np.where(draw < cash + kind.mobile_share, 1, 2))
    split = (total >= 1000) & (rng.random(total.size) < 0.015)
    voucher = np.where(split, np.minimum(rng.choice(_VOUCHERS, total.size), total - 1), 0)
    return method, voucher


def _earlier_sales(owner, secs, sale_owner, sale_secs, starts, rng):
    """For each (owner, second), a random earlier sale of the same terminal, or -1 if none."""
    key = sale_owner.astype(np.int64) * _DAY_S + sale_secs
    before = np.searchsorted(key, owner.astype(np.int64) * _DAY_S + secs, side="right") - starts[owner]
    picked = starts[owner] + (rng.random(owner.size) * before).astype(np.int64)
    return np.where(before > 0, picked, -1)


def _follow_ups(cat, kind, weekday, doc_type, rate, sales, sale_lines, rng):
    """Refunds (all lines 40 % of the time, else one) or corrections (one line, repriced) of
    earlier sales of the same terminal and day: (documents, lines) arrays, lines by document."""
    counts = rng.poisson(sales["n_per_owner"] * rate)
    secs = _times(kind, weekday, counts, rng)
    owner = np.repeat(np.arange(counts.size), counts)
    orig = _earlier_sales(owner, secs, sales["owner"], sales["sec"], sales["starts"], rng)
    keep = orig >= 0
    owner, secs, orig = owner[keep], secs[keep], orig[keep]
    n_lines, first_line = sales["n_lines"][orig], sales["first_line"][orig]
    whole = (rng.random(orig.size) < 0.4) if doc_type == 1 else np.zeros(orig.size, bool)
    one = first_line + (rng.random(orig.size) * n_lines).astype(np.int64)
    take = np.where(whole, n_lines, 1)
    source = np.repeat(np.where(whole, first_line, one), take) + ragged_arange(take)
    product, qty = sale_lines["product"][source], sale_lines["qty"][source]
    price = sale_lines["price"][source]
    if doc_type == 2:
        price = np.maximum(1, np.round(price * rng.uniform(0.05, 0.3, source.size))).astype(np.int64)
        qty = np.full(source.size, 1000, np.int64)
    amount = half_up_div(qty * price, 1000)
    docs = {"owner": owner, "sec": secs, "type": np.full(orig.size, doc_type), "method": sales["method"][orig],
            "voucher": np.zeros(orig.size, np.int64), "orig": orig}
    lines = {"doc": np.repeat(np.arange(orig.size), take), "product": product, "qty": qty, "price": price,
             "amount": amount, "fix": np.full(source.size, doc_type == 2)}
    return docs, lines


def draw_kind_day(cat: Catalogue, kind: Kind, weekday: int, expected: np.ndarray, rng: np.random.Generator):
    """One kind's documents of one day (`expected` sales per terminal): sales, then refunds,
    then corrections, with their lines; `owner` is the terminal's position in `expected`."""
    counts = rng.poisson(expected)
    secs = _times(kind, weekday, counts, rng)
    sale, product, qty = _baskets(cat, kind, secs.size, rng)
    price = cat.price[product]
    amount = half_up_div(qty * price, 1000)
    method, voucher = _payments(kind, np.bincount(sale, amount, minlength=secs.size).astype(np.int64), rng)
    n_lines = np.bincount(sale, minlength=secs.size)
    sales = {"owner": np.repeat(np.arange(counts.size), counts), "sec": secs, "type": np.zeros(secs.size, np.int64),
             "method": method, "voucher": voucher, "orig": np.full(secs.size, -1)}
    lines = {"doc": sale, "product": product, "qty": qty, "price": price, "amount": amount,
             "fix": np.zeros(sale.size, bool)}
    context = sales | {"n_per_owner": counts, "starts": np.cumsum(counts) - counts,
                       "n_lines": n_lines, "first_line": np.cumsum(n_lines) - n_lines}
    parts = [(sales, lines)]
    for doc_type, rate in ((1, kind.refund_rate), (2, kind.correction_rate)):
        parts.append(_follow_ups(cat, kind, weekday, doc_type, rate, context, lines, rng))
    return concat(parts, originals_in_first=True)


def concat(parts, originals_in_first: bool = False):
    """Documents and lines of several parts as one. Line indexes shift with their part; so do
    originals, unless they all are documents of the first part (a kind's sales)."""
    docs, lines, offset = [], [], 0
    for d, l in parts:
        shift = 0 if originals_in_first else offset
        docs.append(d | {"orig": np.where(d["orig"] >= 0, d["orig"] + shift, -1)})
        lines.append(l | {"doc": l["doc"] + offset})
        offset += d["sec"].size
    return ({k: np.concatenate([d[k] for d in docs]) for k in docs[0]},
            {k: np.concatenate([l[k] for l in lines]) for k in lines[0]})
