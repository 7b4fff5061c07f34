"""business_dates: one business date per run, the same for alerts and the ingest deadline.

The Dataset events carry the same date: a producer's announcement (test_tasks.py) and a
consumer's report date (test_events.py) read it from here.
"""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pendulum

from include.shopstream.ops import alerting, deadlines
from include.shopstream.platform.business_dates import business_date, business_date_of, interval_start
from tests.unit.platform.contexts import START, scheduled_run, started_by_assets


def test_a_run_is_about_the_day_its_data_interval_starts():
    context = scheduled_run()
    assert business_date(context) == date(2026, 11, 23)
    # A manual re-run of the same day has another logical date and the same interval.
    assert business_date(scheduled_run(logical_date=START.add(days=1, hours=7))) == date(2026, 11, 23)


def test_a_run_started_by_assets_is_about_the_day_it_became_due():
    due = pendulum.datetime(2026, 11, 24, 2, 31, tz="UTC")
    context = started_by_assets(due, {})
    assert interval_start(context) == due
    assert business_date(context) == date(2026, 11, 24)


def test_an_empty_data_interval_entry_falls_back_to_the_runs_moment():
    due = pendulum.datetime(2026, 11, 24, 2, 31, tz="UTC")
    context = {"data_interval_start": None, "logical_date": None, "dag_run": SimpleNamespace(run_after=due)}
    assert interval_start(context) == due
    assert business_date(scheduled_run(data_interval_start=None, logical_date=START.add(days=1))) == date(2026, 11, 24)


def test_the_business_date_of_a_moment_is_its_day_whatever_the_hour():
    for hour in (0, 2, 23):
        assert business_date_of(START.replace(hour=hour, minute=59)) == date(2026, 11, 23)


def test_alerts_and_the_deadline_name_the_same_day():
    context = scheduled_run(ti=SimpleNamespace(dag_id="sales_core_pipeline", task_id="orders_etl.announce_orders"))
    alert_day = alerting.describe(context)["business_date"]
    # The alert keeps the interval's start: one incident per run of a DAG that runs several times a day.
    assert alert_day == START.isoformat()
    due = deadlines.INGEST.latest_due(START.add(days=1, hours=3))
    assert deadlines.INGEST.business_date(due) == business_date(context) == pendulum.parse(alert_day).date()
