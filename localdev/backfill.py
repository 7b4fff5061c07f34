"""History, the Airflow way: the seeded days go through sales_core_pipeline with Airflow's backfill.

``make run`` seeds weeks of orders into the source database, but ``sales_core_pipeline`` has
catchup off, so the scheduler ingests only the latest interval. After the platform is up, Airflow's
backfill runs the intervals before it, one after another (the DAG's ``max_active_runs``), in the
background: on Airflow 2 ``airflow dags backfill`` in its own process, on Airflow 3 ``airflow
backfill create``, which the scheduler runs (localdev/profile.py). Each run publishes its Datasets, so analytics and
observability follow as they do for a scheduled run, and the 30-day chart fills in.

- ``SHOPSTREAM_BACKFILL_DAYS`` (default 21, the seeded history) is how many days; 0 turns it off.
- A day whose run has succeeded (backfilled, scheduled or triggered) is not run again, so a
  second ``make run`` backfills only what is missing; a run that a stopped backfill left
  unfinished is marked failed and its tasks re-run.
- The runner prints a line per finished day; the runs show in the grid as backfill runs.
- On Airflow 2 a backfilled task whose process ended without recording its state (killed, or
  its last write lost to a metadata-database deadlock), or never started though it was queued,
  is set up for retry: the scheduler's zombie and stuck-in-queued handling leave backfill runs
  alone and the backfill itself would wait for it forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock

from localdev import LocalDevError

DAG_ID = "sales_core_pipeline"
DEFAULT_DAYS = 21
SETTING = "SHOPSTREAM_BACKFILL_DAYS"
MAX_DAYS = 366
RUN_HOUR = 2  # sales_core_pipeline runs at 02:00 UTC
MAX_RESTARTS = 3  # a backfill process that died with days unfinished is started again this often
# A task process that stopped heartbeating this long ago is dead (Airflow's own zombie threshold);
# a task queued this long ago while a worker was free never started.
ORPHAN_AFTER_SECONDS = 300
AIRFLOW_PARALLELISM = 32  # [core] parallelism when the environment does not set it


def days_from_env(env: Mapping[str, str]) -> int:
    """``SHOPSTREAM_BACKFILL_DAYS`` as a number of days (0 to 366); one clear line otherwise."""
    value = env.get(SETTING, "").strip()
    if not value:
        return DEFAULT_DAYS
    if not value.isdigit() or int(value) > MAX_DAYS:
        raise LocalDevError(f"{SETTING} must be a whole number of days from 0 to {MAX_DAYS}, got {value!r}")
    return int(value)


def logical_dates(days: int, now: datetime) -> list[datetime]:
    """The ``days`` daily intervals before the one the scheduler runs itself (catchup off).

    A run with logical date D 02:00 ingests D 02:00 to D+1 02:00; the scheduler runs the latest
    interval that has ended, so the backfill ends the day before it.
    """
    latest_end = datetime.combine(now.date(), clock(RUN_HOUR), tzinfo=UTC)
    if now < latest_end:
        latest_end -= timedelta(days=1)
    scheduled = latest_end - timedelta(days=1)
    return [scheduled - timedelta(days=n) for n in range(days, 0, -1)]


def seeded_days_needed(days: int, now: datetime) -> int:
    """How many days of history the source must hold for ``days`` backfilled intervals."""
    dates = logical_dates(days, now)
    return (now.date() - dates[0].date()).days if dates else 0


@dataclass
class Backfill:
    """One background backfill of the missing days, and its progress lines.

    ``query`` reads the metadata database with Airflow 2's names (``MetadataDb.metadata`` translates).
    """

    dates: list[datetime]
    query: Callable[[str, tuple], list[dict]]
    started: float = field(default_factory=time.monotonic)
    reported: set[datetime] = field(default_factory=set)
    restarts: int = 0
    # Days handed to a restarted backfill: their runs were set failed so that it redoes them,
    # so "failed" is final for them only once that backfill has ended.
    retrying: set[datetime] = field(default_factory=set)
    # The backfill executor's task processes ([core] parallelism): a task queued while that many
    # run may still be waiting for a worker.
    parallelism: int = AIRFLOW_PARALLELISM

    def runs(self) -> dict[datetime, tuple[str, str]]:
        """Logical date -> (state, run id) of the sales run of each wanted day that has one."""
        if not self.dates:
            return {}
        rows = self.query(
            "SELECT execution_date AS day, state, run_id FROM dag_run WHERE dag_id = %s"
            " AND execution_date >= %s AND execution_date <= %s",
            (DAG_ID, self.dates[0], self.dates[-1]),
        )
        wanted = set(self.dates)
        return {row["day"]: (row["state"], row["run_id"]) for row in rows if row["day"] in wanted}

    def states(self) -> dict[datetime, str]:
        return {day: state for day, (state, _) in self.runs().items()}

    def unfinished_run_ids(self) -> list[str]:
        """Runs of wanted days left running or queued (by a backfill that was stopped)."""
        return [run_id for state, run_id in self.runs().values() if state not in ("success", "failed")]

    def unfinished(self) -> list[datetime]:
        """Wanted days whose run has not finished (none yet, queued or running)."""
        states = self.states()
        return [d for d in self.dates if states.get(d) not in ("success", "failed")]

    def missing(self) -> list[datetime]:
        states = self.states()
        return [d for d in self.dates if states.get(d) != "success"]

    def progress(self, backfill_running: bool = False) -> list[str]:
        """A line for each wanted day that finished since the last call."""
        lines = []
        states = self.states()

        def finished(day: datetime) -> bool:
            if day in self.retrying and backfill_running:
                return states.get(day) == "success"
            return states.get(day) in ("success", "failed")

        for day in [d for d in self.dates if d not in self.reported and finished(d)]:
            self.reported.add(day)
            done = sum(1 for d in self.dates if states.get(d) == "success")
            minutes = (time.monotonic() - self.started) / 60
            outcome = "ingested" if states[day] == "success" else "FAILED (see its run in the grid)"
            lines.append(f"history: {day:%Y-%m-%d} {outcome}  ({done}/{len(self.dates)} days, {minutes:.1f} min)")
        return lines

    def complete(self) -> bool:
        return len(self.reported) == len(self.dates)

    def requeue_orphans(self) -> list[str]:
        """Set up for retry (or failed, on the last try) the backfilled tasks nobody runs any more; a line each."""
        lines = []
        params = {"dag_id": DAG_ID, "after": ORPHAN_AFTER_SECONDS, "parallelism": self.parallelism}
        for row in self.query(REQUEUE_ORPHANS, params):
            what = "ended without recording its state" if row["was"] == "running" else "was queued and never started"
            then = "set up for retry" if row["state"] == "up_for_retry" else "failed, it had no try left"
            lines.append(f"history: {row['task_id']} of {row['run_id']} {what}; {then}")
        return lines


# Airflow 2.10's backfill reads its running tasks' states from the metadata database and lets the
# executor's "finished" events go (their keys carry the next try's number, its own do not); the
# scheduler reaps zombies and tasks stuck in queued only among the tasks it queued. Nobody
# therefore finishes a backfilled task
# - still "running" whose LocalTaskJob has ended (or stopped heartbeating): killed, or its last
#   write lost to a metadata-database deadlock;
# - still "queued" long after the backfill's executor had a free worker for it (fewer of its
#   tasks running, with a live LocalTaskJob, than [core] parallelism): its `airflow
#   tasks run` process ended before it recorded "running" (a deadlock with another task's
#   mini-scheduler while it starts, a killed process). The backfill would count it as running
#   for ever.
# Each is what the scheduler's own handling would make of it: up for retry while it has tries
# left (the backfill queues it again) and failed otherwise. The state read first is checked again
# as the row is updated, so a task that has just started is left alone.
REQUEUE_ORPHANS = """
WITH orphan AS (
    SELECT ti.dag_id, ti.task_id, ti.run_id, ti.map_index, ti.state AS was
    FROM task_instance ti
    JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id AND dr.run_type = 'backfill'
    WHERE ti.dag_id = %(dag_id)s AND (
        (ti.state = 'running' AND EXISTS (
            SELECT FROM job
            WHERE job.id = ti.job_id AND job.job_type = 'LocalTaskJob'
              AND (job.state <> 'running' OR job.latest_heartbeat < now() - make_interval(secs => %(after)s))))
        OR (ti.state = 'queued' AND ti.queued_dttm < now() - make_interval(secs => %(after)s)
            AND (SELECT count(*) FROM task_instance busy JOIN job ON job.id = busy.job_id
                 WHERE busy.queued_by_job_id = ti.queued_by_job_id AND busy.state = 'running'
                   AND job.state = 'running' AND job.latest_heartbeat >= now() - make_interval(secs => %(after)s)
                ) < %(parallelism)s)
    )
)
UPDATE task_instance ti
SET state = CASE WHEN ti.try_number <= ti.max_tries THEN 'up_for_retry' ELSE 'failed' END,
    end_date = now(), updated_at = now()
