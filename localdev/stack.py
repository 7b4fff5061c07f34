"""The whole local platform: services, Airflow's metadata database, settings and Airflow.

``make run`` is ``python -m localdev run``. Everything it keeps lives in one git-ignored state
folder (``.local/`` by default), so a second run picks up where the first stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import psycopg2.extras

from localdev import LocalDevError, backfill, postgres, s3
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

# Settings that the deployment image sets too (Dockerfile ENV); a test keeps them equal.
PLATFORM_AIRFLOW_CONFIG = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.* astro.*",
    "AIRFLOW__ASTRO_SDK__AUTO_ADD_INLETS_OUTLETS": "False",
    # How long an idle scheduler loop sleeps (default 1 s). A finished task's downstream task and a
    # Dataset event's consumer run wait for the next loop: 0.25 s took the trigger latency's p95
    # from 0.77 to 0.31 s and one day end to end from 2.7 to 2.0 times its critical path (make bench).
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
}


class Stack:
    """The services and Airflow processes of one local platform: ``backing`` (Postgres, the mocked
    S3, the simulators), Airflow, and ``tracker`` (the processes started, in ``stack.json``)."""

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
        """The profile's keys (a Fernet key, a web secret and, on Airflow 3, a JWT secret), made once
        per state folder, never committed."""
        path = self.state_dir / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in self.profile.secret_names if name not in values]
        if not missing:
            return values
        from cryptography.fernet import Fernet

        for name in missing:
            values[name] = Fernet.generate_key().decode() if name == "fernet_key" else secrets.token_hex(32)
        # Created owner-only: written first and narrowed after, the keys would be readable meanwhile.
        # A file that lacks a key is replaced whole, by a new owner-only file.
        target = path if not path.exists() else path.with_name("secrets.json.new")
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(values))
        if target != path:
            target.replace(path)
        return values

    def airflow_env(self) -> dict[str, str]:
        """The environment of every Airflow process of this stack."""
        keys = self._secrets()
        env = dict(os.environ)
        env.update(PLATFORM_AIRFLOW_CONFIG)
        env.update(
            {
                "AIRFLOW_HOME": str(self.state_dir / "airflow"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder(env)),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder(env)),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # A developer's machine also runs the databases: keep task processes to what its
                # cores can start within the DAG import timeout (raised for the same reason).
                "AIRFLOW__CORE__PARALLELISM": str(min(16, 4 * (os.cpu_count() or 2))),
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.pg.url(METADATA_DB, driver="postgresql+psycopg2"),
                # Task logs are served by localdev/log_server.py on loopback (Airflow's own server
                # binds every interface); the scheduler and triggerer skip theirs.
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "localdev.log_server.hostname",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.log_server),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.log_server),
            }
        )
        # The web process, its login and the settings that Airflow 3 renamed: localdev/profile.py.
        env.update(self.profile.airflow_env(keys, self.state_dir, self.ports.webserver))
        return env

    def run_airflow(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command to completion in this stack's environment (``env``)."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=dict(env or self.airflow_env()),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
        )

    def airflow(
        self, *args: str, env: Mapping[str, str] | None = None, what: str = "", timeout: float | None = None
    ) -> str:
        """Run one ``airflow`` CLI command; on failure raise ``LocalDevError`` with its last words."""
        result = self.run_airflow(*args, env=env, timeout=timeout)
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
            message = f"{what or 'airflow ' + ' '.join(args)} failed: {lines[-1]}"
            raise LocalDevError(message, details="\n".join(lines[-15:]))
        return result.stdout

    def apply_settings(self, env: Mapping[str, str] | None = None) -> str:
        """Apply ``airflow_settings.yaml`` (localdev/settings.py), its hosts pointed at this stack."""
        command = [sys.executable, "-m", "localdev.settings", "apply", str(ROOT / "airflow_settings.yaml")]
        for endpoint in self.endpoints():
            command += ["--endpoint", endpoint]
        result = subprocess.run(command, env=dict(env or self.airflow_env()), capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
            raise LocalDevError(last.removeprefix("error: "))
        return result.stdout.strip()

    def start_process(self, command: str, env: Mapping[str, str] | None = None, log_name: str = "") -> Service:
        """One of the profile's Airflow processes (``scheduler``, ``dag-processor``, ``triggerer``,
        ``webserver`` or ``api-server``) in the background, its output in ``logs/``."""
        process = self.profile.process(command)
        return launch(
            process.name,
            "airflow",
            process.args,
            self.logs / (log_name or process.log),
            env=dict(env or self.airflow_env()),
            cwd=ROOT,
            port=self.ports.webserver if process.web else None,
        )

    def start_scheduler(self, env: Mapping[str, str] | None = None, log_name: str = "scheduler.log") -> Service:
        """``airflow scheduler`` (LocalExecutor) in the background, its output in ``logs/<log_name>``.

        Without Airflow's log server, which would listen on every interface: ``start_log_server``.
        """
        return self.start_process("scheduler", env, log_name)

    def start_triggerer(self, env: Mapping[str, str] | None = None) -> Service:
        """``airflow triggerer``: deferred tasks wait in it and resume when their trigger fires."""
        return self.start_process("triggerer", env)

    def start_dag_processor(self, env: Mapping[str, str] | None = None) -> Service:
        """``airflow dag-processor`` (Airflow 3: the scheduler parses no DAG files itself)."""
        return self.start_process("dag-processor", env)

    def start_web(self, env: Mapping[str, str] | None = None) -> Service:
        """The UI and REST API: ``airflow webserver`` (Airflow 2) or ``airflow api-server`` (Airflow 3,
        which also serves the execution API that task processes report to)."""
        return self.start_process(self.profile.web.args[0], env)

    def start_log_server(self, env: Mapping[str, str] | None = None) -> Service:
        """Airflow's task log server on 127.0.0.1 (localdev/log_server.py), for the web process."""
        return launch(
            "Airflow log server",
            "localdev.log_server",
            [str(self.ports.log_server)],
            self.logs / "log_server.log",
            env=dict(env or self.airflow_env()),
            cwd=ROOT,
            port=self.ports.log_server,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.webserver}"

    def prepare_airflow(self) -> None:
        """Migrate the metadata database, apply ``airflow_settings.yaml``, create the admin user."""
        env = self.airflow_env()
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate", env=env, what="airflow db migrate")
        print(self.apply_settings(env))
        self.profile.prepare_state(self.state_dir)
        for command in self.profile.admin_commands():
            self.airflow(*command, env=env, what="creating the admin user")

    def register_dags(self, env: Mapping[str, str] | None = None) -> None:
        """Parse the DAG folder once, in one process, and write its DAGs and Datasets.

        A scheduler's first parse runs ``parsing_processes`` files at once, and Airflow 2.10
        inserts a Dataset with a select-then-insert: two files naming the same Dataset can both
        insert it, and the loser's file fails with a ``UniqueViolation`` until its next parse.
        An event on a Dataset that has no row yet is dropped ("DatasetModel ... not found"),
        so the first day's downstream DAG would never run. Registering first leaves the
        scheduler only rows to update.
        """
        self.airflow("dags", "reserialize", env=env, what="registering the DAGs and their Datasets")

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


# What callers import from here, though it lives in localdev/layout.py, localdev/profile.py,
# localdev/processes.py or localdev/tracking.py.
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
