"""The 04:00 deadline (ops/deadlines.py): its dates, its verdicts, and what it sends for each.

The runs come from a stand-in for ``run_states`` (or for ``read_history``), the Airflow Variables
that record what each channel accepted from a dict, and Slack and PagerDuty from a recorder of
``alerting``'s calls; tests/alerting/test_ingest_deadline.py plays the whole check through Airflow.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from include.shopstream.ops import alerting, deadlines
from include.shopstream.platform import compat, outputs, run_states

DUE = datetime(2030, 3, 5, 4, tzinfo=UTC)  # the deadline of business date 2030-03-04
START, END = datetime(2030, 3, 4, 2, tzinfo=UTC), datetime(2030, 3, 5, 2, tzinfo=UTC)
LONG_AGO = datetime(2029, 1, 1, tzinfo=UTC)  # the producer has been running since
INGEST = deadlines.INGEST


def due(day: int) -> datetime:
    """The deadline of the ingest whose run starts on 2030-03-``day`` at 02:00."""
    return datetime(2030, 3, day, 4, tzinfo=UTC)


def key(business_date: str) -> str:
    return f"shopstream/sales_core_pipeline/ingest-deadline/{business_date}"


def done(at: datetime | None, state: str = "success") -> run_states.TaskRun:
    return run_states.TaskRun(f"scheduled__{at}", "success", state, at)


def running() -> run_states.TaskRun:
    return run_states.TaskRun("scheduled__now", "running", "running", None)


class Variables:
    """Airflow Variables in a dict, read and written as deadlines.py does (JSON values)."""

    def __init__(self) -> None:
        self.values: dict[str, dict] = {}

    def get(self, name, default=None, deserialize_json=False):
        return self.values.get(name, default)

    def set(self, name, value, serialize_json=False) -> None:
        self.values[name] = value

    def delete(self, name) -> None:
        self.values.pop(name, None)


class Channels:
    """Slack and PagerDuty as ``alerting`` offers them, each taking or refusing what it is sent."""

    def __init__(self) -> None:
        self.refusing: set[str] = set()
        self.sent: list[tuple] = []
        self.open: set[str] = set()

    def slack(self, severity, headline, details, *, queue=True) -> bool:
        self.sent.append(("slack", severity, headline))
        return "slack" not in self.refusing

    def pagerduty(self, action, details, summary="", key=None, *, queue=True) -> bool:
        self.sent.append(("pagerduty", action, key))
        return "pagerduty" not in self.refusing

    def resolve(self, key, details, summary) -> None:
        self.sent.append(("resolve", key))
        self.open.discard(key)

    def remember(self, key, note) -> None:
        self.open.add(key)


@pytest.fixture
def variables(monkeypatch) -> Variables:
    store = Variables()
    monkeypatch.setattr(compat, "Variable", store)
    return store


@pytest.fixture
def channels(monkeypatch, variables) -> Channels:
    fake = Channels()
    monkeypatch.setattr(alerting, "slack", fake.slack)
    monkeypatch.setattr(alerting, "pagerduty", fake.pagerduty)
    monkeypatch.setattr(alerting, "resolve", fake.resolve)
    monkeypatch.setattr(alerting, "remember_incident", fake.remember)
    monkeypatch.setattr(alerting, "incident_is_open", lambda key: key in fake.open)
    return fake


def histories(monkeypatch, *answers: dict, since: datetime | None = LONG_AGO, checked_until=None) -> list:
    """Make ``read_history`` answer these runs (by deadline) in turn, the last one from then on."""
    asked = []

    def read_history(deadline, intervals, check_dag_id=None, before=None):
        asked.append((intervals, check_dag_id, before))
        runs = answers[min(len(asked), len(answers)) - 1]
        by_end = {deadline.interval(moment)[1]: tuple(found) for moment, found in runs.items()}
        return deadlines.History(by_end, since, checked_until)

    monkeypatch.setattr(deadlines, "read_history", read_history)
    return asked


# -- when each ingest is due --------------------------------------------------------------------


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


def test_the_dates_judged_are_those_since_the_last_check_within_the_look_back_oldest_first():
    assert INGEST.dues(due(10)) == [due(8), due(9), due(10)], "three days back, no further"
    assert INGEST.dues(due(10), after=due(9)) == [due(10)], "what a check already judged is not judged again"
    assert INGEST.dues(due(10), after=due(1)) == [due(8), due(9), due(10)], "the look-back caps an old last check"
    assert INGEST.dues(due(10) - timedelta(seconds=1)) == [due(7), due(8), due(9)]
    assert INGEST.dues(due(10), look_back=timedelta(days=5)) == [due(d) for d in range(6, 11)]


# -- what the runs say --------------------------------------------------------------------------


def test_the_check_asks_run_states_about_the_dates_and_its_own_last_run(monkeypatch):
    asked = []
    run = run_states.TaskRun("scheduled__2030-03-04T02:00:00+00:00", "success", "success", DUE - timedelta(minutes=5))

    def runs_of_intervals(dag_id, task_id, intervals, *, announces=None):
        asked.append(("runs", dag_id, task_id, intervals, announces))
        return {END: (run,)}

    def producer_since(dag_id, *, announces=None):
        asked.append(("since", dag_id, announces))
        return run_states.Since(START, "its first run was created", "it has no run")

    def last_scheduled_success(dag_id, before):
        asked.append(("last", dag_id, before))
        return DUE - timedelta(days=1, seconds=-30)

    for name, fake in (
        ("runs_of_intervals", runs_of_intervals),
        ("producer_since", producer_since),
        ("last_scheduled_success", last_scheduled_success),
    ):
        monkeypatch.setattr(run_states, name, fake)
    history = deadlines.read_history(deadlines.INGEST, [(START, END)], "ingest_deadline", DUE)
    assert asked == [
        ("runs", "sales_core_pipeline", "orders_etl.announce_orders", [(START, END)], outputs.ORDERS.dataset),
        ("since", "sales_core_pipeline", outputs.ORDERS.dataset),
        ("last", "ingest_deadline", DUE),
    ]
    assert history.runs == {END: (run,)}
    assert history.checked_until == DUE - timedelta(days=1)
    verdict = deadlines.judge(deadlines.INGEST, DUE, history.runs[END], history.producer_since)
    assert verdict.line() == (
        "sales_core_pipeline 2030-03-04 (due 2030-03-05 04:00 UTC): met, done at 2030-03-05 03:55 UTC, by the deadline"
    )


def test_before_the_platform_says_what_the_back_end_knows():
    # Airflow 3 tells no run's creation time: the first orders event stands for it.
    since = run_states.Since(DUE + timedelta(hours=1), f"it first announced {outputs.ORDERS.uri}", "never")
    verdict = deadlines.judge(deadlines.INGEST, DUE, (), since.at, since_text=since.describe(deadlines._utc))
    assert verdict.outcome == deadlines.BEFORE_PLATFORM
    assert verdict.state == (
        f"sales_core_pipeline was not running yet (it first announced {outputs.ORDERS.uri} at 2030-03-05 05:00 UTC)"
    )
    # Airflow 2's words, as before run_states.
    since = run_states.Since(None, "its first run was created", "it has no run")
    verdict = deadlines.judge(deadlines.INGEST, DUE, (), since.at, since_text=since.describe(deadlines._utc))
    assert verdict.state == "sales_core_pipeline was not running yet (it has no run)"


def test_a_missed_date_names_each_runs_state():
    runs = (run_states.TaskRun("scheduled__x", "running", None, None),)
    verdict = deadlines.judge(deadlines.INGEST, DUE, runs, START)
    assert verdict.outcome == deadlines.MISSED
    assert verdict.state == "run scheduled__x is running, orders_etl.announce_orders is not started"


def test_the_orders_dataset_is_the_checks_inlet():
    from include.shopstream.platform.compat import DAG

    with DAG("probe_ingest_deadline", schedule=None, start_date=START):
        check = deadlines.check_deadline(deadlines.INGEST.name)
    # Only Airflow 3 needs the inlet; Airflow 2's lineage would push it as an XCom of the check.
    assert check.operator.inlets == ([outputs.ORDERS.dataset] if run_states.AIRFLOW_3 else [])


# -- the verdict on one date --------------------------------------------------------------------


def test_an_ingest_done_exactly_at_the_due_time_meets_it_and_a_minute_later_is_late():
    met = deadlines.judge(INGEST, DUE, (done(DUE),), LONG_AGO)
    assert (met.outcome, met.done_at) == (deadlines.MET, DUE)
    assert met.state == "done at 2030-03-05 04:00 UTC, by the deadline"
    late = deadlines.judge(INGEST, DUE, (done(DUE + timedelta(minutes=1, seconds=59)),), LONG_AGO)
    assert (late.outcome, late.state) == (deadlines.LATE, "done at 2030-03-05 04:01 UTC, missed by 1 min")


def test_the_earliest_done_run_decides_and_a_skipped_task_counts_as_done():
    runs = (running(), done(DUE + timedelta(hours=2)), done(DUE - timedelta(minutes=30), state="skipped"))
    verdict = deadlines.judge(INGEST, DUE, runs, LONG_AGO)
    assert (verdict.outcome, verdict.done_at) == (deadlines.MET, DUE - timedelta(minutes=30))


def test_a_done_task_whose_end_is_unknown_meets_the_deadline():
    verdict = deadlines.judge(INGEST, DUE, (done(None),), LONG_AGO)
    assert (verdict.outcome, verdict.state) == (deadlines.MET, "done, by the deadline")


def test_a_failed_task_is_no_ingest_done():
    failed = run_states.TaskRun("scheduled__x", "failed", "failed", DUE - timedelta(hours=1))
    verdict = deadlines.judge(INGEST, DUE, (failed,), LONG_AGO)
    assert (verdict.outcome, verdict.state) == (
        deadlines.MISSED,
        "run scheduled__x is failed, orders_etl.announce_orders is failed",
    )


def test_a_date_without_runs_is_missed_once_the_producer_ran_and_before_the_platform_until_then():
    assert deadlines.judge(INGEST, DUE, (), LONG_AGO).state == "no run of sales_core_pipeline has started for this date"
    assert deadlines.judge(INGEST, DUE, (), DUE).outcome == deadlines.MISSED, "a producer running since the due time"
    before = deadlines.judge(INGEST, DUE, (), DUE + timedelta(seconds=1))
    assert (before.outcome, before.state) == (
        deadlines.BEFORE_PLATFORM,
        "sales_core_pipeline was not running yet (its first run was created at 2030-03-05 04:00 UTC)",
    )
    assert deadlines.judge(INGEST, DUE, (), None).state == "sales_core_pipeline was not running yet (it has no run)"


def test_a_check_run_by_hand_judges_a_date_whatever_the_platforms_age():
    assert deadlines.judge(INGEST, DUE, (), None, by_hand=True).outcome == deadlines.MISSED
    late = deadlines.judge(INGEST, DUE, (done(DUE + timedelta(hours=1)),), None, by_hand=True)
    assert late.outcome == deadlines.LATE


# -- what each verdict sends --------------------------------------------------------------------


def test_a_missed_date_alerts_critical_on_both_channels_and_a_late_one_warns_slack_only():
    missed = deadlines.alert_for(deadlines.judge(INGEST, DUE, (running(),), LONG_AGO))
    assert (missed.key, missed.severity, missed.channels()) == (key("2030-03-04"), "critical", ("slack", "pagerduty"))
    assert missed.headline == "sales_core_pipeline: the ingest of 2030-03-04 is not done by 04:00 UTC"
    assert missed.details["error"].startswith("not done by 2030-03-05 04:00 UTC: run scheduled__now is running")
    assert (missed.details["business_date"], missed.details["logical_date"]) == ("2030-03-04", START.isoformat())
    assert (missed.details["try_number"], missed.details["max_tries"]) == (0, 0), "a deadline is no task try"
    assert missed.details["log_url"].endswith("/dags/sales_core_pipeline/grid")

    late = deadlines.alert_for(deadlines.judge(INGEST, DUE, (done(DUE + timedelta(minutes=25)),), LONG_AGO))
    assert (late.severity, late.channels(), late.details["error"]) == ("warning", ("slack-warning",), None)
    assert late.headline == (
        "sales_core_pipeline: the ingest of 2030-03-04 missed 04:00 UTC: done at 2030-03-05 04:25 UTC, missed by 25 min"
    )


@pytest.mark.parametrize(("runs", "since"), [((done(DUE),), LONG_AGO), ((), None)], ids=["met", "before the platform"])
def test_a_met_date_and_one_before_the_platform_send_nothing(runs, since):
    assert deadlines.alert_for(deadlines.judge(INGEST, DUE, runs, since)) is None


def test_the_error_of_a_date_with_many_runs_stays_within_the_alert_limit():
    runs = tuple(run_states.TaskRun(f"manual__{n:04}" + "x" * 60, "failed", "failed", None) for n in range(50))
    alert = deadlines.alert_for(deadlines.judge(INGEST, DUE, runs, LONG_AGO))
    assert len(alert.details["error"]) == alerting.ERROR_LIMIT and alert.details["error"].endswith("…")


def test_each_channel_is_sent_an_alert_until_it_accepts_it_and_never_again(channels, variables):
    alert = deadlines.alert_for(deadlines.judge(INGEST, DUE, (running(),), LONG_AGO))
    channels.refusing = {"slack"}
    assert deadlines.deliver(alert) == ["slack"]
    assert channels.open == {alert.key}, "the accepted page is an open incident"
    assert set(deadlines.delivered(alert.key)) == {"pagerduty"}
    channels.refusing = set()
    assert deadlines.deliver(alert) == []
    assert deadlines.deliver(alert) == []
    assert [c[0] for c in channels.sent] == ["slack", "pagerduty", "slack"], "each channel took it once"
    assert set(variables.values[deadlines.DELIVERED_PREFIX + alert.key]) == {"slack", "pagerduty"}


def test_a_refused_page_opens_no_incident(channels):
    alert = deadlines.alert_for(deadlines.judge(INGEST, DUE, (running(),), LONG_AGO))
    channels.refusing = {"pagerduty"}
    assert deadlines.deliver(alert) == ["pagerduty"]
    assert channels.open == set() and deadlines.delivered(alert.key).keys() == {"slack"}


def test_the_undelivered_error_names_each_date_and_channel_still_owed():
    alert = deadlines.Alert(key("2030-03-04"), "critical", "h", {})
    error = deadlines.UndeliveredError([(alert, ["slack", "pagerduty"])])
    assert str(error) == f"not accepted yet ({key('2030-03-04')}: slack, pagerduty); see the log above"
    assert error.owed == [(alert, ["slack", "pagerduty"])]


# -- one check ----------------------------------------------------------------------------------


def test_a_check_judges_every_date_since_the_last_and_pages_each_missed_one(monkeypatch, channels):
    asked = histories(
        monkeypatch,
        {due(8): [done(due(8) - timedelta(hours=1))], due(9): [running()]},
        checked_until=due(7),
    )
    lines = deadlines.enforce(INGEST, due(10), "ingest_deadline")
    assert [line.split(": ")[1].split(",")[0] for line in lines] == ["met", "missed", "missed"]
    assert asked[0] == ([INGEST.interval(due(d)) for d in (8, 9, 10)], "ingest_deadline", due(10))
    pages = [c[2] for c in channels.sent if c[:2] == ("pagerduty", "trigger")]
    assert pages == [key("2030-03-08"), key("2030-03-09")]
    assert ("resolve", key("2030-03-07")) in channels.sent, "a date met closes what a failed check opened"
    assert channels.open == {key("2030-03-08"), key("2030-03-09")}


def test_a_check_does_not_judge_again_what_the_last_successful_check_judged(monkeypatch, channels):
    histories(monkeypatch, {}, checked_until=due(9))
    lines = deadlines.enforce(INGEST, due(10), "ingest_deadline")
    assert len(lines) == 1 and lines[0].startswith("sales_core_pipeline 2030-03-09 (due 2030-03-10 04:00 UTC)")


def test_an_ingest_done_between_the_check_and_its_page_is_resolved_at_once(monkeypatch, channels):
    histories(monkeypatch, {due(10): [running()]}, {due(10): [done(due(10) + timedelta(seconds=5))]})
    deadlines.enforce(INGEST, due(10), by_hand=True)
    assert channels.sent[-1] == ("resolve", key("2030-03-09"))
    assert channels.open == set()


def test_a_check_raises_for_what_a_channel_refused_after_trying_every_date(monkeypatch, channels):
    histories(monkeypatch, {}, checked_until=due(8))
    channels.refusing = {"slack"}
    with pytest.raises(deadlines.UndeliveredError) as raised:
        deadlines.enforce(INGEST, due(10), "ingest_deadline")
    assert [(alert.key, missing) for alert, missing in raised.value.owed] == [
        (key("2030-03-08"), ["slack"]),
        (key("2030-03-09"), ["slack"]),
    ]


def test_a_check_by_hand_judges_its_own_date_alone_and_forgets_no_record(monkeypatch, channels, variables):
    asked = histories(monkeypatch, {}, since=None, checked_until=due(1))
    old = deadlines.DELIVERED_PREFIX + key("2030-03-01")  # a scheduled check would forget it
    variables.values[old] = {"slack": "then"}
    lines = deadlines.enforce(INGEST, due(10), "ingest_deadline", by_hand=True)
    assert len(lines) == 1 and ": missed, " in lines[0], "someone asked about that date: it pages"
    assert asked[0] == ([INGEST.interval(due(10))], "ingest_deadline", None)
    assert old in variables.values


def test_a_scheduled_check_forgets_the_records_of_the_week_before_its_look_back(monkeypatch, channels, variables):
    histories(monkeypatch, {moment: [done(moment)] for moment in INGEST.dues(due(10))})
    for day in range(1, 10):
        variables.values[deadlines.DELIVERED_PREFIX + key(f"2030-03-{day:02}")] = {"slack": "then"}
    for day in (20, 27, 28):
        variables.values[deadlines.DELIVERED_PREFIX + key(f"2030-02-{day}")] = {"slack": "then"}
    deadlines.enforce(INGEST, due(10), "ingest_deadline")
    kept = sorted(name.rsplit("/", 1)[1] for name in variables.values)
    assert kept == ["2030-02-20", "2030-02-27", "2030-03-07", "2030-03-08", "2030-03-09"]


# -- the callbacks ------------------------------------------------------------------------------


def check_context(error, logical_date=DUE, name=INGEST.name) -> dict:
    ti = SimpleNamespace(
        dag_id="ingest_deadline",
        task_id="check_deadline",
        task=SimpleNamespace(op_kwargs={"name": name}),
        try_number=4,
        max_tries=3,
        log_url="http://localhost:8080/log",
    )
    return {"ti": ti, "logical_date": logical_date, "data_interval_start": logical_date, "exception": error}


def test_a_check_that_could_not_judge_pages_under_the_deadlines_key_for_its_date(channels):
    deadlines.check_failed(check_context(RuntimeError("metadata database gone"), logical_date=due(10)))
    assert channels.sent == [
        ("slack", "critical", "ingest_deadline: the 04:00 UTC check of the ingest of 2030-03-09 failed"),
        ("pagerduty", "trigger", key("2030-03-09")),
    ]
    assert channels.open == {key("2030-03-09")}


def test_a_check_that_failed_on_delivery_sends_only_what_is_still_owed(channels, variables):
    alert = deadlines.alert_for(deadlines.judge(INGEST, DUE, (running(),), LONG_AGO))
    variables.values[deadlines.DELIVERED_PREFIX + alert.key] = {"pagerduty": "then"}
    deadlines.check_failed(check_context(deadlines.UndeliveredError([(alert, ["slack"])])))
    assert channels.sent == [("slack", "critical", alert.headline)]


def test_only_the_deadlines_own_task_resolves_its_dates_incident(channels):
    for dag_id, task_id in (
        (INGEST.dag_id, "orders_etl.extract_orders"),
        ("analytics_and_reporting_pipeline", INGEST.task_id),
        (INGEST.dag_id, INGEST.task_id),
    ):
        context = check_context(None, logical_date=START)
        context["ti"].dag_id, context["ti"].task_id = dag_id, task_id
        deadlines.resolve_when_met(context)
    assert channels.sent == [("resolve", key("2030-03-04"))]


def by_hand_without_a_logical_date(context: dict, run_after: datetime) -> dict:
    """Airflow 3's context of a run started by hand with no logical date (nor data interval)."""
    context = {k: v for k, v in context.items() if k not in ("logical_date", "data_interval_start")}
    return {**context, "dag_run": SimpleNamespace(run_type="manual", run_after=run_after)}


def test_a_check_by_hand_without_a_logical_date_that_could_not_judge_still_pages(channels):
    context = by_hand_without_a_logical_date(check_context(RuntimeError("no answer")), due(10) + timedelta(hours=5))
    deadlines.check_failed(context)
    assert channels.sent == [
        ("slack", "critical", "ingest_deadline: the 04:00 UTC check of the ingest of 2030-03-09 failed"),
        ("pagerduty", "trigger", key("2030-03-09")),
    ]


def test_a_check_by_hand_without_a_logical_date_judges_the_latest_deadline_passed(monkeypatch):
    judged = []
    monkeypatch.setattr(deadlines, "enforce", lambda deadline, due_at, *rest: judged.append(due_at) or [])
    run = SimpleNamespace(run_type="manual", external_trigger=True, run_after=due(10) + timedelta(hours=5))
    deadlines.check_deadline.function(INGEST.name, logical_date=None, dag_run=run, ti=None)
    assert judged == [due(10)]
