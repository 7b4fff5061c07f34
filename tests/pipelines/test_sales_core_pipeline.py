"""sales_core_pipeline against real Postgres and the moto S3, checked against the generator."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest

from tests.pipelines import expected
from tests.pipelines.conftest import DATA, MONDAY, at

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform-2")]

DAY = MONDAY - timedelta(days=3)  # Friday: its orders change status on Monday
FIRST_SEEDED = MONDAY - timedelta(days=8)
CATEGORIES = {p["product_id"]: p["category"] for p in DATA.products()}
COUNTRIES = {c["customer_id"]: c["country"] for c in DATA.customers()}


def gold_orders(platform) -> dict[int, dict]:
    return {r["order_id"]: r for r in platform.warehouse("SELECT * FROM gold.orders")}


def lake_digest(platform, prefix: str) -> dict[str, str]:
    lake = platform.lake()
    objects = lake.list_objects_v2(Bucket="shopstream", Prefix=prefix).get("Contents", [])
    return {
        o["Key"]: hashlib.sha256(lake.get_object(Bucket="shopstream", Key=o["Key"])["Body"].read()).hexdigest()
        for o in objects
    }


def table_digest(platform, table: str, order_by: str) -> tuple[int, str]:
    rows = platform.warehouse(f"SELECT * FROM {table} ORDER BY {order_by}")
    content = [{k: str(v) for k, v in row.items() if k != "loaded_at"} for row in rows]
    return len(rows), hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def first_run(platform):
    platform.seed_until(at(DAY + timedelta(days=1), 2))
    states = platform.run_sales(DAY)
    assert states["__run__"] == "success", states["__log__"][-4000:]
    rows = expected.source_rows(DATA, FIRST_SEEDED, at(DAY + timedelta(days=1), 2))
    good, rejected = expected.split(expected.extract(rows, DAY))
    return {"states": states, "good": good, "rejected": rejected}


def test_orders_etl_merges_exactly_the_days_good_orders(platform, first_run):
    gold = gold_orders(platform)
    want = expected.merge({}, first_run["good"])
    assert set(gold) == set(want)
    for order_id, row in want.items():
        got = gold[order_id]
        assert (got["customer_id"], got["status"], got["amount"], got["refunded_amount"]) == (
            row["customer_id"],
            row["status"],
            row["amount"],
            row["refunded_amount"],
        )
        assert got["category"] == CATEGORIES[row["product_id"]]


def test_contract_breaking_rows_are_quarantined_with_their_reason(platform, first_run):
    assert sum(first_run["rejected"].values()) > 0, "the test data must hold bad rows"
    body = platform.lake().get_object(Bucket="shopstream", Key=f"quarantine/orders/ds={DAY}/rejected.csv")["Body"]
    quarantined = list(csv.DictReader(io.StringIO(body.read().decode())))
    reasons = {
        "customer_id is missing": sum(r["reason"] == "customer_id is missing" for r in quarantined),
        "breaks amount_not_negative": sum(r["reason"].startswith("breaks amount_not_negative") for r in quarantined),
        "breaks known_status": sum(r["reason"].startswith("breaks known_status") for r in quarantined),
        "duplicate order_id": sum(r["reason"].startswith("duplicate order_id") for r in quarantined),
    }
    assert {k: v for k, v in reasons.items() if v} == dict(first_run["rejected"])
    assert len(quarantined) == sum(first_run["rejected"].values())


def test_customer_360_matches_an_independent_computation(platform, first_run):
    want = expected.customer_360(expected.merge({}, first_run["good"]), CATEGORIES, COUNTRIES)
    got = {r["customer_id"]: r for r in platform.warehouse("SELECT * FROM gold.customer_360")}
    assert set(got) == set(want)
    for customer, row in want.items():
        for field in ("country", "lifetime_value", "order_count", "first_order_at", "last_order_at"):
            assert got[customer][field] == row[field], (customer, field)
        assert got[customer]["preferred_category"] == row["preferred_category"]


def test_raw_and_published_files_land_in_the_days_partition(platform, first_run):
    keys = lake_digest(platform, "")
    assert f"raw/orders/ds={DAY}/part-00000.csv" in keys
    assert f"raw/customers/ds={DAY}/part-00000.csv" in keys
    published = pq.read_table(
        io.BytesIO(
            platform.lake().get_object(Bucket="shopstream", Key=f"gold/orders/ds={DAY}/orders.parquet")["Body"].read()
        )
    )
    assert published.num_rows == len(expected.merge({}, first_run["good"]))


def test_the_orders_event_carries_the_business_date(platform, first_run):
    events = platform.metadata(
        "SELECT e.extra FROM dataset_event e JOIN dataset d ON d.id = e.dataset_id "
        "WHERE d.uri = 's3://shopstream/gold/orders' AND e.source_dag_id = 'sales_core_pipeline' ORDER BY e.timestamp"
    )
    assert events and events[-1]["extra"] == {"ds": str(DAY)}


def test_a_second_run_for_the_same_day_changes_nothing(platform, first_run):
    before_tables = {
        t: table_digest(platform, t, k)
        for t, k in [
            ("gold.orders", "order_id"),
            ("gold.customer_360", "customer_id"),
            ("gold.customers", "customer_id"),
        ]
    }
    before_lake = lake_digest(platform, "raw/") | lake_digest(platform, "quarantine/")
    gold_keys = set(lake_digest(platform, "gold/"))

    again = platform.run_sales(DAY)
    assert again["__run__"] == "success", again["__log__"][-4000:]

    assert {
        t: table_digest(platform, t, k)
        for t, k in [
            ("gold.orders", "order_id"),
            ("gold.customer_360", "customer_id"),
            ("gold.customers", "customer_id"),
        ]
    } == before_tables
    assert lake_digest(platform, "raw/") | lake_digest(platform, "quarantine/") == before_lake
    assert set(lake_digest(platform, "gold/")) == gold_keys, "no second copy of any published file"


def test_bad_rows_above_the_threshold_fail_the_run_and_merge_nothing(platform, first_run):
    before = table_digest(platform, "gold.orders", "order_id")
    platform.airflow("variables", "set", "shopstream_bad_row_threshold", "0.001")
    try:
        failed = platform.run_sales(DAY)
    finally:
        platform.airflow("variables", "set", "shopstream_bad_row_threshold", "0.05")
    assert failed["__run__"] == "failed"
    assert failed["orders_etl.enforce_bad_row_threshold"] == "failed"
    assert failed["orders_etl.merge_orders"] in ("upstream_failed", None)
    assert failed["orders_etl.announce_orders"] in ("upstream_failed", None)
    bad = sum(first_run["rejected"].values())
    total = bad + len(first_run["good"])
    assert f"{bad} of {total} orders" in failed["__log__"]
    assert f"s3://shopstream/quarantine/orders/ds={DAY}/rejected.csv" in failed["__log__"]
    assert table_digest(platform, "gold.orders", "order_id") == before


def test_an_order_changed_later_is_updated_not_duplicated(platform, first_run):
    later = DAY + timedelta(days=3)
    platform.seed_until(at(later + timedelta(days=1), 2))
    for day in (DAY + timedelta(days=1), DAY + timedelta(days=2), later):
        states = platform.run_sales(day)
        assert states["__run__"] == "success", states["__log__"][-4000:]

    # The orders placed on DAY whose status moved on exactly three days later (paid or cancelled).
    changed = {
        o["order_id"]: status for o in DATA.new_orders(DAY) for offset, status, _ in DATA.lifecycle(o) if offset == 3
    }
    assert changed, "the generator must change some of the day's orders three days later"
    gold = gold_orders(platform)
    checked = 0
    for order_id, status in changed.items():
        if order_id in gold:  # not a late arrival still to come
            assert gold[order_id]["status"] == status
            checked += 1
    assert checked > 0
    counts = platform.warehouse("SELECT count(*) AS n, count(DISTINCT order_id) AS d FROM gold.orders")[0]
    assert counts["n"] == counts["d"]
