"""The retry schedule each policy produces, try by try, as Airflow computes it."""

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


def test_the_ingest_is_due_at_four_on_the_day_its_run_starts():
    # The run for business date 25 Nov covers [25 Nov 02:00, 26 Nov 02:00) and starts at its end.
    due = datetime(2026, 11, 26, 4, tzinfo=UTC)
    assert deadlines.INGEST.interval(due) == (
        datetime(2026, 11, 25, 2, tzinfo=UTC),
        datetime(2026, 11, 26, 2, tzinfo=UTC),
    )
    assert deadlines.INGEST.business_date(due) == date(2026, 11, 25)
    assert (
        deadlines.INGEST.incident_key(date(2026, 11, 25)) == "shopstream/sales_core_pipeline/ingest-deadline/2026-11-25"
    )


@pytest.mark.parametrize(
    ("moment", "due"),
    [
        (datetime(2026, 11, 26, 4, 0, tzinfo=UTC), datetime(2026, 11, 26, 4, tzinfo=UTC)),
        (datetime(2026, 11, 26, 3, 59, 59, tzinfo=UTC), datetime(2026, 11, 25, 4, tzinfo=UTC)),
        (datetime(2026, 11, 26, 17, 30, tzinfo=UTC), datetime(2026, 11, 26, 4, tzinfo=UTC)),
    ],
)
def test_a_check_started_by_hand_checks_the_latest_deadline_passed(moment, due):
    assert deadlines.INGEST.latest_due(moment) == due


def test_the_check_runs_when_each_ingest_is_due():
    from croniter import croniter

    starts = croniter(deadlines.INGEST.schedule, datetime(2026, 11, 1, tzinfo=UTC))
    checks = croniter(deadlines.INGEST.check_schedule, datetime(2026, 11, 1, tzinfo=UTC))
    for _ in range(40):
        assert checks.get_next(datetime) == starts.get_next(datetime) + deadlines.INGEST.due_after


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
