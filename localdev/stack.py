"""The whole local platform: services, Airflow's metadata database, settings and Airflow.

``make run`` is ``python -m localdev run``. Everything it keeps lives in one git-ignored state
folder (``.local/`` by default), so a second run picks up where the first stopped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from localdev import backfill, postgres, s3
from localdev.airflow_cli import AirflowCli
from localdev.airflow_env import PLATFORM_AIRFLOW_CONFIG, AirflowEnv
from localdev.airflow_processes import AirflowProcesses
from localdev.backfill_runner import BackfillRunner
from localdev.generator import ShopStreamData
from localdev.layout import METADATA_DB, ROOT, SOURCE_DB, WAREHOUSE_DB, Ports, dag_ids
from localdev.metadata_db import MetadataDb
from localdev.processes import Service, wait_until
from localdev.profile import Profile, current
from localdev.rest import Rest
from localdev.services import BackingServices, platform_data
from localdev.tracking import STATE_FILE, Tracker


class Stack:
    """The services and Airflow processes of one local platform, driven the one way that ``make run``,
    ``make bench`` and the tests share.

    Each job is a part's own: ``backing`` (Postgres, the mocked S3, the simulators), ``environment``
    (Airflow's settings), ``cli`` (Airflow commands), ``airflow_processes`` (the scheduler, the web
    process...), ``rest`` and ``db`` (what Airflow says), ``backfills`` (the history backfill) and
    ``tracker`` (the processes started, in ``stack.json`` for ``make stop``).
    """

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
        self.rest = Rest(self.profile, self.backing)
        self.db = MetadataDb(self.backing, self.profile)
        self.backfills = BackfillRunner(
            self.profile, self.logs, self.tracker, self.environment, self.cli, self.db, self.rest
        )

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
    def base_url(self) -> str:
        return self.rest.base_url

    @property
    def services(self) -> list[Service]:
        """The processes that live as long as the platform, newest last (a caller may add its own)."""
        return self.tracker.services

    @property
    def backfill_process(self) -> Service | None:
        return self.tracker.backfill

    # -- services ----------------------------------------------------------------------------

    def start_services(self) -> None:
        self.backing.start()

    def attach(self) -> None:
        self.backing.attach()

    def seed_source(self, history_days: int = 0) -> int:
        return self.backing.seed_source(history_days)

    # -- Airflow -----------------------------------------------------------------------------

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
            if not self.rest.healthy():
                return False
            missing = expected - self.rest.listed_dag_ids()
            if missing:
                errors.clear()
                errors.update(self.rest.import_errors())
            return missing <= {Path(name).stem for name in errors}

        wait_until(up, web, timeout=240, what=f"healthy, with the REST API listing all {len(expected)} DAGs")
        return errors

    # -- the databases -----------------------------------------------------------------------

    def query(self, database: str, statement: str, params=None) -> list[dict]:
        return self.db.query(database, statement, params)

    def metadata(self, statement: str, params=None) -> list[dict]:
        return self.db.metadata(statement, params)

    # -- the history backfill ----------------------------------------------------------------

    def start_backfill(self, days: int) -> backfill.Backfill | None:
        return self.backfills.start(days)

    def backfill(self, dates: list[datetime], env: dict[str, str] | None = None) -> backfill.Backfill:
        return self.backfills.backfill(dates, env)

    def resume_backfill(self, history: backfill.Backfill) -> str | None:
        return self.backfills.resume(history)

    def backfill_running(self) -> bool:
        return self.backfills.running()

    def rerun_report(self, run_id: str) -> list[str]:
        return self.backfills.rerun_report(run_id)

    def stop_backfill(self) -> None:
        self.tracker.stop_backfill()

    # -- lifecycle ---------------------------------------------------------------------------

    def check_alive(self) -> None:
        self.tracker.check_alive()

    def stop(self) -> None:
        """Stop every process this stack started, newest first."""
        self.tracker.stop()


# The tests and the benchmarks import these from here; each lives in the module that owns it.
__all__ = ["METADATA_DB", "PLATFORM_AIRFLOW_CONFIG", "ROOT", "SOURCE_DB", "WAREHOUSE_DB", "Ports", "Stack"]
