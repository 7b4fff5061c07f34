"""A data error from the warehouse fails the task at once, in a real task process, and says where."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from include.shopstream.warehouse import run_key, sql
from tests.pipelines.conftest import MONDAY

# One xdist worker runs the whole group, in file order (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

DAY = MONDAY


@pytest.fixture
def customers_refused(platform):
    """gold.customers refuses every incoming customer with a constraint error, as bad data would."""
    platform.warehouse(sql("warehouse_schema.sql"))  # when this module runs alone
    platform.warehouse(
        "ALTER TABLE gold.customers ADD CONSTRAINT test_refuses_every_row CHECK (customer_id < 0) NOT VALID"
    )
    yield
    platform.warehouse("ALTER TABLE gold.customers DROP CONSTRAINT test_refuses_every_row")


def test_a_constraint_error_fails_the_task_without_retries_naming_table_constraint_and_keys(
    platform, customers_refused
):
    platform.seed_until(datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC))
    states = platform.run_sales(DAY)
    assert states["__run__"] == "failed"
    assert states["orders_etl.merge_customers"] == "failed"
    assert states["orders_etl.merge_orders"] == "upstream_failed"
    assert states["orders_etl.announce_orders"] == "upstream_failed", "nothing is published"
    (task,) = platform.metadata(
        "SELECT ti.try_number, ti.max_tries FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
        " WHERE dr.dag_id = 'sales_core_pipeline' AND dr.execution_date = %s AND ti.task_id = %s",
        (datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC), "orders_etl.merge_customers"),
    )
    assert task["max_tries"] == 3, "the DAG's policy allows three retries"
    assert task["try_number"] == 1, "a data error is not retried"
    log = states["__log__"]
    assert "CheckViolation on gold.customers, constraint test_refuses_every_row" in log
    (run,) = platform.metadata(
        "SELECT run_id FROM dag_run WHERE dag_id = 'sales_core_pipeline' AND execution_date = %s",
        (datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC),),
    )
    staged = f"staging.customers_raw__{run_key('sales_core_pipeline', run['run_id'])}"  # the run's own table
    assert f"offending keys in {staged}: 1, 2, 3, 4, 5" in log
    assert "A data error: not retried." in log
