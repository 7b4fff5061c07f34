"""The failure policies (ops/policies.py): the retry schedule each produces, try by try, as Airflow
computes it, and the callbacks and time limits each names."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pendulum
import pytest

from include.shopstream.ops import alerting, deadlines, policies
from include.shopstream.platform.compat import DAG, EmptyOperator
from tests.airflow_objects import scheduler_task, task_instance

RETRY_KEYS = ("retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay")


def delays(policy: dict) -> list[timedelta]:
    """The wait after each failed try that still has a retry left."""
    with DAG("policy_check", start_date=pendulum.datetime(2026, 1, 1), schedule=None) as dag:
        EmptyOperator(task_id="t", **{k: v for k, v in policy.items() if k in RETRY_KEYS})
    ti = task_instance(scheduler_task(dag, "t"), run_id="check")
    ti.end_date = pendulum.datetime(2026, 11, 24, 2, tz="UTC")
    waits = []
    for try_number in range(1, policy["retries"] + 1):
        ti.try_number = try_number
        waits.append(ti.next_retry_datetime() - ti.end_date)
    return waits


def test_sales_core_backs_off_exponentially_from_five_minutes_up_to_thirty():
    waits = delays(policies.SALES_CORE)
    assert len(waits) == 3
    # Airflow doubles the delay each try and adds up to one more delay of jitter, then caps it.
    for wait, low in zip(waits, (5, 10, 20), strict=True):
        assert timedelta(minutes=low) <= wait <= min(timedelta(minutes=2 * low), timedelta(minutes=30))
    assert waits == sorted(waits)


def test_inventory_retries_five_times_ten_minutes_apart():
    assert delays(policies.INVENTORY) == [timedelta(minutes=10)] * 5


def test_analytics_and_observability_retry_twice():
    assert len(delays(policies.ANALYTICS)) == 2
    assert delays(policies.OBSERVABILITY) == [timedelta(minutes=2)] * 2


@pytest.mark.parametrize(
    ("policy", "on_failure", "on_retry"),
    [
        (policies.SALES_CORE, alerting.critical_failure, None),
        (policies.INVENTORY, alerting.critical_failure_slack_only, alerting.warn_on_early_retries),
        (policies.ANALYTICS, alerting.critical_failure, None),
        (policies.OBSERVABILITY, alerting.critical_failure, None),
        (policies.ALERT_REDELIVERY, alerting.alerts_not_getting_through, None),
    ],
)
def test_each_policy_names_its_alerts(policy, on_failure, on_retry):
    assert policy["on_failure_callback"] is on_failure
    assert policy.get("on_retry_callback") is on_retry


def test_the_deadline_check_retries_every_minute_and_reports_under_the_deadlines_own_key():
    assert delays(policies.DEADLINE_CHECK) == [timedelta(minutes=1)] * 3
    assert policies.DEADLINE_CHECK["on_failure_callback"] is deadlines.check_failed
    assert "on_retry_callback" not in policies.DEADLINE_CHECK and "on_success_callback" not in policies.DEADLINE_CHECK


def test_the_redelivery_retries_soon_and_ends_before_its_next_run_starts():
    from include.shopstream.ops import outbox

    assert delays(policies.ALERT_REDELIVERY) == [timedelta(seconds=30)] * 2
    timeout = policies.ALERT_REDELIVERY["execution_timeout"]
    assert timedelta(seconds=outbox.RUN_BUDGET_SECONDS) < timeout < timedelta(minutes=5), "it runs every 5 minutes"
    assert policies.DEADLINE_CHECK["execution_timeout"] <= timedelta(minutes=5)


@pytest.mark.parametrize(
    "policy", [policies.SALES_CORE, policies.ANALYTICS, policies.OBSERVABILITY], ids=["sales", "analytics", "obs"]
)
def test_a_policy_that_pages_resolves_the_incident_on_success(policy):
    assert policy["on_failure_callback"] is alerting.critical_failure
    success = policy["on_success_callback"]
    assert alerting.resolve_incident in (success if isinstance(success, list) else [success])


def test_inventory_never_pages_so_resolves_nothing():
    assert policies.INVENTORY["on_failure_callback"].page is False
    assert policies.INVENTORY["on_retry_callback"].warnings == 3
    assert "on_success_callback" not in policies.INVENTORY


def test_every_policy_names_the_platform_as_owner():
    named = [value for name, value in vars(policies).items() if name.isupper() and isinstance(value, dict)]
    assert len(named) == 6
    assert all(policy["owner"] == policies.OWNER == "shopstream-data" for policy in named)


def test_retry_delays_scale_with_the_test_seam(monkeypatch):
    assert policies.minutes(10) == timedelta(minutes=10)
    monkeypatch.setattr(policies, "_DELAY_SCALE", 0.01)
    assert policies.minutes(10) == timedelta(seconds=6)


def test_the_ingest_resolves_its_deadline_incident_on_success(monkeypatch):
    """Run the sales policy's success callbacks as Airflow would for the ingest's last task, and
    for another task: only the former resolves the business date's 04:00 incident."""
    from types import SimpleNamespace

    resolved = []
    monkeypatch.setattr(alerting, "resolve", lambda key, details, summary: resolved.append(key))
    start = datetime(2026, 11, 25, 2, tzinfo=UTC)
    for task_id in (deadlines.INGEST.task_id, "customer_360.announce_customer_360"):
        ti = SimpleNamespace(dag_id=deadlines.INGEST.dag_id, task_id=task_id, try_number=1, max_tries=3, log_url="")
        context = {"ti": ti, "data_interval_start": start, "logical_date": start}
        for callback in policies.SALES_CORE["on_success_callback"]:
            callback(context)
    deadline_key = deadlines.INGEST.incident_key(date(2026, 11, 25))
    assert resolved.count(deadline_key) == 1
    # Each task also resolves its own incident, whatever the deadline.
    assert len(resolved) == 3
