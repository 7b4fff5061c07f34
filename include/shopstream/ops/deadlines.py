"""The 04:00 deadline of the 02:00 ingest, checked by a DAG of its own (``ingest_deadline``).

``orders_etl`` starts at 02:00 UTC and must be done by 04:00. Each check judges every deadline
that passed since the last successful check (at most ``look_back`` before its own) by the
producer's runs of that business date, read through ``run_states`` (no metadata-database
session in this module; on Airflow 3 the Task SDK and the orders Dataset's events):

- **met**: ``orders_etl.announce_orders`` succeeded by the due time: nothing is sent.
- **late**: it succeeded after the due time: a Slack warning that says by how much, no page.
- **missed**: it has not succeeded (still running, failed, or never started): a critical Slack
  alert and one PagerDuty incident for that business date, resolved when the date's ingest
  succeeds (``resolve_when_met``).
- **before the platform**: the sales DAG had no run created before the due time (a fresh
  install, or history older than the platform; Airflow 3 tells no run's creation time, there
  it is: the orders Dataset had no event before the due time): nothing is sent.

What each channel accepted is recorded per business date, so a retry sends only what was not
accepted, and a check that fails for good reports under the deadline's own incident key
(``check_failed``): one incident per business date, whatever went wrong with the check.

Why not Airflow's task SLA: ``DagFileProcessor.manage_slas`` counts from the latest successful
run and skips the interval right after it, so with yesterday's ingest done and today's late it
records nothing until a day later; and the scheduler only asks for SLA checks while the DAG has
a running run, so a day whose ingest never started is never reported. SLAs are also gone in
Airflow 3 (see docs/failure-handling.md, The 04:00 page).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from include.shopstream.ops import alerting
from include.shopstream.platform import business_dates, outputs, run_states, schedules
from include.shopstream.platform.compat import run_moment, task

log = logging.getLogger(__name__)

DONE_STATES = ("success", "skipped")

MET, LATE, MISSED, BEFORE_PLATFORM = "met", "late", "missed", "before the platform"


@dataclass(frozen=True)
class Deadline:
    """A producer whose run starting on ``schedule`` must have finished ``task_id`` ``due_after`` later."""

    name: str
    dag_id: str
    task_id: str
    schedule: str  # the producer's cron schedule (its runs start at their data interval's end)
    due_after: timedelta
    check_schedule: str  # cron of the moments the check runs: each start + due_after
    # After scheduler downtime a check also judges the deadlines no check saw, but only this far
    # back: older days are history, not something on-call can still act on.
    look_back: timedelta = timedelta(days=3)
    # The Dataset the deadline's task records when it is done: the check task's inlet on Airflow 3, whose
    # events tell on Airflow 3 when the data was done (run_states.runs_of_intervals).
    announces: Any = field(default=None, compare=False)

    def interval(self, due_at: datetime) -> tuple[datetime, datetime]:
        """The data interval whose deadline is ``due_at`` (its run starts at the interval's end)."""
        from croniter import croniter

        end = croniter(self.schedule, due_at - self.due_after + timedelta(seconds=1)).get_prev(datetime)
        return croniter(self.schedule, end).get_prev(datetime), end

    def business_date(self, due_at: datetime) -> date:
        """The business date (``business_dates``) whose deadline is ``due_at``."""
        return business_dates.business_date_of(self.interval(due_at)[0])

    def latest_due(self, moment: datetime) -> datetime:
        """The latest deadline at or before ``moment``."""
        from croniter import croniter

        return croniter(self.check_schedule, moment + timedelta(seconds=1)).get_prev(datetime)

    def dues(
        self, until: datetime, after: datetime | None = None, look_back: timedelta | None = None
    ) -> list[datetime]:
        """The deadlines in (``after``, ``until``] and within ``look_back`` of ``until``, oldest first."""
        from croniter import croniter

        floor = until - (self.look_back if look_back is None else look_back)
        if after is not None and after > floor:
            floor = after
        found, moments = [], croniter(self.check_schedule, until + timedelta(seconds=1))
        while (due := moments.get_prev(datetime)) > floor:
            found.append(due)
        return found[::-1]

    def incident_key(self, business_date: date) -> str:
        """One PagerDuty incident per business date."""
        return alerting.incident_key(self.dag_id, self.name, business_date.isoformat())


# Done means: the orders' Dataset event was recorded (its announcing task, the ingest's last step).
INGEST = Deadline(
    name="ingest-deadline",
    dag_id=outputs.ORDERS.dag_id,
    task_id=outputs.ORDERS.announced_by,
    schedule=schedules.SALES_CORE,
    due_after=timedelta(hours=2),
    check_schedule="0 4 * * *",
    announces=outputs.ORDERS.dataset,
)
DEADLINES = (INGEST,)


# -- what the runs say ------------------------------------------------------------------------


Run = run_states.TaskRun  # one producer run of a business date and the state of the deadline's task in it


@dataclass(frozen=True)
class History:
    runs: dict[datetime, tuple[Run, ...]]  # by data interval end; a date without runs is absent
    producer_since: datetime | None  # since when the producer has been running (None: never)
    checked_until: datetime | None  # the latest deadline a successful scheduled check judged
    since_text: str | None = None  # what on-call reads about producer_since (None: the default)


def read_history(
    deadline: Deadline,
    intervals: list[tuple[datetime, datetime]],
    check_dag_id: str | None = None,
    before: datetime | None = None,
) -> History:
    """Everything the check reads about the producer's and its own runs (``run_states``).

    Scheduled and manual runs of the same business date share its data interval, so a manual
    re-run that succeeded counts. The deadline's task is done when it recorded ``announces``,
    the check task's inlet (on Airflow 3 its event tells when; on Airflow 2 the task's end).
    """
    runs = run_states.runs_of_intervals(deadline.dag_id, deadline.task_id, intervals, announces=deadline.announces)
    since = run_states.producer_since(deadline.dag_id, announces=deadline.announces)
    last_check = None
    if check_dag_id is not None and before is not None:
        last_check = run_states.last_scheduled_success(check_dag_id, before)
    return History(
        runs=runs,
        producer_since=since.at,
        checked_until=deadline.latest_due(last_check) if last_check is not None else None,
        since_text=since.describe(_utc),
    )


# -- the verdict on one deadline -----------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    deadline: Deadline
    due_at: datetime
    outcome: str  # MET, LATE, MISSED or BEFORE_PLATFORM
    state: str  # what on-call reads
    done_at: datetime | None = None

    @property
    def business_date(self) -> date:
        return self.deadline.business_date(self.due_at)

    def line(self) -> str:
        due = f"due {self.due_at:%Y-%m-%d %H:%M} UTC"
        return f"{self.deadline.dag_id} {self.business_date} ({due}): {self.outcome}, {self.state}"


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def judge(
    deadline: Deadline,
    due_at: datetime,
    runs: tuple[Run, ...],
    producer_since: datetime | None,
    by_hand: bool = False,
    since_text: str | None = None,
) -> Verdict:
    """Met, late, missed or before the platform (never for a check run by hand): see the module's docstring."""
    done = [run for run in runs if run.task_state in DONE_STATES]
    ends = [run.task_end for run in done if run.task_end is not None]
    done_at = min(ends) if ends else None
    if done and (done_at is None or done_at <= due_at):
        when = f"done at {_utc(done_at)}" if done_at else "done"
        return Verdict(deadline, due_at, MET, f"{when}, by the deadline", done_at)
    if not by_hand and (producer_since is None or producer_since > due_at):
        first = since_text or (
            f"its first run was created at {_utc(producer_since)}" if producer_since else "it has no run"
        )
        return Verdict(deadline, due_at, BEFORE_PLATFORM, f"{deadline.dag_id} was not running yet ({first})")
    if done:
        late = int((done_at - due_at).total_seconds() // 60)
        return Verdict(deadline, due_at, LATE, f"done at {_utc(done_at)}, missed by {late} min", done_at)
    if not runs:
        return Verdict(deadline, due_at, MISSED, f"no run of {deadline.dag_id} has started for this date")
    return Verdict(
        deadline,
        due_at,
        MISSED,
        "; ".join(
            f"run {r.run_id} is {r.run_state}, {deadline.task_id} is {r.task_state or 'not started'}" for r in runs
        ),
    )


# -- alerts, delivered once per channel ----------------------------------------------------

# What each channel accepted for a deadline's business date, as an Airflow Variable (JSON), so
# that a retry, a later check or the check's failure callback sends only what is still owed.
DELIVERED_PREFIX = "shopstream_deadline_alert::"


@dataclass(frozen=True)
class Alert:
    key: str  # the deadline's incident key for the business date
    severity: str  # "critical" pages as well; "warning" goes to Slack only
    headline: str
    details: dict[str, Any] = field(hash=False)

    def channels(self) -> tuple[str, ...]:
        return ("slack", "pagerduty") if self.severity == "critical" else ("slack-warning",)


class UndeliveredError(RuntimeError):
    """Some channel did not accept a deadline alert; the check's retries send only that."""

    def __init__(self, owed: list[tuple[Alert, list[str]]]) -> None:
        self.owed = owed
        what = "; ".join(f"{alert.key}: {', '.join(channels)}" for alert, channels in owed)
        super().__init__(f"not accepted yet ({what}); see the log above")


def delivered(key: str) -> dict[str, str]:
    from include.shopstream.platform.compat import Variable

    return Variable.get(DELIVERED_PREFIX + key, None, deserialize_json=True) or {}


def _record(key: str, channel: str) -> None:
    from include.shopstream.platform.compat import Variable

    accepted = {**delivered(key), channel: datetime.now(UTC).isoformat()}
    Variable.set(DELIVERED_PREFIX + key, accepted, serialize_json=True)


def deliver(alert: Alert) -> list[str]:
    """Send ``alert`` on the channels that have not accepted it yet; return those that still have not."""
    already = delivered(alert.key)
    missing = []
    for channel in alert.channels():
        if channel in already:
            log.info("%s: %s already accepted this alert at %s", alert.key, channel, already[channel])
            continue
        if channel == "pagerduty":
            accepted = alerting.pagerduty("trigger", alert.details, summary=alert.headline, key=alert.key)
            if accepted:
                alerting.remember_incident(alert.key, alert.details["log_url"])
        else:
            accepted = alerting.slack(alert.severity, alert.headline, alert.details)
        if accepted:
            _record(alert.key, channel)
        else:
            missing.append(channel)
    return missing


def _forget_old_records(deadline: Deadline, due_at: datetime) -> None:
    """Records of dates no check will judge again (older than ``look_back``): a week's worth."""
    from include.shopstream.platform.compat import Variable

    for due in deadline.dues(due_at - deadline.look_back, look_back=timedelta(days=7)):
        Variable.delete(DELIVERED_PREFIX + deadline.incident_key(deadline.business_date(due)))


def _details(deadline: Deadline, verdict: Verdict, start: datetime, error: str | None) -> dict[str, Any]:
    return {
        "dag": deadline.dag_id,
        "task": deadline.task_id,
        "logical_date": start.isoformat(),
        "business_date": verdict.business_date.isoformat(),
        "try_number": 0,
        "max_tries": 0,
        "log_url": f"{alerting._base_url()}/dags/{deadline.dag_id}/grid",
        "error": alerting.clip(error, alerting.ERROR_LIMIT) if error else None,
    }


def alert_for(verdict: Verdict) -> Alert | None:
    deadline, due_at, business_date = verdict.deadline, verdict.due_at, verdict.business_date
    start, _ = deadline.interval(due_at)
    key = deadline.incident_key(business_date)
    if verdict.outcome == MISSED:
        details = _details(deadline, verdict, start, f"not done by {due_at:%Y-%m-%d %H:%M} UTC: {verdict.state}")
        headline = f"{deadline.dag_id}: the ingest of {business_date} is not done by {due_at:%H:%M} UTC"
        return Alert(key, "critical", headline, details)
    if verdict.outcome == LATE:
        details = _details(deadline, verdict, start, None)
        headline = f"{deadline.dag_id}: the ingest of {business_date} missed {due_at:%H:%M} UTC: {verdict.state}"
        return Alert(key, "warning", headline, details)
    return None


def enforce(deadline: Deadline, due_at: datetime, check_dag_id: str | None = None, by_hand: bool = False) -> list[str]:
    """Judge the deadlines up to ``due_at`` that no successful check judged; alert on each as owed.

    A check run by hand (``by_hand``) judges ``due_at`` alone and pages whatever the platform's age:
    someone asked about that date. Returns one line per deadline judged (also logged). Raises
    ``UndeliveredError`` when a channel did not accept an alert, after trying every date.
    """
    candidates = [due_at] if by_hand else deadline.dues(due_at)
    intervals = {due: deadline.interval(due) for due in candidates}
    ends = {due: interval[1] for due, interval in intervals.items()}
    history = read_history(deadline, list(intervals.values()), check_dag_id, None if by_hand else due_at)
    dues = candidates if by_hand else deadline.dues(due_at, history.checked_until)
    lines, owed = [], []
    for due in dues:
        runs = history.runs.get(ends[due], ())
        verdict = judge(deadline, due, runs, history.producer_since, by_hand, history.since_text)
        lines.append(verdict.line())
        (log.warning if verdict.outcome in (MISSED, LATE) else log.info)("%s", verdict.line())
        key = deadline.incident_key(verdict.business_date)
        done = f"{deadline.dag_id}: the ingest of {verdict.business_date} is done"
        if verdict.outcome != MISSED:
            # An incident this key opened earlier (a failed check's page) is over.
            alerting.resolve(key, {"dag": deadline.dag_id, "task": deadline.task_id}, done)
        alert = alert_for(verdict)
        if alert is None:
            continue
        missing = deliver(alert)
        if missing:
            owed.append((alert, missing))
        if verdict.outcome == MISSED and alerting.incident_is_open(key):
            # The ingest may have finished between the check and the page: do not leave it open.
            again = read_history(deadline, [intervals[due]]).runs.get(ends[due], ())
            if any(run.task_state in DONE_STATES for run in again):
                alerting.resolve(key, alert.details, done)
    if not by_hand:
        _forget_old_records(deadline, due_at)
    if owed:
        raise UndeliveredError(owed)
    return lines


class DeadlineMetNotifier(alerting.OutboxNotifier):
    """A success callback: the task that meets a deadline resolves that business date's incident."""

    failing = "could not resolve the deadline incident"

    def send(self, context) -> None:
        ti = context["ti"]
        for deadline in DEADLINES:
            if (ti.dag_id, ti.task_id) != (deadline.dag_id, deadline.task_id):
                continue
            business_date = business_dates.business_date(context)
            details = alerting.describe(context)
            alerting.resolve(
                deadline.incident_key(business_date),
                details,
                f"{deadline.dag_id}: the ingest of {business_date} is done",
            )


class DeadlineCheckFailedNotifier(alerting.OutboxNotifier):
    """The check's failure callback: whatever failed, it reports under the deadline's own key.

    A check whose alerts were not all accepted tries what is owed once more. A check that could
    not judge at all (the runs unreadable, a timeout) pages for the business date it
    is named after, as a missed deadline does; the date's ingest success, or a later check that
    finds it done, resolves that incident.
    """

    failing = "the deadline check's failure callback failed"

    def send(self, context) -> None:
        error = context.get("exception")
        if isinstance(error, UndeliveredError):
            for alert, _ in error.owed:
                if missing := deliver(alert):
                    log.error("%s: %s did not accept the alert after every retry", alert.key, ", ".join(missing))
            return
        ti = context["ti"]
        name = (getattr(ti.task, "op_kwargs", None) or {}).get("name", INGEST.name)
        deadline = next(d for d in DEADLINES if d.name == name)
        due_at = deadline.latest_due(run_moment(context))
        business_date = deadline.business_date(due_at)
        details = {**alerting.describe(context), "business_date": business_date.isoformat()}
        headline = f"{ti.dag_id}: the {due_at:%H:%M} UTC check of the ingest of {business_date} failed"
        key = deadline.incident_key(business_date)
        if missing := deliver(Alert(key, "critical", headline, details)):
            log.error("%s: %s did not accept the alert", key, ", ".join(missing))


# The callbacks policies.py names.
resolve_when_met = DeadlineMetNotifier()
check_failed = DeadlineCheckFailedNotifier()


# The Datasets the deadlines' tasks record are the check's inlets: their events say when the
# data was done (run_states reads them on Airflow 3).
@task(inlets=run_states.event_inlets(*(d.announces for d in DEADLINES)))
def check_deadline(name: str, logical_date=None, dag_run=None, ti=None) -> list[str]:
    """Judge the deadline ``name`` for the dates due up to this run's logical date; see ``enforce``."""
    deadline = next(d for d in DEADLINES if d.name == name)
    by_hand = run_states.triggered_by_hand(dag_run)
    # Airflow 3 may start a run by hand without a logical date: the moment it was due stands in.
    moment = run_moment({"logical_date": logical_date, "dag_run": dag_run})
    return enforce(deadline, deadline.latest_due(moment), ti.dag_id if ti else None, by_hand)
