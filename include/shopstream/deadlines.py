"""The 04:00 deadline of the 02:00 ingest, checked by a DAG of its own (``ingest_deadline``).

``orders_etl`` starts at 02:00 UTC and must be done by 04:00. At 04:00 the ``ingest_deadline``
DAG looks at the sales runs for the business date that ingest is about and, when
``orders_etl.announce_orders`` has not succeeded, sends a critical Slack alert and triggers one
PagerDuty incident for that business date, whether the run is still going, failed, or never
started. The incident is resolved when that date's ingest succeeds (``resolve_when_met``).

Why not Airflow's task SLA: ``DagFileProcessor.manage_slas`` counts from the latest successful
run and skips the interval right after it, so with yesterday's ingest done and today's late it
records nothing until a day later; and the scheduler only asks for SLA checks while the DAG has
a running run, so a day whose ingest never started is never reported. SLAs are also gone in
Airflow 3 (see the README's Failure handling).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from airflow.decorators import task

from include.shopstream import alerting, outputs

log = logging.getLogger(__name__)

DONE_STATES = ("success", "skipped")


@dataclass(frozen=True)
class Deadline:
    """A producer whose run starting on ``schedule`` must have finished ``task_id`` ``due_after`` later."""

    name: str
    dag_id: str
    task_id: str
    schedule: str  # the producer's cron schedule (its runs start at their data interval's end)
    due_after: timedelta
    check_schedule: str  # cron of the moments the check runs: each start + due_after

    def interval(self, due_at: datetime) -> tuple[datetime, datetime]:
        """The data interval whose deadline is ``due_at`` (its run starts at the interval's end)."""
        from croniter import croniter

        end = croniter(self.schedule, due_at - self.due_after + timedelta(seconds=1)).get_prev(datetime)
        return croniter(self.schedule, end).get_prev(datetime), end

    def business_date(self, due_at: datetime) -> date:
        """The business date (the day the data interval starts) whose deadline is ``due_at``."""
        return self.interval(due_at)[0].date()

    def latest_due(self, moment: datetime) -> datetime:
        """The latest deadline at or before ``moment``."""
        from croniter import croniter

        return croniter(self.check_schedule, moment + timedelta(seconds=1)).get_prev(datetime)

    def incident_key(self, business_date: date) -> str:
        """One PagerDuty incident per business date."""
        return alerting.incident_key(self.dag_id, self.name, business_date.isoformat())


# Done means: the orders' Dataset event was recorded (its announcing task, the ingest's last step).
INGEST = Deadline(
    name="ingest-deadline",
    dag_id=outputs.ORDERS.dag_id,
    task_id=outputs.ORDERS.announced_by,
    schedule="0 2 * * *",
    due_after=timedelta(hours=2),
    check_schedule="0 4 * * *",
)
DEADLINES = (INGEST,)


def progress(deadline: Deadline, interval_end: datetime) -> tuple[bool, str]:
    """(done, what on-call reads): the state of ``deadline.task_id`` in the runs of that interval.

    Scheduled and manual runs of the same business date share its data interval, so a manual
    re-run that succeeded counts.
    """
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(DagRun.run_id, DagRun.state, TaskInstance.state)
            .outerjoin(
                TaskInstance,
                (TaskInstance.dag_id == DagRun.dag_id)
                & (TaskInstance.run_id == DagRun.run_id)
                & (TaskInstance.task_id == deadline.task_id),
            )
            .where(DagRun.dag_id == deadline.dag_id, DagRun.data_interval_end == interval_end)
            .order_by(DagRun.id)
        ).all()
    if any(task_state in DONE_STATES for _, _, task_state in rows):
        return True, "done"
    if not rows:
        return False, f"no run of {deadline.dag_id} has started for this date"
    return False, "; ".join(
        f"run {run_id} is {run_state}, {deadline.task_id} is {state or 'not started'}"
        for run_id, run_state, state in rows
    )


def enforce(deadline: Deadline, due_at: datetime) -> str | None:
    """Page if the business date whose deadline is ``due_at`` is not done; return the incident key.

    Raises when an alert could not be delivered, so that the check's retries try again (PagerDuty
    folds a repeated trigger into the same incident).
    """
    start, end = deadline.interval(due_at)
    business_date = start.date()
    done, state = progress(deadline, end)
    key = deadline.incident_key(business_date)
    if done:
        log.info("%s for %s was done by %s", deadline.task_id, business_date, due_at)
        return None
    details = {
        "dag": deadline.dag_id,
        "task": deadline.task_id,
        "logical_date": start.isoformat(),
        "business_date": business_date.isoformat(),
        "try_number": 0,
        "max_tries": 0,
        "log_url": f"{alerting._base_url()}/dags/{deadline.dag_id}/grid",
        "error": alerting.clip(f"not done by {due_at:%Y-%m-%d %H:%M} UTC: {state}", alerting.ERROR_LIMIT),
    }
    headline = f"{deadline.dag_id}: the ingest of {business_date} is not done by {due_at:%H:%M} UTC"
    slack_sent = alerting.slack("critical", headline, details)
    paged = alerting.pagerduty("trigger", details, summary=headline, key=key)
    if paged:
        alerting.remember_incident(key, details["log_url"])
        # The ingest may have finished between the check and the page: do not leave it open.
        if progress(deadline, end)[0]:
            alerting.resolve(key, details, f"{deadline.dag_id}: the ingest of {business_date} is done")
    if not (slack_sent and paged):
        raise RuntimeError(f"the {deadline.name} alert for {business_date} was not delivered (see the log above)")
    return key


def resolve_when_met(context) -> None:
    """A success callback: the task that meets a deadline resolves that business date's incident."""
    try:
        ti = context["ti"]
        for deadline in DEADLINES:
            if (ti.dag_id, ti.task_id) != (deadline.dag_id, deadline.task_id):
                continue
            business_date = context["data_interval_start"].date()
            details = alerting.describe(context)
            alerting.resolve(
                deadline.incident_key(business_date),
                details,
                f"{deadline.dag_id}: the ingest of {business_date} is done",
            )
    except Exception:  # bookkeeping must not fail a task that succeeded
        log.exception("could not resolve the deadline incident")


@task
def check_deadline(name: str, logical_date=None) -> str | None:
    """Page when the deadline ``name`` is missed for the business date due at this run's logical date."""
    deadline = next(d for d in DEADLINES if d.name == name)
    return enforce(deadline, deadline.latest_due(logical_date))
