"""The kinds of merchants the data generator knows: products, VAT rates, hours and habits.

Plain data, no randomness: posray.synthetic.generator draws a world and its documents from it.
Prices are EUR cents; weighed products are priced per kilogram (qty_milli = grams). VAT rates
are those of posray's default rules (0, 5, 10, 13 and 20 %).
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSED = None


@dataclass(frozen=True, slots=True)
class Product:
    """One article of a merchant kind's catalogue."""

    sku: str
    name: str
    category: str
    price_minor: int
    vat_rate_bp: int
    popularity: float = 1.0
    weighed: bool = False


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind of merchant: what it sells and how its customers shop.

    `hours` has one (open_h, close_h) pair per weekday, Monday first, or CLOSED; `peaks` are
    (hour, spread_h, weight) bumps of the intraday traffic; `weekday_weight` scales a day's
    traffic; `intensity` is the relative number of receipts per terminal and open day.
    """

    name: str
    title: str
    products: tuple[Product, ...]
    hours: tuple[tuple[float, float] | None, ...]
    peaks: tuple[tuple[float, float, float], ...]
    weekday_weight: tuple[float, ...]
    intensity: float
    lines_mean: float
    cash_share: float
    mobile_share: float
    refund_rate: float
    correction_rate: float
    stores: tuple[int, int]
    terminals_per_store: tuple[int, int]


def _p(sku, name, category, price_minor, vat_rate_bp, popularity=1.0, weighed=False) -> Product:
    return Product(sku, name, category, price_minor, vat_rate_bp, popularity, weighed)


BAKERY = Kind(
    name="bakery", title="Bakery",
    products=(
        _p("BK-001", "Rye bread 750 g", "bread", 389, 1000, 3.0),
        _p("BK-002", "Kaiser roll", "bread", 45, 1000, 8.0),
        _p("BK-003", "Wholegrain loaf", "bread", 429, 1000, 2.0),
        _p("BK-010", "Croissant", "pastry", 139, 1000, 5.0),
        _p("BK-011", "Apple strudel slice", "pastry", 320, 1000, 2.0),
        _p("BK-012", "Poppy seed pastry", "pastry", 189, 1000, 1.5),
        _p("BK-020", "Sachertorte slice", "cakes", 450, 1000, 1.0),
        _p("BK-030", "Ham and cheese sandwich", "snacks", 459, 1000, 2.5),
        _p("BK-040", "Coffee to go", "hot drinks", 290, 2000, 4.0),
        _p("BK-041", "Orange juice 0.33 l", "cold drinks", 249, 2000, 1.0),
    ),
    hours=((6, 19), (6, 19), (6, 19), (6, 19), (6, 19), (6, 17), (7, 12)),
    peaks=((7.5, 1.0, 3.0), (12.3, 1.0, 1.5), (16.8, 1.3, 1.5)),
    weekday_weight=(1.0, 0.95, 0.95, 1.0, 1.1, 1.5, 0.9),
    intensity=1.6, lines_mean=2.2, cash_share=0.55, mobile_share=0.1,
    refund_rate=0.004, correction_rate=0.002, stores=(1, 3), terminals_per_store=(1, 2),
)

GROCERY = Kind(
    name="grocery", title="Grocery",
    products=(
        _p("GR-001", "Bananas", "produce", 199, 1000, 4.0, weighed=True),
        _p("GR-002", "Tomatoes", "produce", 349, 1000, 3.0, weighed=True),
        _p("GR-003", "Apples", "produce", 279, 1000, 3.0, weighed=True),
        _p("GR-010", "Milk 1 l", "dairy", 149, 1000, 5.0),
        _p("GR-011", "Butter 250 g", "dairy", 299, 1000, 2.5),
        _p("GR-012", "Gouda", "dairy", 1290, 1000, 1.5, weighed=True),
        _p("GR-020", "Minced beef", "meat", 1190, 1000, 1.5, weighed=True),
        _p("GR-021", "Chicken breast", "meat", 1490, 1000, 1.5, weighed=True),
        _p("GR-030", "Sparkling water 1.5 l", "beverages", 69, 2000, 3.0),
        _p("GR-031", "Cola 1.5 l", "beverages", 219, 2000, 2.0),
        _p("GR-032", "Red wine 0.75 l", "alcohol", 799, 2000, 1.0),
        _p("GR-033", "Lager 0.5 l", "alcohol", 129, 2000, 2.5),
        _p("GR-040", "Dish soap", "household", 249, 2000, 1.0),
        _p("GR-041", "Toilet paper 8 rolls", "household", 449, 2000, 1.2),
        _p("GR-050", "Potato crisps", "snacks", 229, 1000, 2.0),
        _p("GR-060", "Bottle deposit", "deposit", 25, 0, 1.5),
        _p("GR-070", "Daily newspaper", "press", 250, 500, 0.8),
    ),
    hours=((7, 20), (7, 20), (7, 20), (7, 20), (7, 20), (7, 18), CLOSED),
    peaks=((11.5, 1.5, 1.0), (17.5, 1.5, 2.0)),
    weekday_weight=(0.9, 0.85, 0.9, 0.95, 1.2, 1.6, 0.0),
    intensity=2.5, lines_mean=6.0, cash_share=0.35, mobile_share=0.1,
    refund_rate=0.006, correction_rate=0.002, stores=(2, 4), terminals_per_store=(2, 4),
)

CAFE = Kind(
    name="cafe", title="Café",
    products=(
        _p("CF-001", "Espresso", "hot drinks", 260, 2000, 4.0),
        _p("CF-002", "Melange", "hot drinks", 420, 2000, 4.0),
        _p("CF-003", "Tea", "hot drinks", 380, 2000, 1.5),
        _p("CF-010", "Lemonade", "cold drinks", 450, 2000, 1.5),
        _p("CF-011", "Beer 0.5 l", "alcohol", 520, 2000, 1.5),
        _p("CF-020", "Breakfast plate", "food", 1190, 1000, 1.5),
        _p("CF-021", "Toast", "food", 650, 1000, 1.5),
        _p("CF-030", "Apple strudel", "cakes", 490, 1000, 2.0),
        _p("CF-040", "Newspaper", "press", 300, 500, 0.3),
    ),
    hours=((8, 22), (8, 22), (8, 22), (8, 22), (8, 23), (9, 23), (9, 20)),
    peaks=((9.5, 1.2, 2.0), (15.0, 1.5, 1.5), (19.5, 1.5, 1.5)),
    weekday_weight=(0.8, 0.85, 0.9, 0.95, 1.2, 1.4, 1.1),
    intensity=1.0, lines_mean=2.5, cash_share=0.5, mobile_share=0.15,
    refund_rate=0.003, correction_rate=0.004, stores=(1, 2), terminals_per_store=(1, 2),
)

PHARMACY = Kind(
    name="pharmacy", title="Pharmacy",
    products=(
        _p("PH-001", "Ibuprofen 400 mg", "medicine", 690, 1000, 3.0),
        _p("PH-002", "Cough syrup", "medicine", 1090, 1000, 2.0),
        _p("PH-003", "Nasal spray", "medicine", 590, 1000, 2.0),
        _p("PH-010", "Vitamin C", "supplements", 890, 2000, 1.5),
        _p("PH-011", "Magnesium", "supplements", 990, 2000, 1.2),
        _p("PH-020", "Sun cream", "cosmetics", 1490, 2000, 1.0),
        _p("PH-021", "Hand cream", "cosmetics", 690, 2000, 1.0),
        _p("PH-030", "Baby formula", "baby", 1990, 1000, 0.6),
        _p("PH-040", "Plasters", "first aid", 390, 2000, 1.5),
    ),
    hours=((8, 18), (8, 18), (8, 18), (8, 18), (8, 18), (8, 12), CLOSED),
    peaks=((10.0, 1.5, 1.5), (17.0, 1.0, 1.2)),
    weekday_weight=(1.2, 1.0, 1.0, 1.0, 1.0, 0.7, 0.0),
    intensity=0.8, lines_mean=1.6, cash_share=0.3, mobile_share=0.1,
    refund_rate=0.005, correction_rate=0.002, stores=(1, 2), terminals_per_store=(1, 2),
)

FASHION = Kind(
    name="fashion", title="Fashion",
    products=(
        _p("FA-001", "T-shirt", "tops", 1999, 2000, 3.0),
        _p("FA-002", "Shirt", "tops", 3999, 2000, 1.5),
        _p("FA-003", "Sweater", "tops", 4999, 2000, 1.0),
        _p("FA-010", "Jeans", "trousers", 5999, 2000, 1.5),
        _p("FA-011", "Chinos", "trousers", 4999, 2000, 1.0),
        _p("FA-020", "Sneakers", "shoes", 7999, 2000, 1.0),
        _p("FA-030", "Socks 3-pack", "accessories", 999, 2000, 2.0),
        _p("FA-031", "Belt", "accessories", 2499, 2000, 0.8),
    ),
    hours=((10, 19), (10, 19), (10, 19), (10, 19), (10, 20), (9, 18), CLOSED),
    peaks=((13.0, 1.5, 1.0), (17.0, 1.5, 1.5)),
    weekday_weight=(0.7, 0.7, 0.8, 0.9, 1.3, 2.0, 0.0),
    intensity=0.5, lines_mean=1.7, cash_share=0.2, mobile_share=0.15,
    refund_rate=0.05, correction_rate=0.002, stores=(1, 3), terminals_per_store=(1, 2),
)

FLORIST = Kind(
    name="florist", title="Florist",
    products=(
        _p("FL-001", "Bouquet small", "bouquets", 1990, 1300, 2.0),
        _p("FL-002", "Bouquet large", "bouquets", 3990, 1300, 1.0),
        _p("FL-003", "Roses", "cut flowers", 290, 1300, 3.0),
        _p("FL-010", "Orchid", "plants", 2490, 1300, 1.0),
        _p("FL-011", "Herbs pot", "plants", 390, 1300, 1.5),
        _p("FL-020", "Ceramic pot", "accessories", 1290, 2000, 0.7),
        _p("FL-021", "Greeting card", "accessories", 350, 2000, 1.5),
    ),
    hours=((8, 18), (8, 18), (8, 18), (8, 18), (8, 18), (8, 14), CLOSED),
    peaks=((11.0, 2.0, 1.0), (16.5, 1.5, 1.5)),
    weekday_weight=(0.8, 0.8, 0.9, 1.0, 1.4, 1.6, 0.0),
    intensity=0.5, lines_mean=1.4, cash_share=0.45, mobile_share=0.1,
    refund_rate=0.003, correction_rate=0.002, stores=(1, 1), terminals_per_store=(1, 1),
)

KINDS: tuple[Kind, ...] = (GROCERY, BAKERY, CAFE, PHARMACY, FASHION, FLORIST)
