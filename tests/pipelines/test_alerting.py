"""Failure handling with real task failures: what reaches the Slack and PagerDuty receivers.

The receivers are the local alert sink (localdev/alert_sink.py) on loopback; the connections
`slack_alerts` and `pagerduty_alerts` point at it. Retry delays are scaled down for the test
(SHOPSTREAM_RETRY_DELAY_SCALE), the policies themselves are the production ones.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, time, timedelta

import pytest

from localdev.processes import free_port
from localdev.stack import SOURCE_DB
from tests.pipelines.conftest import MONDAY

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

# The newest seeded day: later seeding has not moved its orders on (re-running an older day
# would extract mostly the contract-breaking copies, which never change, and rightly fail).
DAY = MONDAY


def new_messages(platform, before: int) -> tuple[list[str], list[dict]]:
    """(Slack texts, PagerDuty events) received since ``before`` messages."""
    messages = platform.inbox()[before:]
    slack = [m["body"]["text"] for m in messages if m["path"].startswith("/slack")]
    pager = [m["body"] for m in messages if m["path"].startswith("/pagerduty")]
    return slack, pager


def set_faults(platform, rate: float) -> None:
    request = urllib.request.Request(
        f"{platform.inventory_url}/admin/faults",
        data=json.dumps({"failure_rate": rate}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


@pytest.fixture
def inventory_api_down(platform):
    set_faults(platform, 1.0)
    platform.airflow("variables", "set", "shopstream_inventory_api_timeout_seconds", "1")
    yield
    set_faults(platform, 0.0)
    platform.airflow("variables", "set", "shopstream_inventory_api_timeout_seconds", "10")


def test_inventory_sends_three_warnings_then_one_critical(platform, inventory_api_down):
    before = len(platform.inbox())
    states = platform.run_dag("inventory_mgmt_pipeline", datetime(2026, 11, 20, 8, tzinfo=UTC))
    assert states["inventory_sync.fetch_stock"] == "failed"
    assert states["__run__"] == "failed"
    slack, pager = new_messages(platform, before)
    assert [text.split("*")[1] for text in slack] == ["WARNING", "WARNING", "WARNING", "CRITICAL"]
    assert [
        next(part.strip() for part in text.splitlines()[1].split("|") if part.strip().startswith("try"))
        for text in slack
    ] == ["try 1 of 6", "try 2 of 6", "try 3 of 6", "try 6 of 6"]
    assert all("inventory_sync.fetch_stock" in text and "Log: http" in text for text in slack)
    assert pager == [], "inventory is not paged"


def test_an_unreachable_slack_leaves_the_failure_intact(platform, inventory_api_down):
    dead = free_port()
    slack = json.dumps({"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{dead}/slack", "password": "x"})
    result = platform.airflow(
        "dags", "test", "inventory_mgmt_pipeline", "2026-11-20T12:00:00+00:00", AIRFLOW_CONN_SLACK_ALERTS=slack
    )
    states = {
        r["task_id"]: r["state"]
        for r in platform.metadata(
            "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
            " WHERE dr.dag_id = 'inventory_mgmt_pipeline' AND dr.execution_date = '2026-11-20T12:00:00+00:00'"
        )
    }
    assert states["inventory_sync.fetch_stock"] == "failed"
    assert "could not deliver the critical Slack alert" in result.stdout + result.stderr


@pytest.fixture
def orders_table_hidden(platform):
    platform.seed_until(datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC))
    platform.query(SOURCE_DB, "ALTER TABLE orders RENAME TO orders_hidden")
    yield
    platform.query(SOURCE_DB, "ALTER TABLE IF EXISTS orders_hidden RENAME TO orders")


def test_slack_and_pagerduty_both_down_during_a_final_failure(platform, orders_table_hidden):
    dead = f"http://127.0.0.1:{free_port()}"
    before = len(platform.inbox())
    failed = platform.run_dag(
        "sales_core_pipeline",
        datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC),
        AIRFLOW_CONN_SLACK_ALERTS=json.dumps({"conn_type": "slackwebhook", "host": f"{dead}/slack", "password": "x"}),
        AIRFLOW_CONN_PAGERDUTY_ALERTS=json.dumps(
            {"conn_type": "pagerduty_events", "host": f"{dead}/pagerduty", "password": "local-dev-routing-key"}
        ),
    )
    assert failed["orders_etl.extract_orders"] == "failed", "the task's own failure stands"
    assert failed["orders_etl.announce_orders"] == "upstream_failed", "and nothing is published"
    log = failed["__log__"]
    assert "could not deliver the critical Slack alert for sales_core_pipeline.orders_etl.extract_orders" in log
    assert "could not trigger the PagerDuty incident shopstream/sales_core_pipeline/orders_etl.extract_orders/" in log
    assert "Connection refused" in log, "the cause is logged"
    assert new_messages(platform, before) == ([], [])
    # `airflow dags test` at DAY + 1, 02:00 runs the interval that starts on DAY (its business date).
    key = f"shopstream/sales_core_pipeline/orders_etl.extract_orders/{DAY.isoformat()}T02:00:00+00:00"
    kept = platform.warehouse(
        "SELECT channel, action FROM ops.alert_outbox WHERE delivered_at IS NULL AND superseded_at IS NULL"
        " AND (dedup_key = %s OR body->>'text' LIKE %s) ORDER BY id",
        (key, "%orders_etl.extract_orders%"),
    )
    assert kept == [{"channel": "slack", "action": "post"}, {"channel": "pagerduty", "action": "trigger"}]

    # Both receivers are back: the next housekeeping run sends what they missed, once.
    redelivered = platform.run_dag("alert_redelivery", datetime(2026, 11, 30, 0, 5, tzinfo=UTC))
    assert redelivered["__run__"] == "success", redelivered["__log__"][-3000:]
    platform.run_dag("alert_redelivery", datetime(2026, 11, 30, 0, 10, tzinfo=UTC))
    slack, pager = new_messages(platform, before)
    ours = [text for text in slack if "orders_etl.extract_orders" in text]
    assert len(ours) == 1 and ours[0].startswith(":hourglass: *LATE*: meant for "), ours
    assert "*CRITICAL*: sales_core_pipeline.orders_etl.extract_orders failed for good" in ours[0]
    # Only this failure's events: the same run may also resolve incidents that earlier tests of
    # the shared platform left open and whose tasks have since succeeded (the housekeeping's job).
    assert [e["event_action"] for e in pager if e["dedup_key"] == key] == ["trigger"]
    assert not [e for e in pager if e["event_action"] == "trigger" and e["dedup_key"] != key], pager


def test_sales_pages_once_after_the_last_retry_and_resolves_on_success(platform, orders_table_hidden):
    # One incident per business date: the run's data interval starts on DAY at 02:00.
    business = datetime.combine(DAY, time(2), tzinfo=UTC)
    key = f"shopstream/sales_core_pipeline/orders_etl.extract_orders/{business.isoformat()}"
    before = len(platform.inbox())

    failed = platform.run_sales(DAY)
    assert failed["orders_etl.extract_orders"] == "failed"
    assert failed["orders_etl.announce_orders"] == "upstream_failed", "a failed ingest publishes nothing"
    slack, pager = new_messages(platform, before)
    assert len(slack) == 1 and slack[0].startswith(":rotating_light: *CRITICAL*")
    assert "orders_etl.extract_orders" in slack[0] and "try 4 of 4" in slack[0]
    assert [(e["event_action"], e["dedup_key"], e["payload"]["severity"]) for e in pager] == [
        ("trigger", key, "critical")
    ]
    assert pager[0]["routing_key"] == "local-dev-routing-key"
    assert pager[0]["payload"]["custom_details"]["try_number"] == 4

    platform.query(SOURCE_DB, "ALTER TABLE orders_hidden RENAME TO orders")
    before = len(platform.inbox())
    fixed = platform.run_sales(DAY)
    assert fixed["__run__"] == "success", {k: v for k, v in fixed.items() if v != "success" and k != "__log__"}
    slack, pager = new_messages(platform, before)
    assert slack == []
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [("resolve", key)]
