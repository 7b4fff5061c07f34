"""A data error from the warehouse fails the task at once, in a real task process, and says where."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pytest

from include.shopstream.platform.warehouse import run_key, sql
from localdev.stack import SOURCE_DB
from tests.pipelines.conftest import MONDAY

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

DAY = MONDAY


@pytest.fixture
def customers_refused(platform):
    """gold.customers refuses one incoming customer with a constraint that its contract does not
    check (a UNIQUE on a column other than the key): a customer took another one's email."""
    platform.warehouse(sql("warehouse_schema.sql"))  # a new warehouse: the tables a first run would make
    platform.seed_until(datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC))
    platform.warehouse("ALTER TABLE gold.customers ADD CONSTRAINT test_one_customer_per_email UNIQUE (email)")
    (own,) = platform.query(SOURCE_DB, "SELECT email FROM customers WHERE customer_id = 5")
    (taken,) = platform.query(SOURCE_DB, "SELECT email FROM customers WHERE customer_id = 6")
    platform.query(SOURCE_DB, "UPDATE customers SET email = %s WHERE customer_id = 5", (taken["email"],))
    yield taken["email"]
    platform.query(SOURCE_DB, "UPDATE customers SET email = %s WHERE customer_id = 5", (own["email"],))
    platform.warehouse("ALTER TABLE gold.customers DROP CONSTRAINT test_one_customer_per_email")


def test_a_constraint_error_fails_the_task_without_retries_naming_table_constraint_and_keys(
    platform, customers_refused
):
    before = len(platform.inbox())
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
    assert "UniqueViolation on gold.customers, constraint test_one_customer_per_email" in log
    (run,) = platform.metadata(
        "SELECT run_id FROM dag_run WHERE dag_id = 'sales_core_pipeline' AND execution_date = %s",
        (datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC),),
    )
    staged = f"staging.customers_valid__{run_key('sales_core_pipeline', run['run_id'])}"  # the run's own table
    assert f"offending keys in {staged}: 5, 6" in log
    assert "A data error: not retried." in log

    # What Slack and PagerDuty received names the constraint and the keys, never the email.
    alerts = [json.dumps(m["body"]) for m in platform.inbox()[before:]]
    assert alerts and all("test_one_customer_per_email" in alert for alert in alerts), alerts
    assert all(f"offending keys in {staged}: 5, 6" in alert for alert in alerts), alerts
    assert not [alert for alert in alerts if customers_refused in alert], "an email reached an alert"
