"""customers: customer_360's build and swap on a gold.orders and gold.customers of known rows.

What ``customer_360`` runs, on the embedded Postgres: ``sql/customer_360.sql`` built into staging,
then swapped into gold.customer_360 by ``COLUMNS`` (as ``gold.rebuild`` does). The per-customer
rules are those the features state too, and the two agree on the same orders.
"""

from __future__ import annotations

import re
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg2.extras
import pytest

from include.shopstream.pipelines.customers import COLUMNS
from include.shopstream.platform.names import sql

pytestmark = pytest.mark.services

DATABASE = "shopstream_unit_customers"
BUILD = "staging.customer_360_build_test"
T0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
CUSTOMERS = {1: "DE", 2: "FR", 3: "NL", 4: "US"}
# (order_id, customer_id, category, amount, refunded_amount, status, hours after T0)
ORDERS = [
    (1, 1, "books", "10.00", "0", "paid", 0),
    (2, 1, "books", "20.00", "5.00", "refunded", 5),
    (3, 1, "toys", "30.00", "0", "delivered", 26),
    (4, 1, "games", "100.00", "0", "cancelled", 30),
    (5, 2, "toys", "8.00", "0", "paid", 1),
    (6, 2, "games", "12.00", "0", "paid", 2),
    (7, 3, "books", "50.00", "0", "cancelled", 3),
]


def execute(url: str, statement: str, params=None) -> list[dict]:
    with (
        closing(psycopg2.connect(url)) as conn,
        conn,
        conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
    ):
        cur.execute(statement, params)
        return [dict(r) for r in cur.fetchall()] if cur.description else []


def rendered(sql_file: str, **tables: str) -> str:
    """The SQL file as the transform step runs it: each ``{{ table }}`` an identifier."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: tables[m.group(1)], sql(sql_file))


@pytest.fixture(scope="module")
def warehouse(pg_server):
    pg_server.ensure_database(DATABASE)
    url = pg_server.url(DATABASE)
    execute(url, sql("warehouse_schema.sql"))
    execute(url, "TRUNCATE gold.orders, gold.customers, gold.customer_360 CASCADE")
    for customer_id, country in CUSTOMERS.items():
        execute(
            url,
            "INSERT INTO gold.customers VALUES (%s, %s, 'Name', %s, %s, %s)",
            (customer_id, f"c{customer_id}@example.com", country, T0, T0),
        )
    for order_id, customer_id, category, amount, refunded, status, hours in ORDERS:
        created = T0 + timedelta(hours=hours)
        execute(
            url,
            "INSERT INTO gold.orders VALUES (%s, %s, 1, 'SKU-1', %s, 1, %s, %s, %s, %s, %s, now())",
            (order_id, customer_id, category, amount, status, refunded, created, created),
        )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", url)
        yield url


@pytest.fixture(scope="module")
def customer_360(warehouse) -> dict[int, dict]:
    """gold.customer_360 after the build and the swap, by customer."""
    from include.shopstream.platform.warehouse import replace_rows

    execute(warehouse, f"DROP TABLE IF EXISTS {BUILD}")
    execute(
        warehouse,
        f"CREATE TABLE {BUILD} AS "
        + rendered("customer_360.sql", gold_orders="gold.orders", customers="gold.customers"),
    )
    swapped = replace_rows("gold.customer_360", BUILD, list(COLUMNS))
    rows = {r["customer_id"]: r for r in execute(warehouse, "SELECT * FROM gold.customer_360")}
    assert swapped == len(rows)
    return rows


def test_the_build_has_every_column_of_gold_customer_360_and_the_swap_names_them_all(warehouse, customer_360):
    gold = execute(
        warehouse,
        "SELECT attname FROM pg_attribute WHERE attrelid = 'gold.customer_360'::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
    )
    built = list(execute(warehouse, f"SELECT * FROM {BUILD} LIMIT 1")[0])
    assert list(COLUMNS) == [r["attname"] for r in gold] == built


def test_a_customer_with_only_cancelled_orders_or_none_has_no_row(customer_360):
    assert set(customer_360) == {1, 2}


def test_lifetime_value_is_net_of_refunds_and_cancelled_orders_count_nowhere(customer_360):
    first = customer_360[1]
    assert (first["country"], first["lifetime_value"], first["order_count"]) == ("DE", Decimal("55.00"), 3)
    assert (first["first_order_at"], first["last_order_at"]) == (T0, T0 + timedelta(hours=26))
    assert first["preferred_category"] == "books"


def test_a_tie_for_the_preferred_category_goes_to_the_first_alphabetically(customer_360):
    assert customer_360[2]["preferred_category"] == "games"
    assert (customer_360[2]["lifetime_value"], customer_360[2]["order_count"]) == (Decimal("20.00"), 2)


def test_customer_360_and_the_features_agree_on_the_same_orders(customer_360):
    from include.shopstream.pipelines.features import customer_features
    from include.shopstream.platform.sql_steps import table_frame

    features = customer_features.function(table_frame("gold.orders"), "2026-11-22")
    agreed = {
        int(row["customer_id"]): (row["frequency"], row["monetary"], row["preferred_category"])
        for row in features.to_dict("records")
    }
    assert agreed == {
        customer_id: (row["order_count"], float(row["lifetime_value"]), row["preferred_category"])
        for customer_id, row in customer_360.items()
    }
