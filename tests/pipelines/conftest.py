"""A platform for pipeline tests: the launchers' Postgres, moto S3 and inventory simulator,
airflow_settings.yaml applied through the settings loader, and `airflow dags test` runs.

Expected values come from the data generator and plain Python (tests/pipelines/expected.py),
never from the pipelines' own SQL. Each module starts from an empty source, warehouse and lake
(``fresh_data``) and builds what it reads through the pipelines themselves: ``sales_weekend``
(Friday to Monday ingested night by night) and ``analysed_monday`` (that weekend, the stock and
Monday's analytics) for the modules that read a history. The platform's services and Airflow's
metadata database are shared by the session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest

from localdev import alert_sink, inventory_api, s3, seed
from localdev.generator import Scale, ShopStreamData
from localdev.processes import free_port
from localdev.stack import SOURCE_DB, WAREHOUSE_DB, Ports
from tests.conftest import PROJECT

# A Monday, so that weekly analytics has a week behind it.
MONDAY = date(2026, 11, 16)
WEEKEND = [MONDAY - timedelta(days=n) for n in (3, 2, 1, 0)]  # Friday to Monday
DATA = ShopStreamData(seed=11, scale=Scale(customers=120, products=40, orders_per_day=60, bad_share=0.05))
INVENTORY_SEED = 5

# A run's operator extra links, as the UI server makes them: ``"task_id | link name" -> URL``.
# Airflow 2's webserver rebuilds the DAG from its serialized form (which keeps only link classes a
# plugin registers) and calls each link with the task instance; Airflow 3's API server reads the
# serialized DAG from the metadata database, whose links answer what the task process computed
# and stored as an XCom when the task finished.
RESOLVE_LINKS = {
    2: """
import json, sys
from datetime import datetime
from airflow.models import DagBag, TaskInstance
from airflow.serialization.serialized_objects import SerializedDAG
from airflow.utils.session import create_session

dag_id, logical_date = sys.argv[1], datetime.fromisoformat(sys.argv[2])
parsed = DagBag(include_examples=False).dags[dag_id]
dag = SerializedDAG.from_dict(SerializedDAG.to_dict(parsed))
links = {}
with create_session() as session:
    tis = session.query(TaskInstance).filter(
        TaskInstance.dag_id == dag_id, TaskInstance.execution_date == logical_date
    ).all()
    for ti in tis:
        task = dag.get_task(ti.task_id)
        ti.task = task
        for name in task.extra_links:
            links[f"{ti.task_id} | {name}"] = task.get_extra_links(ti, name)
print("LINKS " + json.dumps(links))
""",
    3: """
import json, sys
from datetime import datetime
from sqlalchemy import select
from airflow.models import DagRun, TaskInstance
from airflow.models.dagbag import DBDagBag
from airflow.utils.session import create_session

dag_id, logical_date = sys.argv[1], datetime.fromisoformat(sys.argv[2])
links = {}
with create_session() as session:
    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == logical_date))
    dag = DBDagBag().get_dag_for_run(run, session)
    tis = session.scalars(
        select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
    ).all()
    for ti in tis:
        task = dag.get_task(ti.task_id)
        for name in task.extra_links:
            links[f"{ti.task_id} | {name}"] = task.get_extra_links(ti, name)
