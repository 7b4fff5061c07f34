"""What the pipelines must produce, computed in plain Python from the generator's rows.

This deliberately shares nothing with include/shopstream: it replays the source database the
way the seeder fills it and applies the data contract and the metric definitions by hand.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from localdev.generator import ShopStreamData

STATUSES = {"placed", "paid", "shipped", "delivered", "cancelled", "refunded"}


def source_rows(data: ShopStreamData, first: date, until: datetime) -> list[dict]:
    """The source's orders table at ``until``: rows in insertion order, changes applied."""
    rows: list[dict] = []
    day = first
    while day <= until.date():
        generated = data.day(day)
        rows.extend(dict(o) for o in generated.orders if o["updated_at"] < until)
        for change in generated.changes:
            if change["updated_at"] < until:
                for row in rows:
                    if row["order_id"] == change["order_id"]:
                        row.update(change)
        day += timedelta(days=1)
    return rows


def window(day: date) -> tuple[datetime, datetime]:
    """The data interval of business day ``day``: 02:00 that day to 02:00 the next (UTC)."""
    from datetime import UTC

    start = datetime.combine(day, time(2), tzinfo=UTC)
    return start, start + timedelta(days=1)


def extract(rows: list[dict], day: date) -> list[dict]:
    start, end = window(day)
    return [r for r in rows if start <= r["updated_at"] < end]


def problem(row: dict, seen: set[int]) -> str | None:
    """The contract a row breaks, by the rules of docs/architecture.md (first one wins)."""
    if row["customer_id"] is None:
        return "customer_id is missing"
    if row["amount"] < 0:
        return "breaks amount_not_negative"
    if row["status"] not in STATUSES:
        return "breaks known_status"
    if row["order_id"] in seen:
        return "duplicate order_id"
    return None


def split(extracted: list[dict]) -> tuple[list[dict], Counter]:
    """(good rows, count of rejected rows by reason)."""
    good, rejected, seen = [], Counter(), set()
    for row in extracted:
        reason = problem(row, seen)
        if reason:
            rejected[reason] += 1
        else:
            seen.add(row["order_id"])  # a rejected row takes no key from a later good one
            good.append(row)
    return good, rejected


def merge(gold: dict[int, dict], good: list[dict]) -> dict[int, dict]:
    merged = dict(gold)
    for row in good:
        merged[row["order_id"]] = row
    return merged


def customer_360(gold: dict[int, dict], categories: dict[int, str], countries: dict[int, str]) -> dict[int, dict]:
    kept = [o for o in gold.values() if o["status"] != "cancelled"]
    by_customer: dict[int, list[dict]] = defaultdict(list)
    for order in kept:
        by_customer[order["customer_id"]].append(order)
    result = {}
    for customer, orders in by_customer.items():
        counts = Counter(categories[o["product_id"]] for o in orders)
        preferred = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        result[customer] = {
            "country": countries[customer],
            "lifetime_value": sum(o["amount"] - o["refunded_amount"] for o in orders),
            "order_count": len(orders),
            "first_order_at": min(o["created_at"] for o in orders),
            "last_order_at": max(o["created_at"] for o in orders),
            "preferred_category": preferred,
        }
    return result


def daily_report(gold: dict[int, dict], categories: dict[int, str], day: date) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for order in gold.values():
        if order["status"] == "cancelled" or order["created_at"].date() != day:
            continue
        entry = rows.setdefault(
            categories[order["product_id"]], {"orders": 0, "revenue": Decimal(0), "refunds": Decimal(0)}
        )
        entry["orders"] += 1
        entry["revenue"] += order["amount"]
        entry["refunds"] += order["refunded_amount"]
    return rows
