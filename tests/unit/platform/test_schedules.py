"""schedules: the sales ingest's cron, 02:00 UTC daily, and the data interval of each day.

The run that starts at 02:00 covers the day before it, 02:00 to 02:00, as Airflow's timetable
reads the cron; the ingest deadline reads the same cron and finds the same interval.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.timetables.interval import CronDataIntervalTimetable
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.ops import deadlines
from include.shopstream.platform import schedules
from include.shopstream.platform.business_dates import business_date_of

pytestmark = pytest.mark.devtools

EXAMPLES = settings(max_examples=100, deadline=None, derandomize=True)
DAYS = st.dates(min_value=date(2024, 1, 1), max_value=date(2040, 12, 31))
MOMENTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC))


def timetable() -> CronDataIntervalTimetable:
    """The scheduler's timetable of sales_core_pipeline (the DAG passes the cron with timezone UTC)."""
    return CronDataIntervalTimetable(schedules.SALES_CORE, timezone="UTC")


def at_two(day: date) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, 2, tz="UTC")


def test_the_sales_ingest_runs_at_two_utc_every_day():
    assert schedules.SALES_CORE == "0 2 * * *"
    assert timetable().summary == schedules.SALES_CORE


@EXAMPLES
@given(day=DAYS)
def test_the_scheduled_run_of_a_day_covers_it_from_two_to_two_and_starts_when_it_ends(day):
    start = at_two(day)
    info = timetable().next_dagrun_info(
        last_automated_data_interval=DataInterval(start - timedelta(days=1), start),
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert info.data_interval == DataInterval(start, start + timedelta(days=1))
    assert info.run_after == start + timedelta(days=1)
    assert business_date_of(info.data_interval.start) == day


def test_a_manual_run_covers_the_last_whole_day_before_it():
    """As business_dates tells it: at 02:00 on the 24th, the 23rd; at midnight on the 24th, the 22nd."""
    at_02 = timetable().infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 24, 2, tz="UTC"))
    at_midnight = timetable().infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 24, tz="UTC"))
    assert business_date_of(at_02.start) == date(2026, 11, 23)
    assert at_midnight == DataInterval(at_two(date(2026, 11, 22)), at_two(date(2026, 11, 23)))


@EXAMPLES
@given(moment=MOMENTS)
def test_any_moments_interval_is_one_whole_day_ending_at_the_latest_two_oclock(moment):
    interval = timetable().infer_manual_data_interval(run_after=pendulum.instance(moment))
    assert interval.end - interval.start == timedelta(days=1)
    assert (interval.start.hour, interval.start.minute, interval.start.second) == (2, 0, 0)
    assert moment - timedelta(days=1) < interval.end <= moment


@EXAMPLES
@given(day=DAYS)
def test_the_ingest_deadline_finds_the_interval_the_scheduler_ran(day):
    start = at_two(day)
    due = start + timedelta(days=1) + deadlines.INGEST.due_after  # 04:00 on the day the run starts
    assert deadlines.INGEST.schedule == schedules.SALES_CORE
    assert deadlines.INGEST.interval(due) == (start, start + timedelta(days=1))
    assert deadlines.INGEST.business_date(due) == day