print("LINKS " + json.dumps(links))
""",
}


@dataclass
class Platform:
    stack: object
    inventory_url: str

    def env(self, **extra) -> dict:
        env = self.stack.airflow_env()
        env["SHOPSTREAM_RETRY_DELAY_SCALE"] = "0.001"
        env.update(extra)
        return env

    def airflow(self, *args: str, **extra) -> subprocess.CompletedProcess:
        """One Airflow CLI command, whatever its exit code (``extra``: environment)."""
        return self.stack.run_airflow(*args, env=self.env(**extra), timeout=600)

    def run_dag(self, dag_id: str, logical_date: datetime, **extra) -> dict[str, str]:
        """Run ``dag_id`` with `airflow dags test` (``extra``: environment); return its state and each task's."""
        result = self.airflow("dags", "test", dag_id, logical_date.isoformat(), **extra)
        rows = self.metadata(
            "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
            " WHERE dr.dag_id = %s AND dr.execution_date = %s",
            (dag_id, logical_date),
        )
        states = {row["task_id"]: row["state"] for row in rows}
        run = self.metadata(
            "SELECT state FROM dag_run WHERE dag_id = %s AND execution_date = %s", (dag_id, logical_date)
        )
        assert run, f"`airflow dags test {dag_id}` made no run:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        states["__run__"] = run[0]["state"]
        states["__log__"] = result.stdout + result.stderr
        return states

    def run_sales(self, day: date) -> dict[str, str]:
        """The sales run for business day ``day`` (the 02:00 run of the next day covers it)."""
        return self.run_dag("sales_core_pipeline", datetime.combine(day + timedelta(days=1), time(2), tzinfo=UTC))

    def ingest(self, days: list[date]) -> None:
        """Each business day as the nightly runs see it: seeded up to 02:00 of the next day, then ingested."""
        for day in days:
            self.seed_until(datetime.combine(day + timedelta(days=1), time(2), tzinfo=UTC))
            states = self.run_sales(day)
            assert states["__run__"] == "success", states["__log__"][-4000:]

    def run_inventory(self) -> dict[str, str]:
        """inventory_mgmt_pipeline for the current hour, against the simulator."""
        states = self.run_dag("inventory_mgmt_pipeline", datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
        assert states["__run__"] == "success", states["__log__"][-4000:]
        return states

    def inbox(self) -> list[dict]:
        """Every message the alert sink received (Slack and PagerDuty), oldest first."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stack.ports.alert_sink}/messages", timeout=5) as r:
            return json.load(r)

    def reset(self) -> None:
        """A new platform's data: the source with its customers and products but no orders yet,
        an empty warehouse and an empty lake."""
        conn = self.stack.pg.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for database in (SOURCE_DB, WAREHOUSE_DB):
                    cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            conn.close()
        for database in (SOURCE_DB, WAREHOUSE_DB):
            self.stack.pg.ensure_database(database)
        seed.seed(self.stack.pg.url(SOURCE_DB), [], DATA)
        lake = self.lake()
        for page in lake.get_paginator("list_objects_v2").paginate(Bucket="shopstream"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                lake.delete_objects(Bucket="shopstream", Delete={"Objects": keys})

    def extra_links(self, dag_id: str, logical_date: datetime) -> dict[str, str]:
        """``"task_id | link name" -> URL`` for every extra link of the run, as the UI server makes them."""
        script = RESOLVE_LINKS[self.stack.profile.major]
        result = subprocess.run(
            [sys.executable, "-c", script, dag_id, logical_date.isoformat()],
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=PROJECT,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        line = next(line for line in result.stdout.splitlines() if line.startswith("LINKS "))
        return json.loads(line.removeprefix("LINKS "))

    def query(self, database: str, statement: str, params=None) -> list[dict]:
        return self.stack.query(database, statement, params)

    def warehouse(self, statement: str, params=None) -> list[dict]:
        return self.stack.query(WAREHOUSE_DB, statement, params)

    def metadata(self, statement: str, params=None) -> list[dict]:
        return self.stack.metadata(statement, params)

    def seed_until(self, moment: datetime) -> None:
        """Seed the source database as ShopStream's would be at ``moment``."""
        first = MONDAY - timedelta(days=8)
        days = [first + timedelta(days=n) for n in range((moment.date() - first).days + 1)]
        seed.seed(self.stack.pg.url(SOURCE_DB), days, DATA, until=moment)

    def lake(self):
        return self.stack.lake.client()


@pytest.fixture(scope="session")
def platform(airflow_stack, tmp_path_factory):
    stack = airflow_stack
    logs = tmp_path_factory.mktemp("platform-logs")
    stack.ports = Ports(
        webserver=stack.ports.webserver,
        postgres=stack.pg.port,
        s3=free_port(),
        inventory_api=free_port(),
        alert_sink=free_port(),
    )
    stack.lake = s3.start(stack.ports.s3, logs / "s3.log")
    stack.lake.ensure_bucket("shopstream")
    simulator = inventory_api.start(
        stack.ports.inventory_api, logs / "inventory.log", failure_rate=0.0, seed=INVENTORY_SEED, skus=50
    )
    sink = alert_sink.start(stack.ports.alert_sink, logs / "sink.log")
    for database in (SOURCE_DB, WAREHOUSE_DB):
        stack.pg.ensure_database(database)
    stack.apply_settings()
    # Dataset events are recorded only for datasets the metadata database knows: serialize the
    # DAGs once, as the scheduler would have.
    platform = Platform(stack=stack, inventory_url=simulator.url)
    result = platform.airflow("dags", "reserialize")
    assert result.returncode == 0, result.stderr[-2000:]
    yield platform
    for service in (sink, simulator, stack.lake.service):
        service.stop()


@pytest.fixture(scope="module", autouse=True)
def fresh_data(platform):
    """Each module starts from empty data, whichever modules ran before it and in whatever order."""
    platform.reset()


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


@pytest.fixture(scope="module")
def sales_weekend(platform) -> list[date]:
    """Friday to Monday ingested night by night (Friday's orders change status over the weekend)."""
    platform.ingest(WEEKEND)
    return WEEKEND


@pytest.fixture(scope="module")
def analysed_monday(platform, sales_weekend) -> dict[str, str]:
    """The weekend's sales, the current stock, and Monday's analytics run (its task states)."""
    platform.run_inventory()
    states = platform.run_dag("analytics_and_reporting_pipeline", at(MONDAY, 6))
    assert states["__run__"] == "success", states["__log__"][-4000:]
    return states
