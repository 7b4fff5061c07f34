"""One business date per run, the same for alerts, the ingest deadline and the Dataset events."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pendulum

from include.shopstream.ops import alerting, deadlines
from include.shopstream.platform.business_dates import business_date, interval_start
from include.shopstream.platform.compat import EVENT_TRIGGERED, TRIGGERING_EVENTS
from include.shopstream.platform.events import business_date_reported

START = pendulum.datetime(2026, 11, 23, 2, tz="UTC")  # the interval of the run that starts at 02:00 on the 24th


def scheduled_run(**extra) -> dict:
    return {
        "logical_date": START,
        "data_interval_start": START,
        "dag_run": SimpleNamespace(run_type="scheduled", run_after=START.add(days=1)),
        **extra,
    }


def started_by_assets(run_after, events: dict) -> dict:
    """Airflow 3's context of a run it started on Assets: no logical date, ds or data interval."""
    return {"dag_run": SimpleNamespace(run_type=EVENT_TRIGGERED, run_after=run_after), TRIGGERING_EVENTS: events}


def event(ds: str | None) -> SimpleNamespace:
    return SimpleNamespace(timestamp=START.add(days=1, minutes=30), extra={"ds": ds} if ds else {})


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


def test_alerts_and_the_deadline_name_the_same_day():
    context = scheduled_run(ti=SimpleNamespace(dag_id="sales_core_pipeline", task_id="orders_etl.announce_orders"))
    alert_day = alerting.describe(context)["business_date"]
    # The alert keeps the interval's start: one incident per run of a DAG that runs several times a day.
    assert alert_day == START.isoformat()
    due = deadlines.INGEST.latest_due(START.add(days=1, hours=3))
    assert deadlines.INGEST.business_date(due) == business_date(context) == pendulum.parse(alert_day).date()


def test_a_consumer_reports_on_the_newest_date_its_events_carry():
    events = {"s3://shopstream/gold/orders": [event("2026-11-22"), event("2026-11-23")], "s3://x": [event(None)]}
    assert business_date_reported(started_by_assets(START.add(days=1), events)) == date(2026, 11, 23)


def test_a_consumer_run_without_event_dates_reports_on_its_own_business_date():
    assert business_date_reported(scheduled_run(dag_run=SimpleNamespace(run_type="manual"))) == date(2026, 11, 23)
    due = pendulum.datetime(2026, 11, 25, 2, 40, tz="UTC")
    assert business_date_reported(started_by_assets(due, {"s3://x": [event(None)]})) == date(2026, 11, 25)


def test_a_producer_announces_its_business_date_and_a_consumer_its_report_date():
    from include.shopstream.platform.compat import DAG
    from include.shopstream.platform.outputs import DAILY_REPORTS, ORDERS
    from include.shopstream.platform.tasks import announce

    with DAG("announcing", start_date=START, schedule=None):
        producer = announce(ORDERS).operator.python_callable
        consumer = announce(DAILY_REPORTS, "2026-11-20").operator.python_callable
    outlets = {ORDERS.dataset: SimpleNamespace(), DAILY_REPORTS.dataset: SimpleNamespace()}
    producer(None, outlet_events=outlets, **scheduled_run())
    consumer("2026-11-20", outlet_events=outlets, **started_by_assets(START.add(days=3), {}))
    assert outlets[ORDERS.dataset].extra == {"ds": "2026-11-23"}
    assert outlets[DAILY_REPORTS.dataset].extra == {"ds": "2026-11-20"}
