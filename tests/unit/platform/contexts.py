"""Task contexts as Airflow hands them to the platform's date helpers: a scheduled run's, and
Airflow 3's for a run it started on Assets."""

from __future__ import annotations

from types import SimpleNamespace

import pendulum

from include.shopstream.platform.compat import EVENT_TRIGGERED, TRIGGERING_EVENTS

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
