"""Airflow's backfill of the history days, started, restarted and followed up (which days, and
how far they got: localdev/backfill.py; how each Airflow runs a backfill: localdev/profile.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from localdev import backfill
from localdev.airflow_cli import AirflowCli
from localdev.airflow_env import AirflowEnv
from localdev.layout import ROOT
from localdev.metadata_db import MetadataDb
from localdev.processes import launch
from localdev.profile import Profile
from localdev.rest import Rest
from localdev.tracking import Tracker


@dataclass
class BackfillRunner:
    """The history backfill of one platform; Airflow 2's backfill process is ``tracker.backfill``."""

    profile: Profile
    logs: Path
    tracker: Tracker
    environment: AirflowEnv
    cli: AirflowCli
    db: MetadataDb
    rest: Rest
    env: dict[str, str] | None = field(default=None, repr=False)  # the backfill's, for its restarts

    def start(self, days: int) -> backfill.Backfill | None:
        """Backfill the ``days`` days before the scheduler's own run, in the background (localdev/backfill.py)."""
        if days == 0:
            return None
        return self.backfill(backfill.logical_dates(days, datetime.now(UTC)))

    def backfill(self, dates: list[datetime], env: dict[str, str] | None = None) -> backfill.Backfill:
        """Backfill the days of ``dates`` whose sales run has not succeeded, in the background;
        :meth:`resume` looks after it. ``env``: the backfill's environment (the platform's by default)."""
        history = backfill.Backfill(dates=dates, query=self.db.metadata)
        missing = history.missing()
        history.reported = {day for day in history.dates if day not in missing}
        if missing:
            self.env = env
            self._spawn(history, missing)
        return history

    def resume(self, history: backfill.Backfill) -> str | None:
        """Start the backfill again when it ended with days left unfinished.

        Airflow 2's backfill process can die under it (a metadata-database deadlock with the
        scheduler, a killed process); its runs then stay running and nothing else moves them.
        Airflow 3's scheduler runs a recorded backfill; one marked complete with days unfinished
        is recorded again. While Airflow 2's backfill runs, its tasks whose process ended without
        recording a state are set up for retry (``Backfill.requeue_orphans``). Returns what
        happened, for the terminal, or None.
        """
        if self.running():
            if self.profile.backfill_is_a_process:
                return "\n".join(history.requeue_orphans()) or None
            return None
        process = self.tracker.backfill
        if self.profile.backfill_is_a_process and process is None:
            return None
        left = history.unfinished()
        if not left:
            return None
        how = f"exit code {process.process.returncode}, log {process.log_path}" if process else "its backfill completed"
        if history.restarts >= backfill.MAX_RESTARTS:
            self.tracker.backfill = None
            self.tracker.write()
            return f"history: the backfill stopped {history.restarts + 1} times ({how}); {len(left)} days not ingested"
        history.restarts += 1
        history.retrying.update(left)
        self._spawn(history, left)
        return f"history: the backfill stopped ({how}); restarted for the {len(left)} unfinished days"

    def running(self) -> bool:
        if self.profile.backfill_is_a_process:
            return self.tracker.backfill is not None and self.tracker.backfill.running()
        return bool(
            self.db.metadata(
                "SELECT id FROM backfill WHERE dag_id = %s AND completed_at IS NULL AND NOT coalesce(is_paused, false)",
                (backfill.DAG_ID,),
            )
        )

    def _spawn(self, history: backfill.Backfill, days: list[datetime]) -> None:
        if not self.profile.backfill_is_a_process and self.running():
            return  # Airflow 3: a backfill recorded by an earlier run; the scheduler carries it on
        for run_id in history.unfinished_run_ids():
            # Left running by a backfill that was stopped: failed, so that the backfill redoes it.
            self.rest.api("PATCH", f"/dags/{backfill.DAG_ID}/dagRuns/{run_id}", {"state": "failed"})
        args = self.profile.backfill_args(backfill.DAG_ID, days[0], days[-1])
        if not self.profile.backfill_is_a_process:
            # Airflow 3: recorded in the metadata database; the scheduler runs it.
            self.cli.airflow(*args, what="recording the history backfill")
            return
        env = self.env or self.environment.build()
        history.parallelism = int(env.get("AIRFLOW__CORE__PARALLELISM") or backfill.AIRFLOW_PARALLELISM)
        self.tracker.backfill = launch(
            "Airflow backfill", "airflow", args, self.logs / "backfill.log", env=env, cwd=ROOT
        )
        self.tracker.write()

    def rerun_report(self, run_id: str) -> list[str]:
        """Clear the ``daily_reports`` tasks of one analytics run, so that the scheduler runs them again."""
        tasks = self.rest.api("GET", f"/dags/{backfill.REPORTS_DAG_ID}/tasks")["tasks"]
        task_ids = [t["task_id"] for t in tasks if t["task_id"].startswith(backfill.REPORT_TASKS)]
        task_ids.append("drop_staging")  # the re-run's build table goes at its end, as a run's does
        self.rest.api(
            "POST",
            f"/dags/{backfill.REPORTS_DAG_ID}/clearTaskInstances",
            {
                "dry_run": False,
                "dag_run_id": run_id,
                "task_ids": task_ids,
                "reset_dag_runs": True,
                "only_failed": False,
            },
        )
        return task_ids
