"""A generated day with hostile source rows, through the real DAGs: sales, analytics, observability.

The rows the hostile-data test found harmful are written into the source database beside the
generator's day; each must be quarantined with its reason, and every DAG after the ingest must
still succeed on what was merged.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

import pytest

from localdev.stack import SOURCE_DB
from tests.pipelines.conftest import MONDAY

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform-2")]

DAY = MONDAY + timedelta(days=2)  # a Wednesday no other test runs
INSIDE = datetime.combine(DAY, time(9), tzinfo=UTC)
HOSTILE = {
    # order_id: (customer_id, product_id, quantity, amount, status, created_at) and the reason's start
    990_000_001: ((1, 999_999, 1, "10.00", "paid", INSIDE), "sku is missing"),
    990_000_002: ((999_999, 1, 1, "10.00", "paid", INSIDE), "customer_id='999999' is in no row of gold.customers"),
    990_000_003: ((1, 1, 0, "10.00", "paid", INSIDE), "breaks quantity_positive"),
    990_000_004: ((1, 1, 1, "NaN", "paid", INSIDE), "breaks amounts_are_numbers"),
    990_000_005: ((1, 1, 1, "10.00", "paid", datetime(1, 1, 1, tzinfo=UTC)), "breaks created_at_in_range"),
    990_000_006: ((1, 1, 1, "10.00", "NA", INSIDE), "breaks known_status"),
}
GOOD_EXTREMES = {990_000_007: (2, 2, 2**31 - 1, "9999999999.99", "paid", INSIDE)}


@pytest.fixture(scope="module")
def hostile_day(platform):
    platform.seed_until(datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC))
    rows = {order_id: values for order_id, (values, _) in HOSTILE.items()} | GOOD_EXTREMES
    for order_id, (customer, product, quantity, amount, status, created) in rows.items():
        platform.query(
            SOURCE_DB,
            "INSERT INTO orders (order_id, customer_id, product_id, quantity, amount, status, refunded_amount,"
            " created_at, updated_at) SELECT %s, %s, %s, %s, %s::numeric, %s, 0, %s, %s"
            " WHERE NOT EXISTS (SELECT 1 FROM orders WHERE order_id = %s)",
            (order_id, customer, product, quantity, amount, status, created, INSIDE, order_id),
        )
    # The hostile rows are many for one day: let the run merge the rest rather than stop.
    platform.airflow("variables", "set", "shopstream_bad_row_threshold", "0.5")
    try:
        sales = platform.run_sales(DAY)
    finally:
        platform.airflow("variables", "set", "shopstream_bad_row_threshold", "0.05")
    return sales


def test_each_hostile_row_is_quarantined_with_its_reason(platform, hostile_day):
    assert hostile_day["__run__"] == "success", hostile_day["__log__"][-4000:]
    body = platform.lake().get_object(Bucket="shopstream", Key=f"quarantine/orders/ds={DAY}/rejected.csv")["Body"]
    reasons = {int(r["order_id"]): r["reason"] for r in csv.DictReader(io.StringIO(body.read().decode()))}
    for order_id, (_, reason) in HOSTILE.items():
        assert reasons.get(order_id, "").startswith(reason), (order_id, reasons.get(order_id))
    gold = {
        r["order_id"]: r
        for r in platform.warehouse("SELECT * FROM gold.orders WHERE order_id BETWEEN 990000001 AND 990000007")
    }
    assert set(gold) == set(GOOD_EXTREMES), "only the extreme but valid order is merged"


def test_analytics_and_observability_succeed_on_what_was_merged(platform, hostile_day):
    analytics = platform.run_dag("analytics_and_reporting_pipeline", datetime.combine(DAY, time(6), tzinfo=UTC))
    assert analytics["__run__"] == "success", analytics["__log__"][-4000:]
    checks = platform.run_dag("observability_pipeline", datetime.now(UTC).replace(microsecond=0))
    # The checks of what this day wrote (weekly analytics is Monday's, and not written here).
    judged = ["data_quality_checks.customer_features_file"] + [
        f"data_quality_checks.{name}_{kind}"
        for name in ("orders", "customer_360", "daily_reports")
        for kind in ("columns", "table", "freshness")
    ]
    assert {task: checks[task] for task in judged} == dict.fromkeys(judged, "success")
