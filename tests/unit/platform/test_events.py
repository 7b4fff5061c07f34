"""events: the Dataset events that triggered a run, read from the task's context.

A run not started by events never reads the entry; an event without an extra, or without a
date on it, is read as having none; a consumer reports on the newest date its events carry.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.platform.compat import TRIGGERING_EVENTS
from include.shopstream.platform.events import business_date_reported, newest_event_times, triggering_events
from tests.unit.platform.contexts import START, scheduled_run, started_by_assets

pytestmark = pytest.mark.devtools

ORDERS = "s3://shopstream/gold/orders"
CUSTOMERS = "s3://shopstream/gold/customer_360"
EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)


def event(ds: str | None, timestamp=None) -> SimpleNamespace:
    return SimpleNamespace(timestamp=timestamp or START.add(days=1, minutes=30), extra={"ds": ds} if ds else {})


class Unread(dict):
    """A context entry that must not be read."""

    def __getitem__(self, key):
        raise AssertionError(f"{key} was read")

    def items(self):
        raise AssertionError("the triggering events were read")


@pytest.mark.parametrize("run_type", ["scheduled", "manual", "backfill"])
def test_a_run_not_started_by_events_has_none_and_never_reads_the_entry(run_type):
    context = {"dag_run": SimpleNamespace(run_type=run_type), TRIGGERING_EVENTS: Unread()}
    assert triggering_events(context) == {}
    assert triggering_events({"dag_run": SimpleNamespace(run_type=run_type)}) == {}
    assert newest_event_times(context) == {}


def test_an_event_run_without_events_has_none():
    assert triggering_events(started_by_assets(START, {})) == {}
    assert newest_event_times(started_by_assets(START, {})) == {}
    # An Asset listed with no events (Airflow does not pass one today) has no newest time.
    assert newest_event_times(started_by_assets(START, {ORDERS: []})) == {}


def test_each_event_is_its_timestamp_and_a_copy_of_its_extra():
    first, second = START.add(days=1, minutes=5), START.add(days=1, minutes=50)
    orders = [
        SimpleNamespace(timestamp=first, extra={"ds": "2026-11-23"}),
        SimpleNamespace(timestamp=second, extra=None),
    ]
    found = triggering_events(started_by_assets(START, {ORDERS: orders}))
    assert found == {ORDERS: [(first, {"ds": "2026-11-23"}), (second, {})]}
    found[ORDERS][0][1]["ds"] = "changed"
    assert orders[0].extra == {"ds": "2026-11-23"}


def test_the_newest_event_of_each_dataset_is_its_latest_timestamp():
    early, late = START.add(days=1, minutes=5), START.add(days=1, hours=3)
    events = {ORDERS: [event("2026-11-23", late), event("2026-11-23", early)], CUSTOMERS: [event(None, early)]}
    assert newest_event_times(started_by_assets(START, events)) == {ORDERS: late, CUSTOMERS: early}


def test_a_consumer_reports_on_the_newest_date_its_events_carry():
    events = {"s3://shopstream/gold/orders": [event("2026-11-22"), event("2026-11-23")], "s3://x": [event(None)]}
    assert business_date_reported(started_by_assets(START.add(days=1), events)) == date(2026, 11, 23)


def test_a_consumer_run_without_event_dates_reports_on_its_own_business_date():
    assert business_date_reported(scheduled_run(dag_run=SimpleNamespace(run_type="manual"))) == date(2026, 11, 23)
    due = pendulum.datetime(2026, 11, 25, 2, 40, tz="UTC")
    assert business_date_reported(started_by_assets(due, {"s3://x": [event(None)]})) == date(2026, 11, 25)


@pytest.mark.parametrize("extra", [None, {}, {"ds": ""}, {"ds": None}, {"other": "2026-11-30"}])
def test_an_event_without_a_date_leaves_the_report_on_the_runs_own_date(extra):
    due = pendulum.datetime(2026, 11, 25, 2, 40, tz="UTC")
    events = {ORDERS: [SimpleNamespace(timestamp=due, extra=extra)]}
    assert business_date_reported(started_by_assets(due, events)) == date(2026, 11, 25)


def test_an_event_with_a_date_that_is_not_one_fails_rather_than_guess():
    events = {ORDERS: [event("2026-11-23"), event("23/11/2026")]}
    with pytest.raises(ValueError, match="23/11/2026"):
        business_date_reported(started_by_assets(START.add(days=1), events))


DAYS = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
EVENTS = st.dictionaries(
    st.sampled_from([ORDERS, CUSTOMERS, "s3://shopstream/gold/inventory"]),
    st.lists(st.tuples(MOMENTS, st.one_of(st.none(), DAYS)), min_size=1, max_size=5),
    max_size=3,
)


def as_context(events: dict) -> dict:
    return started_by_assets(
        START,
        {
            uri: [SimpleNamespace(timestamp=at, extra={"ds": day.isoformat()} if day else None) for at, day in found]
            for uri, found in events.items()
        },
    )


@EXAMPLES
@given(events=EVENTS)
def test_any_events_report_on_their_newest_date_and_each_datasets_newest_time(events):
    context = as_context(events)
    days = [day for found in events.values() for _, day in found if day]
    assert business_date_reported(context) == (max(days) if days else START.date())
    assert newest_event_times(context) == {uri: max(at for at, _ in found) for uri, found in events.items()}
    assert {uri: len(found) for uri, found in triggering_events(context).items()} == {
        uri: len(found) for uri, found in events.items()
    }
