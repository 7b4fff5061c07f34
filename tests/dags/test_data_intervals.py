"""Each cron DAG's runs cover a time window: the ingest of a run reads one calendar day.

The ingest extracts the orders created or changed in its data interval and files them under
the interval start's date (the business date). Airflow 3 gives a plain cron schedule a
zero-length interval (start = end = the run's time), which would read no orders at all, so
the cron DAGs set ``CronDataIntervalTimetable`` themselves. These tests ask the scheduler's own
timetable (the serialized DAG's), on whichever Airflow the profile under test runs.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
import pytest

from include.shopstream.platform.outputs import BUSINESS_DATE

UTC = pendulum.UTC
# The cron DAGs and the length of each run's window.
CRON_DAGS = {
    "sales_core_pipeline": timedelta(days=1),
    "inventory_mgmt_pipeline": timedelta(hours=4),
    "alert_redelivery": timedelta(minutes=5),
}


def scheduled_run_after(timetable, previous_start):
    """The next scheduled run after the one whose interval started at ``previous_start``."""
    from airflow.timetables.base import DataInterval, TimeRestriction

    previous = timetable.infer_manual_data_interval(run_after=previous_start)
    previous = DataInterval(previous_start, previous_start + (previous.end - previous.start))
    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 11, 1, tz=UTC), latest=None, catchup=True)
    return timetable.next_dagrun_info(last_automated_data_interval=previous, restriction=restriction)


@pytest.mark.parametrize(("dag_id", "length"), CRON_DAGS.items())
def test_every_cron_dag_has_data_intervals_of_its_period(scheduled, dag_id, length):
    from airflow.timetables.interval import CronDataIntervalTimetable

    timetable = scheduled[dag_id].timetable
    assert isinstance(timetable, CronDataIntervalTimetable)
    interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 24, 2, tz=UTC))
    assert interval.end - interval.start == length


def test_the_scheduled_ingest_of_the_24th_reads_the_23rd(scheduled):
    """The 02:00 run on the 24th: interval 23rd 02:00 to 24th 02:00, business date the 23rd."""
    timetable = scheduled["sales_core_pipeline"].timetable
    info = scheduled_run_after(timetable, pendulum.datetime(2026, 11, 22, 2, tz=UTC))
    assert info.run_after == pendulum.datetime(2026, 11, 24, 2, tz=UTC)
    assert info.data_interval.start == pendulum.datetime(2026, 11, 23, 2, tz=UTC)
    assert info.data_interval.end == pendulum.datetime(2026, 11, 24, 2, tz=UTC)
    assert BUSINESS_DATE.value(info.data_interval.start) == "2026-11-23"


def test_a_manual_ingest_reads_the_same_day_as_the_scheduled_one(scheduled):
    """Triggered at the 02:00 of the 24th (or any time until the next 02:00), the same window."""
    timetable = scheduled["sales_core_pipeline"].timetable
    for moment in (pendulum.datetime(2026, 11, 24, 2, tz=UTC), pendulum.datetime(2026, 11, 24, 23, 59, tz=UTC)):
        interval = timetable.infer_manual_data_interval(run_after=moment)
        assert (interval.start, interval.end) == (
            pendulum.datetime(2026, 11, 23, 2, tz=UTC),
            pendulum.datetime(2026, 11, 24, 2, tz=UTC),
        )
        assert BUSINESS_DATE.value(interval.start) == "2026-11-23"


def test_consecutive_ingests_leave_no_gap_and_no_overlap(scheduled):
    timetable = scheduled["sales_core_pipeline"].timetable
    start = pendulum.datetime(2026, 11, 20, 2, tz=UTC)
    days = []
    for _ in range(5):
        info = scheduled_run_after(timetable, start)
        assert info.data_interval.start == start + timedelta(days=1)
        days.append(BUSINESS_DATE.value(info.data_interval.start))
        start = info.data_interval.start
    assert days == ["2026-11-21", "2026-11-22", "2026-11-23", "2026-11-24", "2026-11-25"]
