"""The Dataset chain on a real scheduler: fixtures for the end-to-end tests.

One session-wide platform: Postgres and the mocked S3 from the chosen backend (tests/e2e/
backends.py), the inventory simulator and the alert sink as local processes, Airflow's metadata
database in that Postgres, ``airflow_settings.yaml`` applied by the settings loader of
``make run`` and pointed at the services, and ``airflow scheduler`` on LocalExecutor running the
repository's ``dags/`` and ``include/``. Tests trigger runs with the Airflow CLI and read the
outcome from Airflow's own tables, the warehouse and the lake.

The source database holds the last days up to now. The schedules are real, so each scenario
triggers its sales run for a slot the scheduler does not take by itself (see ``Chain.slot``).
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from localdev import LocalDevError, alert_sink, inventory_api
from localdev.generator import Scale, ShopStreamData
from localdev.processes import Service, free_port
from localdev.profile import current
from localdev.stack import METADATA_DB, SOURCE_DB, WAREHOUSE_DB, Ports, Stack
from tests.e2e import backends

DATA = ShopStreamData(seed=23, scale=Scale(customers=150, products=40, orders_per_day=80, bad_share=0.01))
HISTORY_DAYS = 8
# The simulator fails 30% of stock calls; with this seed the first call of the session is a 503
# and the next one succeeds, so the inventory run goes through a retry every time.
INVENTORY_FAULTS = {"failure_rate": 0.3, "seed": 4, "stall_seconds": 3.0}
INVENTORY_SKUS = 60
FINISHED = ("success", "failed")

# What the tests change about the platform's Airflow: retry delays shrink (the policies stay the
# production ones); a restarted scheduler looks for the dead one's tasks every 10 s, not 5 min;
# and the DAG files, which do not change during a test, are parsed once, not every 30 s (on two
# cores the re-parsing costs a quarter of a core).
TEST_AIRFLOW_ENV = {
    "SHOPSTREAM_RETRY_DELAY_SCALE": "0.001",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    **current().parse_once_env(),
}


class ChainError(AssertionError):
    """A run did not reach the expected state in time; the message carries the evidence."""


@dataclass
class Chain:
    stack: Stack
    backend: str
    simulator: Service
    sink: Service
    logs: Path
    scheduler: Service | None = None
    # Airflow 3's processes beside the scheduler: the dag-processor, and the api-server whose
    # execution API the task processes report to. They outlive a killed scheduler.
    companions: list[Service] = field(default_factory=list)
    simulator_skus: int = INVENTORY_SKUS
    seeded_until: datetime | None = None
    notes: list[str] = field(default_factory=list)

    # -- Airflow ----------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {**self.stack.airflow_env(), **TEST_AIRFLOW_ENV}

    def airflow(self, *args: str) -> str:
        try:
            return self.stack.airflow(*args, env=self.env, timeout=300)
        except LocalDevError as err:
            raise ChainError(f"{err}\n{err.details}") from None

    def apply_settings(self) -> None:
        """Apply airflow_settings.yaml with the loader of `make run`, pointed at this platform."""
        try:
            self.stack.apply_settings(self.env)
        except LocalDevError as err:
            raise ChainError(f"applying airflow_settings.yaml failed: {err}") from None

    def start_scheduler(self) -> None:
        self.scheduler = self.stack.start_scheduler(self.env)

    def start_companions(self) -> None:
        """What the profile runs beside the scheduler (Airflow 3: dag-processor, api-server)."""
        for process in self.stack.profile.processes:
            if process.args[0] == "dag-processor":
                self.companions.append(self.stack.start_dag_processor(self.env))
            elif process.web and self.stack.profile.major >= 3:
                self.companions.append(self.stack.start_web(self.env))

    def kill_airflow(self) -> list[int]:
        """SIGKILL the scheduler and every process it started (its executor and the running tasks).

        With LocalExecutor the tasks run beside the scheduler, so this is what a crash of the
        scheduler's host or container does. Returns the pids killed.
        """
        import psutil

        if self.scheduler is None:
            return []
        try:
            root = psutil.Process(self.scheduler.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        killed = []
        for process in tree:
            try:
                process.kill()
                killed.append(process.pid)
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(tree, timeout=30)
        self.scheduler.process.wait(timeout=30)
        self.scheduler = None
        return killed

    def task_processes(self, dag_id: str, run_id: str, task_id: str) -> list:
        """The processes running one task instance: on Airflow 2 its ``airflow tasks run`` supervisor
        and raw process; on Airflow 3 the task process its supervisor recorded (killed, the
        supervisor reports the failure, as it does for an OOM kill)."""
        import psutil

        if self.stack.profile.major < 3:
            return [
                p
                for p in psutil.process_iter(["cmdline"])
                if task_id in " ".join(p.info["cmdline"] or []) and "runner" in " ".join(p.info["cmdline"] or [])
            ]
        rows = self.metadata(
            "SELECT pid FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s AND state = 'running'",
            (dag_id, run_id, task_id),
        )
        processes = []
        for row in rows:
            if row["pid"]:
                try:
                    processes.append(psutil.Process(row["pid"]))
                except psutil.NoSuchProcess:
                    continue
        return processes

    def trigger(self, dag_id: str, logical_date: datetime, run_id: str) -> str:
        self.airflow(*self.stack.profile.trigger_args(dag_id, logical_date, run_id))
        return run_id

    def slot(self, dag_id: str) -> datetime:
        """The logical date the scheduler would create next for ``dag_id`` (DagModel.next_dagrun).

        With catchup=False that is the latest complete interval. A manual run at exactly that
        date takes the slot: the scheduler sees a run there and does not add its own. Read it
        before the DAG's first run; afterwards it moves on.
        """
        row = self.metadata("SELECT next_dagrun FROM dag WHERE dag_id = %s", (dag_id,))
        if not row or row[0]["next_dagrun"] is None:
            raise ChainError(f"{dag_id} has no next run in the metadata database")
        return row[0]["next_dagrun"].astimezone(UTC)

    # -- reading the outcome -----------------------------------------------------------------

    def metadata(self, statement: str, params=None) -> list[dict]:
        return self.stack.metadata(statement, params)

    def warehouse(self, statement: str, params=None) -> list[dict]:
        return self.stack.query(WAREHOUSE_DB, statement, params)

    def run(self, dag_id: str, run_id: str) -> dict | None:
        rows = self.metadata("SELECT * FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
        return _dag_run(rows[0]) if rows else None

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        rows = self.metadata(
            "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)
        )
        return {row["task_id"]: row["state"] for row in rows}

    def runs_consuming(self, dag_id: str, source_dag_id: str, source_run_id: str) -> list[dict]:
        """Runs of ``dag_id`` started by a Dataset event that ``source_run_id`` emitted."""
        return [
            _dag_run(row)
            for row in self.metadata(
                "SELECT DISTINCT dr.* FROM dag_run dr"
                " JOIN dagrun_dataset_event dde ON dde.dag_run_id = dr.id"
                " JOIN dataset_event de ON de.id = dde.event_id"
                " WHERE dr.dag_id = %s AND de.source_dag_id = %s AND de.source_run_id = %s"
                " ORDER BY dr.id",
                (dag_id, source_dag_id, source_run_id),
            )
        ]

    def events_from(self, source_dag_id: str, source_run_id: str) -> list[dict]:
        return self.metadata(
            "SELECT d.uri, de.extra, de.timestamp FROM dataset_event de JOIN dataset d ON d.id = de.dataset_id"
            " WHERE de.source_dag_id = %s AND de.source_run_id = %s ORDER BY de.id",
            (source_dag_id, source_run_id),
        )

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        """Wait until the run has finished; return its dag_run row."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run and run["state"] in FINISHED:
                return run
            self._check_scheduler()
            time.sleep(2)
        raise ChainError(f"{dag_id} run {run_id} did not finish in {timeout:.0f} s: {self.evidence(dag_id, run_id)}")

    def wait_for_consumer(
        self, dag_id: str, source_dag_id: str, source_run_id: str, timeout: float = 600, after_id: int = 0
    ) -> dict:
        """Wait for a run of ``dag_id`` triggered by ``source_run_id``'s events to finish."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = [r for r in self.runs_consuming(dag_id, source_dag_id, source_run_id) if r["id"] > after_id]
            if runs and runs[-1]["state"] in FINISHED:
                return runs[-1]
            self._check_scheduler()
            time.sleep(2)
        raise ChainError(
            f"no finished {dag_id} run was triggered by {source_dag_id} {source_run_id} in {timeout:.0f} s;"
            f" {dag_id} runs: {self.metadata('SELECT run_id, state FROM dag_run WHERE dag_id = %s', (dag_id,))};"
            f" scheduler log: {self.scheduler_log_tail()}"
        )

    def evidence(self, dag_id: str, run_id: str) -> str:
        states = self.task_states(dag_id, run_id)
        unfinished = {task: state for task, state in states.items() if state != "success"}
        return (
            f"run={self.run(dag_id, run_id)}, tasks not successful={unfinished};"
            f" scheduler log: {self.scheduler_log_tail()}"
        )

    def scheduler_log_tail(self, lines: int = 30) -> str:
        path = self.logs / "scheduler.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(none)"

    def _check_scheduler(self) -> None:
        if self.scheduler is not None and not self.scheduler.running():
            raise ChainError(f"the scheduler exited ({self.scheduler.process.returncode}): {self.scheduler_log_tail()}")

    def alerts(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.sink.url}/messages", timeout=5) as response:
            return json.load(response)

    def lake_objects(self, prefix: str) -> dict[str, int]:
        client = self.stack.lake.client()
        objects = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="shopstream", Prefix=prefix):
            objects.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return objects


def _dag_run(row: dict) -> dict:
    """A dag_run row with its logical date as ``logical_date`` (Airflow 2's column is ``execution_date``)."""
    if "logical_date" not in row:
        row["logical_date"] = row["execution_date"]
    return row


@pytest.fixture(scope="session")
def e2e_services(tmp_path_factory):
    try:
        backend = backends.choose()
    except backends.BackendError as err:
        pytest.fail(str(err), pytrace=False)
    workdir = tmp_path_factory.mktemp("e2e-services")
    with backends.started(backend, workdir) as services:
        yield services


@pytest.fixture(scope="session")
def chain(e2e_services, tmp_path_factory):
    """The platform with a running scheduler; stopped (and its containers removed) at the end."""
    state = tmp_path_factory.mktemp("e2e")
    logs = state / "logs"
    services = e2e_services
    stack = Stack(
        state_dir=state,
        ports=Ports(
            webserver=free_port(),
            postgres=services.pg.port,
            s3=services.s3_port,
            inventory_api=free_port(),
            alert_sink=free_port(),
        ),
        data=DATA,
    )
    stack.pg, stack.lake = services.pg, services.lake
    for database in (METADATA_DB, SOURCE_DB, WAREHOUSE_DB):
        stack.pg.ensure_database(database)
    stack.lake.ensure_bucket("shopstream")
    simulator = inventory_api.start(
        stack.ports.inventory_api, logs / "inventory_api.log", skus=INVENTORY_SKUS, **INVENTORY_FAULTS
    )
    sink = alert_sink.start(stack.ports.alert_sink, logs / "alert_sink.log")
    chain = Chain(stack=stack, backend=services.backend, simulator=simulator, sink=sink, logs=logs)
    try:
        stack.seed_source(history_days=HISTORY_DAYS)
        chain.seeded_until = datetime.now(UTC)
        stack.prepare_airflow()
        # Register the DAGs (and their Datasets) before the scheduler starts, so that the
        # tests can read each DAG's next slot from the metadata database.
        chain.airflow("dags", "reserialize")
        # The time-scheduled DAGs wait, paused, until a scenario takes their next slot.
        for dag_id in ("sales_core_pipeline", "inventory_mgmt_pipeline", "ingest_deadline", "alert_redelivery"):
            chain.airflow("dags", "pause", dag_id)
        chain.start_companions()
        chain.start_scheduler()
        yield chain
    finally:
        stack.stop_backfill()
        chain.kill_airflow()
        for service in (*chain.companions, sink, simulator):
            service.stop()


def business_day(run: dict):
    """The business date of a sales run: the start of its data interval."""
    return run["data_interval_start"].astimezone(UTC).date()
