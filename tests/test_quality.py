"""data_quality_checks covers every gold.orders column that a report or the features read."""

from __future__ import annotations

import re

from include.shopstream.pipelines.orders import GOLD_ORDER_COLUMNS
from include.shopstream.pipelines.quality import TABLES
from include.shopstream.platform.names import SQL_DIR
from tests.conftest import PROJECT

# What reads gold.orders after orders_etl: the reports, customer_360 and the features.
READERS = [
    *(SQL_DIR / name for name in ("customer_360.sql", "daily_reports.sql", "weekly_retention.sql")),
    SQL_DIR / "weekly_top_products.sql",
    PROJECT / "include" / "shopstream" / "pipelines" / "features.py",
]


def columns_read() -> set[str]:
    # "now() AS loaded_at" writes a column of the report, it reads none of gold.orders.
    text = re.sub(r"\bAS\s+\w+", "", "\n".join(path.read_text() for path in READERS))
    return {column for column in GOLD_ORDER_COLUMNS if re.search(rf"\b{column}\b", text)}


def test_every_orders_column_read_downstream_has_a_null_check():
    orders = next(spec for spec in TABLES if spec.table == "gold.orders")
    read = columns_read()
    assert {"customer_id", "category", "sku", "amount", "created_at", "status"} <= read
    unchecked = sorted(c for c in read if "null_check" not in orders.columns.get(c, {}))
    assert unchecked == []


def test_orders_are_checked_against_customers_and_the_catalogue():
    orders = next(spec for spec in TABLES if spec.table == "gold.orders")
    statements = " ".join(orders.checks.values())
    assert "gold.customers" in statements and "gold.product_catalog" in statements
