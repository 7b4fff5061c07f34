"""The 04:00 page for a late ingest, played through Airflow's own code with the clock frozen.

Each scenario is an ordinary history: the scheduler created yesterday's and today's sales runs,
``ingest_deadline`` checked yesterday at 04:00. The probe (deadline_probe.py) records that
history in a real metadata database, then at each frozen moment asks the check DAG's timetable
whether a run is due, as the scheduler does, runs it with ``DAG.test`` (retries and failure
callbacks included) and the alerts travel over HTTP to a real sink. Each play starts from an
empty history in the probes' database, so the first recorded sales run is the platform's first.
"""

from __future__ import annotations

import json

import pytest

from tests.alerting.conftest import run_probe

# The probes use their own metadata database on the platform group's Postgres (conftest.py).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

KEY = "shopstream/sales_core_pipeline/ingest-deadline/{}"
# The check's retries a minute apart, played in well under a second each.
FAST_RETRIES = {"SHOPSTREAM_RETRY_DELAY_SCALE": "0.005"}


@pytest.fixture
def play(probe_airflow, sink):
    """Run the probe's steps; return its step results and what reached Slack and PagerDuty."""

    def run(steps: list[dict]) -> tuple[list[dict], list[str], list[dict]]:
        before = len(sink.messages())
        lines = run_probe(
            probe_airflow, "deadline_probe", stdin=json.dumps(steps), env={**sink.connections(), **FAST_RETRIES}
        )
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


def events(pager: list[dict]) -> list[tuple[str, str]]:
    return [(e["event_action"], e["dedup_key"]) for e in pager]


def test_a_check_whose_slack_alert_is_refused_opens_no_second_incident(play):
    steps = yesterday_succeeded("2030-05-07", "2030-05-06", "2030-05-05")
    out, slack, pager = play(
        [
            *steps,
            # Slack refuses every connection through the check's four tries; PagerDuty is up.
            {"tick": "2030-05-07T04:00:30", "down": ["slack"]},
            {"finish": "2030-05-06", "at": "2030-05-07T04:40:00"},
            # The next day Slack is back; today's ingest was on time.
            {"sales": "2030-05-07", "state": "success", "at": "2030-05-08T02:40:00"},
            {"tick": "2030-05-08T04:00:30"},
        ]
    )
    check, finish, next_check = out[-4], out[-3], out[-1]
    assert check["due"] is True and check["check_state"] == "failed" and check["tries"] == 4, check
    assert finish["state"] == "success"
    assert events(pager) == [
        ("trigger", KEY.format("2030-05-06")),
        ("resolve", KEY.format("2030-05-06")),
    ], "one page, under the deadline's key, resolved by the ingest; a retry re-sends only what was refused"
    # The failed check judged nothing for good: the next one judges that date again and tells
    # Slack, which never heard of it, what became of it.
    assert next_check["check_state"] == "success", next_check
    assert len(slack) == 1 and slack[0].startswith(":warning: *WARNING*"), slack
    assert "ingest of 2030-05-06 missed 04:00 UTC: done at 2030-05-07 04:40 UTC, missed by 40 min" in slack[0]
    assert [line.split(": ")[1].split(",")[0] for line in next_check["lines"]] == ["late", "met"]


def test_a_scheduler_down_over_two_four_oclocks_pages_every_date_left_unchecked(play):
    steps = [
        {"sales": "2030-05-13", "state": "success", "at": "2030-05-14T02:40:00"},
        {"tick": "2030-05-14T04:00:30"},
        # The scheduler stops at 10:00 on the 14th and is back at 09:00 on the 16th: no run for the
        # 14th; the 15th's is created as it comes back (catchup=False) and is still running.
        {"sales": "2030-05-15", "state": "running", "at": "2030-05-16T09:00:05"},
        {"tick": "2030-05-16T09:00:30"},
        {"finish": "2030-05-15", "at": "2030-05-16T09:30:00"},
    ]
    out, slack, pager = play(steps)
    assert [o["due"] for o in out if "tick" in o["step"]] == [True, True], "the timetable runs only the latest slot"
    assert len(slack) == 2, slack
    assert "ingest of 2030-05-14 is not done by 04:00 UTC" in slack[0] and "no run of" in slack[0]
    assert "ingest of 2030-05-15 is not done by 04:00 UTC" in slack[1] and "is running" in slack[1]
    assert events(pager) == [
        ("trigger", KEY.format("2030-05-14")),
        ("trigger", KEY.format("2030-05-15")),
        ("resolve", KEY.format("2030-05-15")),
    ]


def test_a_week_of_downtime_pages_only_the_last_three_dates(play):
    steps = [
        {"sales": "2030-06-10", "state": "success", "at": "2030-06-11T02:40:00"},
        {"tick": "2030-06-11T04:00:30"},
        # Down from the 11th at 10:00 to the 18th at 08:00: seven deadlines passed unchecked.
        {"sales": "2030-06-17", "state": "running", "at": "2030-06-18T08:00:05"},
        {"tick": "2030-06-18T08:00:30"},
    ]
    out, slack, pager = play(steps)
    assert events(pager) == [("trigger", KEY.format(f"2030-06-{day}")) for day in (15, 16, 17)]
    assert len(slack) == 3, slack
    assert len(out[-1]["lines"]) == 3, out[-1]


