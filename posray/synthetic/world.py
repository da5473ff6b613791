"""The retail world the generator draws: merchants of several kinds, their stores and terminals.

Everything derives from GeneratorConfig.seed, so the same configuration always builds the same
world; the generator (posray.synthetic.generator) draws the documents of its terminals.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from posray.synthetic.catalogue import KINDS, Kind
from posray.domain.transaction import shard_of

_SURNAMES = ("Huber", "Gruber", "Wagner", "Bauer", "Pichler", "Steiner", "Moser", "Mayer",
             "Hofer", "Leitner", "Berger", "Fuchs", "Eder", "Weber", "Schmid", "Winkler")


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    """What to generate: about `documents` receipts over `days` days from `start`."""

    seed: int = 7
    merchants: int = 6
    start: date = date(2026, 3, 2)
    days: int = 14
    documents: int = 5000
    shard_count: int = 8
    currency: str = "EUR"
    anomalies: bool = True
    vat_rates_bp: tuple[int, ...] = (0, 500, 1000, 1300, 2000)


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    name: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class TerminalSpec:
    """A till: its store (registered as the terminal's label) and how busy it is."""

    terminal_id: str
    merchant_id: str
    store_id: str
    kind: Kind
    intensity: float
    index: int
    shard: int


@dataclass(frozen=True, slots=True)
class Planted:
    """Terminal ids carrying the planted anomalies (None when anomalies are off)."""

    counter_gaps: str | None = None
    refund_heavy: str | None = None
    late_upload: str | None = None
    duplicates: str | None = None


@dataclass(frozen=True, slots=True)
class World:
    seed: int
    merchants: tuple[Merchant, ...]
    terminals: tuple[TerminalSpec, ...]
    planted: Planted


def utc_offset_min(day: date) -> int:
    """Central European offset of a shop day: +120 from the last Sunday of March to the
    Saturday before the last Sunday of October, else +60 (shops are shut when clocks change)."""
    def last_sunday(month: int) -> date:
        last = date(day.year, month, 31)
        return last - timedelta(days=(last.weekday() + 1) % 7)

    return 120 if last_sunday(3) <= day < last_sunday(10) else 60


def build_world(config: GeneratorConfig) -> World:
    """Merchants of several kinds with their stores and terminals, drawn from `config.seed`."""
    rng = random.Random(f"world|{config.seed}")
    merchants, terminals = [], []
    for m in range(config.merchants):
        kind = KINDS[m % len(KINDS)]
        merchant_id = f"w{config.seed}-{kind.name}-{m + 1:02d}"
        merchants.append(Merchant(merchant_id, f"{rng.choice(_SURNAMES)} {kind.title}", kind))
        for s in range(1, rng.randint(*kind.stores) + 1):
            store_id = f"{merchant_id}-s{s}"
            size = rng.lognormvariate(0.0, 0.35)
            for t in range(1, rng.randint(*kind.terminals_per_store) + 1):
                terminal_id = f"{store_id}-t{t}"
                if len(terminal_id) > 32:
                    raise ValueError(f"seed {config.seed} makes terminal ids over 32 characters")
                terminals.append(TerminalSpec(
                    terminal_id, merchant_id, store_id, kind, kind.intensity * size * rng.uniform(0.8, 1.2),
                    len(terminals), shard_of(terminal_id, config.shard_count),
                ))
    return World(config.seed, tuple(merchants), tuple(terminals), _plant(config, terminals, rng))


def _plant(config: GeneratorConfig, terminals: list[TerminalSpec], rng: random.Random) -> Planted:
    if not config.anomalies or len(terminals) < 4:
        return Planted()
    # The busiest terminal of the four busiest merchants (one anomaly each, when there are
    # four merchants), so every anomaly shows even in a short window.
    busiest: dict[str, TerminalSpec] = {}
    for t in sorted(terminals, key=lambda t: -t.intensity):
        busiest.setdefault(t.merchant_id, t)
    chosen = sorted(busiest.values(), key=lambda t: -t.intensity)[:4]
    chosen += [t for t in sorted(terminals, key=lambda t: -t.intensity) if t not in chosen][: 4 - len(chosen)]
    rng.shuffle(chosen)
    return Planted(*(t.terminal_id for t in chosen))
