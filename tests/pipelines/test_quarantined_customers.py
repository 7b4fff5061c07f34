"""A customer with an empty text field, in the daily full snapshot of customers: quarantined with
its reason, and the day's ingest still runs (it used to fail merge_customers on every run)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta

import pytest

from localdev.stack import SOURCE_DB
from tests.pipelines import expected
from tests.pipelines.conftest import DATA, MONDAY, at

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform-2")]

# Seeding up to DAY moves the orders of earlier days on: no earlier day is run after that.
YESTERDAY = MONDAY + timedelta(days=3)
DAY = MONDAY + timedelta(days=4)
FIRST_SEEDED = MONDAY - timedelta(days=8)
KNOWN = 7  # a customer of the generator, in gold.customers since the first sales run
NEW = 900_001  # a customer the source gains today
INSIDE = datetime.combine(DAY, time(9), tzinfo=UTC)
# Today's orders of the two customers, outside the generator's order ids.
KNOWN_ORDER, NEW_ORDERS = 900_000_001, (900_000_002, 900_000_003)


def quarantined(platform, what: str) -> list[dict]:
    body = platform.lake().get_object(Bucket="shopstream", Key=f"quarantine/{what}/ds={DAY}/rejected.csv")["Body"]
    return list(csv.DictReader(io.StringIO(body.read().decode())))


@pytest.fixture(scope="module")
def empty_texts(platform):
    """Yesterday's ingest succeeded; overnight one known customer's email became '' and a new
    customer arrived without a name, each with orders today."""
    platform.ingest([YESTERDAY])
    yesterday = platform.warehouse("SELECT * FROM gold.customers WHERE customer_id = %s", (KNOWN,))
    (email,) = platform.query(SOURCE_DB, "SELECT email FROM customers WHERE customer_id = %s", (KNOWN,))
    platform.seed_until(at(DAY + timedelta(days=1), 2))
    order = (
        "INSERT INTO orders (order_id, customer_id, product_id, quantity, amount, status, refunded_amount,"
        " created_at, updated_at) VALUES (%s, %s, 1, 1, 9.99, 'paid', 0, %s, %s)"
    )
    try:
        platform.query(SOURCE_DB, "UPDATE customers SET email = '' WHERE customer_id = %s", (KNOWN,))
        platform.query(
            SOURCE_DB,
            "INSERT INTO customers VALUES (%s, 'new.customer@example.com', '', 'DE', %s, %s)",
            (NEW, INSIDE, INSIDE),
        )
        platform.query(SOURCE_DB, order, (KNOWN_ORDER, KNOWN, INSIDE, INSIDE))
        for order_id in NEW_ORDERS:
            platform.query(SOURCE_DB, order, (order_id, NEW, INSIDE, INSIDE))
        states = platform.run_sales(DAY)
        yield {"states": states, "yesterday": yesterday}
    finally:  # the source as the generator has it, for any test after this one
        platform.query(SOURCE_DB, "UPDATE customers SET email = %s WHERE customer_id = %s", (email["email"], KNOWN))
        platform.query(SOURCE_DB, "DELETE FROM orders WHERE order_id = ANY(%s)", ([KNOWN_ORDER, *NEW_ORDERS],))
        platform.query(SOURCE_DB, "DELETE FROM customers WHERE customer_id = %s", (NEW,))


def test_the_ingest_succeeds_with_customers_missing_a_text(empty_texts):
    states = empty_texts["states"]
    errors = [line for line in states["__log__"].splitlines() if "Exception: " in line]
    assert states["__run__"] == "success", errors or states["__log__"][-4000:]
    assert states["orders_etl.merge_customers"] == "success"
    assert states["orders_etl.announce_orders"] == "success"
    assert states["customer_360.announce_customer_360"] == "success"


def test_both_customers_are_quarantined_with_their_reason(platform, empty_texts):
    reasons = {int(r["customer_id"]): r["reason"] for r in quarantined(platform, "customers")}
    assert reasons == {KNOWN: "email is missing", NEW: "full_name is missing"}


def test_the_known_customer_keeps_yesterdays_row_and_the_new_one_stays_out(platform, empty_texts):
    gold = platform.warehouse("SELECT * FROM gold.customers WHERE customer_id IN (%s, %s)", (KNOWN, NEW))
    assert gold == empty_texts["yesterday"] != []
    assert gold[0]["email"] != ""


def test_the_new_customers_orders_are_quarantined_by_the_foreign_key_and_every_other_order_merged(
    platform, empty_texts
):
    reasons = {int(r["order_id"]): r["reason"] for r in quarantined(platform, "orders")}
    for order_id in NEW_ORDERS:
        assert reasons[order_id] == f"customer_id='{NEW}' is in no row of gold.customers (orders_customer_known)"
    rows = expected.source_rows(DATA, FIRST_SEEDED, at(DAY + timedelta(days=1), 2))
    good, rejected = expected.split(expected.extract(rows, DAY))
    assert len(reasons) == sum(rejected.values()) + len(NEW_ORDERS)
    want = {o["order_id"]: o["status"] for o in good} | {KNOWN_ORDER: "paid"}
    gold = platform.warehouse("SELECT order_id, status FROM gold.orders WHERE order_id = ANY(%s)", (list(want),))
    assert {r["order_id"]: r["status"] for r in gold} == want, "the known customer's order passes the foreign key"
    assert platform.warehouse("SELECT 1 FROM gold.orders WHERE order_id = ANY(%s)", (list(NEW_ORDERS),)) == []


NEXT_DAY = DAY + timedelta(days=1)
NEXT_INSIDE = datetime.combine(NEXT_DAY, time(9), tzinfo=UTC)
NEXT_ORDER = 900_000_004  # the known customer's order of the next day: a day with orders


@pytest.fixture(scope="module")
def fixed_next_day(platform, empty_texts):
    """The next day the new customer has their name; nothing changed in their orders."""
    platform.query(
        SOURCE_DB,
        "UPDATE customers SET full_name = 'New Customer', updated_at = %s WHERE customer_id = %s",
        (NEXT_INSIDE, NEW),
    )
    platform.query(
        SOURCE_DB,
        "INSERT INTO orders (order_id, customer_id, product_id, quantity, amount, status, refunded_amount,"
        " created_at, updated_at) VALUES (%s, %s, 1, 1, 9.99, 'paid', 0, %s, %s)",
        (NEXT_ORDER, KNOWN, NEXT_INSIDE, NEXT_INSIDE),
    )
    held_before = platform.warehouse("SELECT order_id FROM staging.held_orders ORDER BY order_id")
    try:
        yield {"states": platform.run_sales(NEXT_DAY), "held_before": held_before}
    finally:
        platform.query(SOURCE_DB, "DELETE FROM orders WHERE order_id = %s", (NEXT_ORDER,))
        ids = [KNOWN_ORDER, *NEW_ORDERS, NEXT_ORDER]
        platform.warehouse("DELETE FROM gold.orders WHERE order_id = ANY(%s)", (ids,))
        platform.warehouse("DELETE FROM gold.customers WHERE customer_id = %s", (NEW,))
        platform.warehouse("DELETE FROM staging.held_orders WHERE order_id = ANY(%s)", ([str(i) for i in ids],))


def test_the_new_customers_orders_are_merged_the_day_the_customer_arrives(platform, fixed_next_day):
    """The orders of a customer quarantined on their first day were held, not only quarantined:
    the day the customer is fixed and merged, the orders are merged too, though unchanged."""
    states = fixed_next_day["states"]
    assert states["__run__"] == "success", states["__log__"][-4000:]
    assert {str(order_id) for order_id in NEW_ORDERS} <= {row["order_id"] for row in fixed_next_day["held_before"]}
    assert platform.warehouse("SELECT customer_id FROM gold.customers WHERE customer_id = %s", (NEW,)) != []
    gold = platform.warehouse(
        "SELECT order_id, customer_id, status FROM gold.orders WHERE order_id = ANY(%s) ORDER BY order_id",
        ([*NEW_ORDERS, NEXT_ORDER],),
    )
    assert gold == [
        *({"order_id": order_id, "customer_id": NEW, "status": "paid"} for order_id in NEW_ORDERS),
        {"order_id": NEXT_ORDER, "customer_id": KNOWN, "status": "paid"},
    ]