FROM orphan
WHERE ti.dag_id = orphan.dag_id AND ti.task_id = orphan.task_id AND ti.run_id = orphan.run_id
  AND ti.map_index = orphan.map_index AND ti.state = orphan.was
RETURNING ti.task_id, ti.run_id, ti.state, orphan.was
"""


REPORTS_DAG_ID = "analytics_and_reporting_pipeline"
REPORT_TASKS = "daily_reports."

# The analytics run of the newest business date, and when its first daily_reports task started:
# a run may finish after the history is in while its report was drawn before.
LATEST_REPORT = """
SELECT dr.run_id, dr.state, dr.end_date, max(de.extra::json->>'ds') AS ds, min(ti.start_date) AS report_started
FROM dag_run dr
JOIN dagrun_dataset_event dde ON dde.dag_run_id = dr.id
JOIN dataset_event de ON de.id = dde.event_id
LEFT JOIN task_instance ti ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id AND starts_with(ti.task_id, %s)
WHERE dr.dag_id = %s
GROUP BY dr.run_id, dr.state, dr.end_date
ORDER BY ds DESC, dr.end_date DESC NULLS FIRST
LIMIT 1
"""
LATEST_REPORT_PARAMS = (REPORT_TASKS, REPORTS_DAG_ID)


def latest_report(query: Callable[[str, tuple], list[dict]], history_done: datetime) -> tuple[str, dict | None]:
    """Whether the newest business date's report was drawn before the history was in.

    The scheduler ingests the latest interval at once, so that day's report and 30-day chart are
    made before the backfill has loaded the days before it; re-running its ``daily_reports``
    (which reads the date from the run's own triggering events) redraws them over the whole
    history. What counts is when the report's tasks started, not when the run ended: a run that
    finishes after the history is in may have read the warehouse before. Answers
    ``("stale", run)``, ``("fresh", run)`` or ``("pending", run or None)``.
    """
    rows = query(LATEST_REPORT, LATEST_REPORT_PARAMS)
    run = rows[0] if rows else None
    if run is None or run["state"] != "success" or run["report_started"] is None:
        return "pending", run
    return ("stale" if run["report_started"] < history_done else "fresh"), run
