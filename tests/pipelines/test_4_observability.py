"""observability_pipeline: passes on the healthy platform, fails on a real breach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

# One xdist worker runs the whole group, in file order (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]


def test_a_healthy_platform_passes_every_check(platform):
    states = platform.run_dag("observability_pipeline", datetime.now(UTC).replace(microsecond=0))
    assert states["__run__"] == "success", states["__log__"][-4000:]
    checks = [t for t in states if t.endswith(("_columns", "_table", "_freshness", "_file"))]
    assert len(checks) == 19
    assert all(states[t] == "success" for t in checks)


def test_an_order_of_an_unknown_customer_fails_the_run(platform):
    # gold.orders' foreign key keeps such a row out; replica mode skips it, as a load that
    # bypassed the pipeline (or a row older than the constraint) would.
    platform.warehouse(
        "SET session_replication_role = replica;"
        " INSERT INTO gold.orders SELECT order_id + 999000000000, 424242, product_id, sku, category, quantity, amount,"
        " status, refunded_amount, created_at, updated_at, loaded_at FROM gold.orders LIMIT 1"
    )
    try:
        states = platform.run_dag(
            "observability_pipeline", datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        )
    finally:
        platform.warehouse("DELETE FROM gold.orders WHERE customer_id = 424242")
    assert states["__run__"] == "failed"
    assert states["data_quality_checks.orders_table"] == "failed"
    assert states["data_quality_checks.customer_360_table"] == "success"


def test_an_order_of_a_product_missing_from_the_catalogue_fails_the_run(platform):
    platform.warehouse(
        "INSERT INTO gold.orders SELECT order_id + 998000000000, customer_id, 424243, 'SKU-NOWHERE', category,"
        " quantity, amount, status, refunded_amount, created_at, updated_at, loaded_at FROM gold.orders LIMIT 1"
    )
    try:
        states = platform.run_dag(
            "observability_pipeline", datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        )
    finally:
        platform.warehouse("DELETE FROM gold.orders WHERE product_id = 424243")
    assert states["__run__"] == "failed"
    assert states["data_quality_checks.orders_table"] == "failed"
    assert "every_product_in_catalogue" in states["__log__"]