def test_a_late_check_judges_by_the_due_time_and_warns_for_an_ingest_done_late(play):
    steps = yesterday_succeeded("2030-05-21", "2030-05-20", "2030-05-19")
    out, slack, pager = play(
        [
            *steps,
            # The scheduler is down from 03:50 to 05:10; the ingest's last task ends at 04:25.
            {"finish": "2030-05-20", "at": "2030-05-21T04:25:00"},
            {"tick": "2030-05-21T05:10:00"},
            # The next day the ingest is done at 03:50, and the check again runs at 05:10.
            {"sales": "2030-05-21", "state": "success", "at": "2030-05-22T03:50:00"},
            {"tick": "2030-05-22T05:10:00"},
        ]
    )
    late, on_time = out[-3], out[-1]
    assert late["due"] is True and late["check_state"] == "success", late
    assert len(slack) == 1 and slack[0].startswith(":warning: *WARNING*"), slack
    assert "the ingest of 2030-05-20 missed 04:00 UTC: done at 2030-05-21 04:25 UTC, missed by 25 min" in slack[0]
    assert pager == [], "an ingest already done is no page"
    assert late["lines"] == [
        "sales_core_pipeline 2030-05-20 (due 2030-05-21 04:00 UTC): "
        "late, done at 2030-05-21 04:25 UTC, missed by 25 min"
    ]
    assert on_time["lines"] == [
        "sales_core_pipeline 2030-05-21 (due 2030-05-22 04:00 UTC): met, done at 2030-05-22 03:50 UTC, by the deadline"
    ]


def test_a_fresh_platform_started_after_four_pages_nobody_but_pages_the_next_missed_day(play):
    steps = [
        # The platform's first start, at 05:00: the scheduler creates the latest 02:00 sales run
        # and the history backfill an older one; the latest 04:00 check is created at once.
        {"sales": "2030-06-24", "state": "running", "at": "2030-06-25T05:00:05"},
        {"sales": "2030-06-23", "state": "success", "at": "2030-06-25T05:00:10"},
        {"tick": "2030-06-25T05:00:30"},
        {"finish": "2030-06-24", "at": "2030-06-25T05:20:00"},
        # The next day's ingest never starts (the DAG was paused): the platform was running.
        {"tick": "2030-06-26T04:00:30"},
    ]
    out, slack, pager = play(steps)
    first = out[2]
    assert first["due"] is True and first["check_state"] == "success", first
    assert len(slack) == 1 and "ingest of 2030-06-25" in slack[0] and "no run of" in slack[0], slack
    assert events(pager) == [("trigger", KEY.format("2030-06-25"))]
    assert len(first["lines"]) == 3 and all("before the platform" in line for line in first["lines"]), first


def test_a_check_that_cannot_read_the_metadata_database_pages_under_the_deadlines_key(play):
    steps = yesterday_succeeded("2030-07-02", "2030-07-01", "2030-06-30")
    out, slack, pager = play(
        [
            *steps,
            # Today's ingest is late, and the check loses the metadata database on every try.
            {"tick": "2030-07-02T04:00:30", "down": ["metadata"]},
            {"finish": "2030-07-01", "at": "2030-07-02T04:30:00"},
            # The next day's ingest is done at 03:10, and again the check cannot read anything.
            {"sales": "2030-07-02", "state": "success", "at": "2030-07-03T03:10:00"},
            {"tick": "2030-07-03T04:00:30", "down": ["metadata"]},
            # The day after, the check reads again: both dates are done, their incidents are over.
            {"sales": "2030-07-03", "state": "success", "at": "2030-07-04T02:40:00"},
            {"tick": "2030-07-04T04:00:30"},
        ]
    )
    failed = [o for o in out if o["step"].get("down")]
    assert [(o["check_state"], o["tries"]) for o in failed] == [("failed", 4), ("failed", 4)], failed
    assert events(pager) == [
        ("trigger", KEY.format("2030-07-01")),
        ("resolve", KEY.format("2030-07-01")),
        ("trigger", KEY.format("2030-07-02")),
        ("resolve", KEY.format("2030-07-02")),
    ], "a check that fails pages under the deadline's key, which the ingest or a later check resolves"
    assert len(slack) == 3, slack
    assert "ingest_deadline: the 04:00 UTC check of the ingest of 2030-07-01 failed" in slack[0]
    assert "OperationalError" in slack[0]
    assert "the ingest of 2030-07-01 missed 04:00 UTC: done at 2030-07-02 04:30 UTC, missed by 30 min" in slack[2]
    assert [line.split(": ")[1].split(",")[0] for line in out[-1]["lines"]] == ["late", "met", "met"]
