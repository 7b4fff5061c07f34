"""Deterministic synthetic ShopStream data: customers, products and orders day by day.

Development and test tooling, never deployed. The same seed and scale give the same rows on
every machine, so tests can compute what the pipelines must produce straight from here.

What a day holds, like ShopStream's real orders database:
- new orders created that day;
- late arrivals: orders created a day or two earlier that reach the database only now;
- changes to earlier orders (status moves on, refunds), which bump ``updated_at``;
- a configurable share of contract-breaking rows: a null customer, a negative amount, an
  unknown status, or an ``order_id`` that another row of the day already uses.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

CATEGORIES = ("apparel", "beauty", "books", "electronics", "garden", "grocery", "home", "sports", "toys")
COUNTRIES = ("DE", "FR", "GB", "NL", "US", "ES", "IT", "SE")
BAD_KINDS = ("null_customer", "negative_amount", "unknown_status", "duplicate_id")
EPOCH = date(2024, 1, 1)  # order ids encode the day they were created relative to this
IDS_PER_DAY = 10_000_000


@dataclass(frozen=True)
class Scale:
    """How much data: a few hundred orders a day for development, millions for benchmarks."""

    customers: int = 500
    products: int = 200
    orders_per_day: int = 300
    changed_share: float = 0.3  # of orders, those whose status moves on in the week after
    late_share: float = 0.03  # of a day's orders, arriving a day or two late
    bad_share: float = 0.0  # contract-breaking rows, as a share of the day's new orders

    def __post_init__(self) -> None:
        for name in ("changed_share", "late_share", "bad_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if min(self.customers, self.products) < 1 or self.orders_per_day < 0:
            raise ValueError("customers and products must be at least 1, orders_per_day at least 0")
        if self.orders_per_day >= IDS_PER_DAY // 2:
            raise ValueError(f"orders_per_day must stay below {IDS_PER_DAY // 2}")


@dataclass
class Day:
    """What reaches the orders database on one day."""

    day: date
    orders: list[dict] = field(default_factory=list)  # rows inserted (new, late, and bad ones)
    changes: list[dict] = field(default_factory=list)  # updates to earlier orders
    bad: dict[str, int] = field(default_factory=dict)  # contract-breaking rows by kind


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))


def sku(product_id: int) -> str:
    """Products and the inventory API name SKUs alike (localdev.inventory_api.sku)."""
    return f"SKU-{product_id:05d}"


class ShopStreamData:
    """The synthetic ShopStream: ``customers()``, ``products()`` and ``day(d)`` for any date."""

    def __init__(self, seed: int = 7, scale: Scale | None = None) -> None:
        self.seed = seed
        self.scale = scale or Scale()

    def customers(self) -> list[dict]:
        rng = _rng(self.seed, "customers")
        rows = []
        for customer_id in range(1, self.scale.customers + 1):
            created = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(500_000))
            rows.append(
                {
                    "customer_id": customer_id,
                    "email": f"customer{customer_id}@example.com",
                    "full_name": f"Customer {customer_id}",
                    "country": rng.choice(COUNTRIES),
                    "created_at": created,
                    "updated_at": created,
                }
            )
        return rows

    def products(self) -> list[dict]:
        rng = _rng(self.seed, "products")
        return [
            {
                "product_id": product_id,
                "sku": sku(product_id),
                "name": f"Product {product_id}",
                "category": CATEGORIES[product_id % len(CATEGORIES)],
                "unit_price": Decimal(rng.randrange(199, 49_999)) / 100,
                "updated_at": datetime(2023, 1, 1, tzinfo=UTC),
            }
            for product_id in range(1, self.scale.products + 1)
        ]

    def _prices(self) -> dict[int, Decimal]:
        return {p["product_id"]: p["unit_price"] for p in self.products()}

    def new_orders(self, day: date, prices: dict[int, Decimal] | None = None) -> list[dict]:
        """The orders created on ``day`` (good ones only, before any later change)."""
        prices = prices or self._prices()
        rng = _rng(self.seed, "orders", day.isoformat())
        base = (day - EPOCH).days * IDS_PER_DAY
        rows = []
        for index in range(self.scale.orders_per_day):
            product_id = rng.randrange(1, self.scale.products + 1)
            quantity = rng.choice((1, 1, 1, 2, 2, 3))
            created = _at(day, rng)
            rows.append(
                {
                    "order_id": base + index + 1,
                    "customer_id": rng.randrange(1, self.scale.customers + 1),
                    "product_id": product_id,
                    "quantity": quantity,
                    "amount": prices[product_id] * quantity,
                    "status": "placed",
                    "refunded_amount": Decimal("0.00"),
                    "created_at": created,
                    "updated_at": created,
                }
            )
        return rows

    def _is_late(self, order: dict) -> int:
        """Days (1 or 2) that ``order`` arrives late, or 0."""
        rng = _rng(self.seed, "late", order["order_id"])
        return rng.choice((1, 2)) if rng.random() < self.scale.late_share else 0

    def day(self, day: date) -> Day:
        """Everything that reaches the orders database on ``day``."""
        prices = self._prices()
        result = Day(day)
        for order in self.new_orders(day, prices):
            if not self._is_late(order):
                result.orders.append(order)
        for back in (1, 2):
            for order in self.new_orders(day - timedelta(days=back), prices):
                if self._is_late(order) == back:
                    arrived = dict(order)
                    arrived["updated_at"] = _at(day, _rng(self.seed, "arrival", order["order_id"]))
                    result.orders.append(arrived)
        result.changes = self._changes(day, prices)
        self._add_bad_rows(result)
        return result

    def lifecycle(self, order: dict) -> list[tuple[int, str, Decimal]]:
        """What happens to ``order`` after it is placed: (days after creation, status, refunded)."""
        rng = _rng(self.seed, "lifecycle", order["order_id"])
        if rng.random() >= self.scale.changed_share:
            return []
        if rng.random() < 0.15:
            return [(rng.randrange(3, 8), "cancelled", Decimal("0.00"))]
        events = [(3, "paid", Decimal("0.00")), (4, "shipped", Decimal("0.00")), (6, "delivered", Decimal("0.00"))]
        if rng.random() < 0.2:
            events.append((7, "refunded", order["amount"]))
        return events

    def _changes(self, day: date, prices: dict[int, Decimal]) -> list[dict]:
        changes = []
        for back in range(3, 8):  # orders from three to seven days ago, surely arrived by now
            for order in self.new_orders(day - timedelta(days=back), prices):
                for offset, status, refunded in self.lifecycle(order):
                    if offset == back:
                        changes.append(
                            {
                                "order_id": order["order_id"],
                                "status": status,
                                "refunded_amount": refunded,
                                "updated_at": _at(day, _rng(self.seed, "change", order["order_id"], status)),
                            }
                        )
        return changes

    def as_of(self, order: dict, day: date) -> dict:
        """``order`` as the database holds it at the end of ``day`` (after its changes so far)."""
        current = dict(order)
        created = order["created_at"].date()
        for offset, status, refunded in self.lifecycle(order):
            change_day = created + timedelta(days=offset)
            if change_day <= day:
                current.update(
                    status=status,
                    refunded_amount=refunded,
                    updated_at=_at(change_day, _rng(self.seed, "change", order["order_id"], status)),
                )
        return current

    def _add_bad_rows(self, result: Day) -> None:
        count = round(self.scale.orders_per_day * self.scale.bad_share)
        if not count or not result.orders:
            return
        rng = _rng(self.seed, "bad", result.day.isoformat())
        base = (result.day - EPOCH).days * IDS_PER_DAY + IDS_PER_DAY // 2
        good = list(result.orders)
        for index in range(count):
            kind = BAD_KINDS[index % len(BAD_KINDS)]
            row = dict(rng.choice(good))
            row["order_id"] = base + index + 1
            if kind == "null_customer":
                row["customer_id"] = None
            elif kind == "negative_amount":
                row["amount"] = -abs(row["amount"])
            elif kind == "unknown_status":
                row["status"] = "teleported"
            else:
                row["order_id"] = rng.choice(good)["order_id"]
            result.orders.append(row)
            result.bad[kind] = result.bad.get(kind, 0) + 1
