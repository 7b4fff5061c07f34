"""The synthetic data is deterministic, realistic in the ways the pipelines care about, and
seeding it twice writes nothing twice."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from localdev import seed
from localdev.generator import BAD_KINDS, Scale, ShopStreamData

DAY = date(2026, 11, 10)


def test_the_same_seed_gives_the_same_day():
    assert ShopStreamData(seed=3).day(DAY) == ShopStreamData(seed=3).day(DAY)
    assert ShopStreamData(seed=3).day(DAY).orders != ShopStreamData(seed=4).day(DAY).orders


def test_a_day_holds_new_late_and_changed_orders():
    data = ShopStreamData(seed=3, scale=Scale(orders_per_day=400))
    day = data.day(DAY)
    created = {o["created_at"].date() for o in day.orders}
    assert DAY in created and created & {DAY - timedelta(days=1), DAY - timedelta(days=2)}, "late arrivals"
    assert all(o["updated_at"].date() == DAY for o in day.orders)
    assert day.changes and {c["status"] for c in day.changes} <= {
        "paid",
        "shipped",
        "delivered",
        "refunded",
        "cancelled",
    }
    refunds = [c for c in day.changes if c["status"] == "refunded"]
    assert all(c["refunded_amount"] > 0 for c in refunds)


def test_contract_breaking_rows_follow_the_share():
    data = ShopStreamData(seed=3, scale=Scale(orders_per_day=400, bad_share=0.05))
    day = data.day(DAY)
    assert sum(day.bad.values()) == 20
    assert set(day.bad) == set(BAD_KINDS)
    assert sum(o["customer_id"] is None for o in day.orders) == day.bad["null_customer"]
    assert sum(o["amount"] < 0 for o in day.orders) == day.bad["negative_amount"]
    ids = [o["order_id"] for o in day.orders]
    assert len(ids) - len(set(ids)) == day.bad["duplicate_id"]


@pytest.mark.parametrize("bad", [{"bad_share": 1.5}, {"orders_per_day": -1}, {"customers": 0}])
def test_a_bad_scale_is_refused(bad):
    with pytest.raises(ValueError):
        Scale(**bad)


@pytest.mark.services
def test_seeding_twice_writes_nothing_twice_and_trickles_today(pg_server):
    pg_server.ensure_database("seed_check")
    dsn = pg_server.url("seed_check")
    data = ShopStreamData(seed=3, scale=Scale(orders_per_day=50, bad_share=0.04))
    days = [DAY - timedelta(days=n) for n in range(4, -1, -1)]
    noon = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC)
    first = seed.seed(dsn, days, data, until=noon)
    assert first > 0
    assert seed.seed(dsn, days, data, until=noon) == 0
    later = seed.seed(dsn, days, data, until=noon + timedelta(hours=12))
    assert later > 0, "the rest of the day arrives"
    with pg_server.connect("seed_check") as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders")
        inserted = cur.fetchone()[0]
    assert inserted == sum(len(data.day(d).orders) for d in days)
