"""The whole local platform: services, Airflow's metadata database, settings and Airflow.

``make run`` is ``python -m localdev run``. Everything it keeps lives in one git-ignored state
folder (``.local/`` by default), so a second run picks up where the first stopped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import psycopg2.extras

from localdev import backfill, postgres, s3
from localdev.airflow_cli import AirflowCli
from localdev.airflow_env import PLATFORM_AIRFLOW_CONFIG, AirflowEnv
from localdev.airflow_processes import AirflowProcesses
from localdev.generator import ShopStreamData
from localdev.layout import (
    METADATA_DB,
    ROOT,
    SOURCE_DB,
    WAREHOUSE_DB,
    Ports,
    dag_ids,
    dags_folder,
    plugins_folder,
    read_dotenv,
)
from localdev.processes import Service, ensure_port_free, launch, wait_until
from localdev.profile import ADMIN_PASSWORD, ADMIN_USER, Profile, call_api, current
from localdev.services import BackingServices, platform_data
from localdev.tracking import STATE_FILE, Tracker, ensure_not_running, stop_recorded


class Stack:
    """The services and Airflow processes of one local platform: ``backing`` (Postgres, the mocked
    S3, the simulators), ``environment`` (Airflow's settings), ``cli`` (Airflow commands),
    ``airflow_processes`` (the scheduler, the web process...) and ``tracker`` (the processes
    started, in ``stack.json``)."""

    def __init__(
        self,
        state_dir: Path,
        ports: Ports | None = None,
        postgres_url: str | None = None,
        failure_rate: float = 0.1,
        history_days: int = 21,
        data: ShopStreamData | None = None,
        profile: Profile | None = None,
    ) -> None:
        self._state_dir = state_dir
        self._profile = profile or current()
        self.tracker = Tracker(state_dir / STATE_FILE)
        self.backing = BackingServices(
            state_dir,
            self.tracker,
            self.profile,
            ports or Ports(),
            postgres_url,
            failure_rate,
            history_days,
            platform_data() if data is None else data,
        )
        self.environment = AirflowEnv(state_dir, self.profile, self.backing)
        self.cli = AirflowCli(self.environment, self.backing)
        self.airflow_processes = AirflowProcesses(self.environment, self.backing)
        self._backfill_env: dict[str, str] | None = None

    # -- where things are (a test may bring its own Postgres, lake or ports) -----------------

    @property
    def state_dir(self) -> Path:
        return self._state_dir

    @property
    def profile(self) -> Profile:
        return self._profile

    @property
    def ports(self) -> Ports:
        return self.backing.ports

    @ports.setter
    def ports(self, ports: Ports) -> None:
        self.backing.ports = ports

    @property
    def pg(self) -> postgres.PostgresServer | None:
        return self.backing.pg

    @pg.setter
    def pg(self, server: postgres.PostgresServer | None) -> None:
        self.backing.pg = server

    @property
    def lake(self) -> s3.S3Server | None:
        return self.backing.lake

    @lake.setter
    def lake(self, server: s3.S3Server | None) -> None:
        self.backing.lake = server

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def services(self) -> list[Service]:
        """The processes that live as long as the platform, newest last (a caller may add its own)."""
        return self.tracker.services

    @property
    def backfill_process(self) -> Service | None:
        return self.tracker.backfill

    @backfill_process.setter
    def backfill_process(self, service: Service | None) -> None:
        self.tracker.backfill = service

    @property
    def state_file(self) -> Path:
        return self.tracker.state_file

    # -- services ----------------------------------------------------------------------------

    def start_services(self) -> None:
        self.backing.start()

    def attach(self) -> None:
        self.backing.attach()

    def seed_source(self, history_days: int = 0) -> int:
        return self.backing.seed_source(history_days)

    def endpoints(self) -> list[str]:
        return self.backing.endpoints()

    # -- Airflow --------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        return self.environment.secrets()

    def airflow_env(self) -> dict[str, str]:
        return self.environment.build()

    def run_airflow(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        return self.cli.run_airflow(*args, env=env, timeout=timeout)

    def airflow(
        self, *args: str, env: Mapping[str, str] | None = None, what: str = "", timeout: float | None = None
    ) -> str:
        return self.cli.airflow(*args, env=env, what=what, timeout=timeout)

    def apply_settings(self, env: Mapping[str, str] | None = None) -> str:
        return self.cli.apply_settings(env)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.webserver}"

    def prepare_airflow(self) -> None:
        self.cli.prepare()

    def register_dags(self, env: Mapping[str, str] | None = None) -> None:
        self.cli.register_dags(env)

    def start_scheduler(self, env: Mapping[str, str] | None = None, log_name: str = "scheduler.log") -> Service:
        return self.airflow_processes.scheduler(env, log_name)

    def start_triggerer(self, env: Mapping[str, str] | None = None) -> Service:
        return self.airflow_processes.triggerer(env)

    def start_dag_processor(self, env: Mapping[str, str] | None = None) -> Service:
        return self.airflow_processes.dag_processor(env)

    def start_web(self, env: Mapping[str, str] | None = None) -> Service:
        return self.airflow_processes.web(env)

    def start_log_server(self, env: Mapping[str, str] | None = None) -> Service:
        return self.airflow_processes.log_server(env)

    def start_airflow(self) -> dict[str, str]:
        """The profile's Airflow processes (localdev/profile.py) and the log server; wait until the
        health endpoint says every part is healthy and the REST API lists every DAG.

        A DAG file that does not import counts as there once its import error is: returns those
        errors (file name -> the error's last line), for the terminal.
        """
        env = self.airflow_env()
        self.register_dags(env)
        self.tracker.track(self.start_scheduler(env))
        starters = {"dag-processor": self.start_dag_processor, "triggerer": self.start_triggerer}
        for process in self.profile.processes:
            if process.args[0] in starters:
                self.tracker.track(starters[process.args[0]](env))
        self.tracker.track(self.start_log_server(env))
        web = self.start_web(env)
        self.tracker.track(web)

        expected = dag_ids(Path(env["AIRFLOW__CORE__DAGS_FOLDER"]))
        errors: dict[str, str] = {}

        def up() -> bool:
            # Healthy, and every DAG parsed: the scheduler registers them some seconds after /health.
            if not self.healthy():
                return False
            missing = expected - self.listed_dag_ids()
            if missing:
                errors.clear()
                errors.update(self.import_errors())
            return missing <= {Path(name).stem for name in errors}

        wait_until(up, web, timeout=240, what=f"healthy, with the REST API listing all {len(expected)} DAGs")
        return errors

    def healthy(self) -> bool:
        """Whether the web process's health endpoint says every part of this profile is healthy."""
        health = self.api("GET", "/health")
        return all((health.get(part) or {}).get("status") == "healthy" for part in self.profile.healthy_parts)

    def listed_dag_ids(self) -> set[str]:
        """The DAG ids the REST API lists."""
        return {dag["dag_id"] for dag in self.api("GET", "/dags?limit=100")["dags"]}

    def import_errors(self) -> dict[str, str]:
        """DAG files that do not import, as the REST API lists them: file name -> the error's last line."""
        errors = {}
        for error in self.api("GET", "/importErrors?limit=100")["import_errors"]:
            lines = (error.get("stack_trace") or "").strip().splitlines()
            errors[Path(error["filename"]).name] = lines[-1] if lines else ""
        return errors

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call to the REST API (``/api/v1`` or ``/api/v2`` + ``path``) as the admin user."""
        return call_api(self.profile, self.base_url, method, path, body)

    def query(self, database: str, statement: str, params=None) -> list[dict]:
        """Rows of one statement on one of the stack's databases, as dicts (none for a command)."""
        conn = self.pg.connect(database)
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(statement, params)
                return [dict(row) for row in cur.fetchall()] if cur.description else []
        finally:
            conn.close()

    def metadata(self, statement: str, params=None) -> list[dict]:
        """Rows of one statement on Airflow's metadata database.

        Written with Airflow 2's names (``execution_date``, the ``dataset`` tables); on Airflow 3
        they are rewritten to its own (``logical_date``, the ``asset`` tables).
        """
        return self.query(METADATA_DB, self.profile.sql(statement), params)

    def start_backfill(self, days: int) -> backfill.Backfill | None:
        """Backfill the ``days`` days before the scheduler's own run, in the background (localdev/backfill.py)."""
        if days == 0:
            return None
        return self.backfill(backfill.logical_dates(days, datetime.now(UTC)))

    def backfill(self, dates: list[datetime], env: dict[str, str] | None = None) -> backfill.Backfill:
        """Backfill the days of ``dates`` whose sales run has not succeeded, in the background;
        ``resume_backfill`` looks after it. ``env``: the backfill's environment (``airflow_env()``)."""
        history = backfill.Backfill(dates=dates, query=self.metadata)
        missing = history.missing()
        history.reported = {day for day in history.dates if day not in missing}
        if missing:
            self._backfill_env = env
            self._spawn_backfill(history, missing)
        return history

    def resume_backfill(self, history: backfill.Backfill) -> str | None:
        """Start the backfill again when it ended with days left unfinished.

        Airflow 2's backfill process can die under it (a metadata-database deadlock with the
        scheduler, a killed process); its runs then stay running and nothing else moves them.
        Airflow 3's scheduler runs a recorded backfill; one marked complete with days unfinished
        is recorded again. While Airflow 2's backfill runs, its tasks whose process ended without
        recording a state are set up for retry (``Backfill.requeue_orphans``). Returns what
        happened, for the terminal, or None.
        """
        if self.backfill_running():
            if self.profile.backfill_is_a_process:
                return "\n".join(history.requeue_orphans()) or None
            return None
        process = self.backfill_process
        if self.profile.backfill_is_a_process and process is None:
            return None
        left = history.unfinished()
        if not left:
            return None
        how = f"exit code {process.process.returncode}, log {process.log_path}" if process else "its backfill completed"
        if history.restarts >= backfill.MAX_RESTARTS:
            self.backfill_process = None
            self.tracker.write()
            return f"history: the backfill stopped {history.restarts + 1} times ({how}); {len(left)} days not ingested"
        history.restarts += 1
        history.retrying.update(left)
        self._spawn_backfill(history, left)
        return f"history: the backfill stopped ({how}); restarted for the {len(left)} unfinished days"

    def backfill_running(self) -> bool:
        if self.profile.backfill_is_a_process:
            return self.backfill_process is not None and self.backfill_process.running()
        return bool(
            self.metadata(
                "SELECT id FROM backfill WHERE dag_id = %s AND completed_at IS NULL AND NOT coalesce(is_paused, false)",
                (backfill.DAG_ID,),
            )
        )

    def _spawn_backfill(self, history: backfill.Backfill, days: list[datetime]) -> None:
        if not self.profile.backfill_is_a_process and self.backfill_running():
            return  # Airflow 3: a backfill recorded by an earlier run; the scheduler carries it on
        for run_id in history.unfinished_run_ids():
            # Left running by a backfill that was stopped: failed, so that the backfill redoes it.
            self.api("PATCH", f"/dags/{backfill.DAG_ID}/dagRuns/{run_id}", {"state": "failed"})
        args = self.profile.backfill_args(backfill.DAG_ID, days[0], days[-1])
        if not self.profile.backfill_is_a_process:
            # Airflow 3: recorded in the metadata database; the scheduler runs it.
            self.airflow(*args, what="recording the history backfill")
            return
        self.backfill_process = launch(
            "Airflow backfill",
            "airflow",
            args,
            self.logs / "backfill.log",
            env=self._backfill_env or self.airflow_env(),
            cwd=ROOT,
        )
        self.tracker.write()

    def rerun_report(self, run_id: str) -> list[str]:
        """Clear the ``daily_reports`` tasks of one analytics run, so that the scheduler runs them again."""
        tasks = self.api("GET", f"/dags/{backfill.REPORTS_DAG_ID}/tasks")["tasks"]
        task_ids = [t["task_id"] for t in tasks if t["task_id"].startswith(backfill.REPORT_TASKS)]
        task_ids.append("drop_staging")  # the re-run's build table goes at its end, as a run's does
        self.api(
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

    # -- lifecycle ---------------------------------------------------------------------------

    def background(self) -> list[Service]:
        return self.tracker.background()

    def check_alive(self) -> None:
        self.tracker.check_alive()

    def stop_backfill(self) -> None:
        """Stop Airflow 2's backfill process and its tasks (Airflow 3's backfills are the scheduler's)."""
        self.tracker.stop_backfill()

    def stop(self) -> None:
        """Stop every process this stack started, newest first."""
        self.tracker.stop()


# What callers import from here, though it lives in the module that owns it.
__all__ = [
    "ADMIN_PASSWORD",
    "ADMIN_USER",
    "METADATA_DB",
    "PLATFORM_AIRFLOW_CONFIG",
    "ROOT",
    "SOURCE_DB",
    "WAREHOUSE_DB",
    "Ports",
    "Stack",
    "dag_ids",
    "dags_folder",
    "ensure_not_running",
    "ensure_port_free",
    "plugins_folder",
    "read_dotenv",
    "stop_recorded",
]
