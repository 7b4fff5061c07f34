"""The retry schedule each policy produces, try by try, as Airflow computes it."""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest
from airflow.models import DAG, TaskInstance
from airflow.operators.empty import EmptyOperator

from include.shopstream import alerting, policies

RETRY_KEYS = ("retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay")


def delays(policy: dict) -> list[timedelta]:
    """The wait after each failed try that still has a retry left."""
    with DAG("policy_check", start_date=pendulum.datetime(2026, 1, 1), schedule=None):
        task = EmptyOperator(task_id="t", **{k: v for k, v in policy.items() if k in RETRY_KEYS})
    ti = TaskInstance(task, run_id="check")
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
    ],
)
def test_each_policy_names_its_alerts(policy, on_failure, on_retry):
    assert policy["on_failure_callback"] is on_failure
    assert policy.get("on_retry_callback") is on_retry


def test_the_ingest_sla_is_four_am():
    # A run's logical date is the start of its data interval, a day before the 02:00 start.
    assert timedelta(days=1, hours=2) == policies.INGEST_SLA
