"""The 04:00 page for a late ingest, played through Airflow's own code with the clock frozen.

Each scenario is an ordinary history: the scheduler created yesterday's and today's sales runs,
``ingest_deadline`` checked yesterday at 04:00. The probe (deadline_probe.py) records that
history in a real metadata database, then at each frozen moment asks the check DAG's timetable
whether a run is due, as the scheduler does, runs it with ``DAG.test`` and the alerts travel over
HTTP to a real sink. Every scenario uses its own dates, so they share one database.
"""

from __future__ import annotations

import json

import pytest

from tests.alerting.conftest import run_probe

# The probes use their own metadata database on the platform group's Postgres (conftest.py).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

KEY = "shopstream/sales_core_pipeline/ingest-deadline/{}"


@pytest.fixture
def play(probe_airflow, sink):
    """Run the probe's steps; return its step results and what reached Slack and PagerDuty."""

    def run(steps: list[dict]) -> tuple[list[dict], list[str], list[dict]]:
        before = len(sink.messages())
        lines = run_probe(probe_airflow, "deadline_probe", stdin=json.dumps(steps), env=sink.connections())
        steps_out = [json.loads(line) for line in lines if line.startswith('{"step"')]
        slack, pager = sink.since(before)
        return steps_out, slack, pager

    return run


def yesterday_succeeded(today: str, yesterday: str, before_yesterday: str) -> list[dict]:
    """The ordinary history at 02:00 today: yesterday's ingest ran 02:00-02:40, was checked at 04:00."""
    return [
        {"sales": before_yesterday, "state": "success", "at": f"{yesterday}T02:40:00"},
        {"tick": f"{yesterday}T04:00:30"},
        {"sales": yesterday, "state": "running", "at": f"{today}T02:00:05"},
    ]


def test_a_late_ingest_pages_at_four_and_not_before(play):
    # Business date 2030-03-04: its run starts 2030-03-05 02:00 and is due by 04:00.
    steps = yesterday_succeeded("2030-03-05", "2030-03-04", "2030-03-03")
    out, slack, pager = play([*steps, {"tick": "2030-03-05T03:59:00"}, {"tick": "2030-03-05T04:01:00"}])
    assert out[-2]["due"] is False, "nothing is checked before 04:00"
    assert out[-1]["due"] is True and out[-1]["check_state"] == "success"
    assert len(slack) == 1 and slack[0].startswith(":rotating_light: *CRITICAL*"), slack
    assert "ingest of 2030-03-04 is not done by 04:00 UTC" in slack[0]
    assert "is running" in slack[0]
    assert "| try " not in slack[0], "a deadline is no task try"
    assert [(e["event_action"], e["dedup_key"], e["payload"]["severity"]) for e in pager] == [
        ("trigger", KEY.format("2030-03-04"), "critical")
    ]


def test_an_ingest_done_at_three_fifty_nine_pages_nobody(play):
    steps = yesterday_succeeded("2030-03-12", "2030-03-11", "2030-03-10")
    steps[-1] = {"sales": "2030-03-11", "state": "success", "at": "2030-03-12T03:59:00"}
    out, slack, pager = play([*steps, {"tick": "2030-03-12T04:00:20"}])
    assert out[-1]["due"] is True and out[-1]["check_state"] == "success"
    assert (slack, pager) == ([], [])


def test_a_day_whose_ingest_never_started_still_pages(play):
    steps = yesterday_succeeded("2030-03-19", "2030-03-18", "2030-03-17")[:-1]  # no run today at all
    out, slack, pager = play([*steps, {"tick": "2030-03-19T04:00:10"}])
    assert out[-1]["due"] is True
    assert len(slack) == 1 and "no run of sales_core_pipeline has started" in slack[0], slack
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [("trigger", KEY.format("2030-03-18"))]


def test_two_missed_days_in_a_row_page_once_each_and_resolve_separately(play):
    steps = [
        {"sales": "2030-03-24", "state": "success", "at": "2030-03-25T02:40:00"},
        {"tick": "2030-03-25T04:00:30"},
        {"sales": "2030-03-25", "state": "failed", "at": "2030-03-26T03:10:00"},
        {"tick": "2030-03-26T04:00:30"},
        # The next day's run waits behind nothing (yesterday's failed) and is late too.
        {"sales": "2030-03-26", "state": "running", "at": "2030-03-27T02:00:05"},
        {"tick": "2030-03-27T04:00:30"},
        # A scheduler that comes back at 04:30 does not run the 04:00 check twice.
        {"tick": "2030-03-27T04:30:00"},
        {"finish": "2030-03-26", "at": "2030-03-27T05:10:00"},
    ]
    out, slack, pager = play(steps)
    assert [o.get("due") for o in out if "tick" in o["step"]] == [True, True, True, False]
    assert len(slack) == 2 and "failed" in slack[0] and "is running" in slack[1], slack
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [
        ("trigger", KEY.format("2030-03-25")),
        ("trigger", KEY.format("2030-03-26")),
        ("resolve", KEY.format("2030-03-26")),
    ], "each date has its own incident; the 26th's success resolves only its own"


def test_a_manual_rerun_of_yesterday_does_not_hide_todays_late_ingest(play):
    steps = yesterday_succeeded("2030-04-02", "2030-04-01", "2030-03-31")
    # Someone re-ran yesterday's date by hand at 01:00; today's 02:00 run is still going at 04:01.
    steps.insert(2, {"sales": "2030-03-31", "state": "success", "manual": True, "at": "2030-04-02T01:00:00"})
    out, slack, pager = play(
        [*steps, {"tick": "2030-04-02T04:01:00"}, {"finish": "2030-04-01", "at": "2030-04-02T04:20:00"}]
    )
    assert [o.get("due") for o in out if "tick" in o["step"]] == [True, True]
    assert out[-1]["state"] == "success"
    assert len(slack) == 1 and "ingest of 2030-04-01" in slack[0], slack
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [
        ("trigger", KEY.format("2030-04-01")),
        ("resolve", KEY.format("2030-04-01")),
    ]


def test_a_manual_run_that_finished_before_four_counts_as_the_ingest(play):
    steps = yesterday_succeeded("2030-04-09", "2030-04-08", "2030-04-07")
    steps[-1] = {"sales": "2030-04-08", "state": "failed", "at": "2030-04-09T02:50:00"}
    steps.append({"sales": "2030-04-08", "state": "success", "manual": True, "at": "2030-04-09T03:30:00"})
    out, slack, pager = play([*steps, {"tick": "2030-04-09T04:00:30"}])
    assert out[-1]["due"] is True
    assert (slack, pager) == ([], [])
