"""Both SQL back-ends build the same DAGs: the same task ids, the same dependencies, the same SQL
files and lake paths, so runs, history and runbooks do not depend on which one is installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from include.shopstream.platform import sql_steps
from include.shopstream.platform.compat import AIRFLOW_3
from include.shopstream.platform.names import SQL_DIR
from tests.conftest import PROJECT

GRAPH = """
import json
from airflow.models import DagBag
from include.shopstream.platform import sql_steps
from include.shopstream.platform.compat import AIRFLOW_3
bag = DagBag(**({} if AIRFLOW_3 else {"include_examples": False}))
assert not bag.import_errors, bag.import_errors
graph = {
    dag_id: {
        t.task_id: [sorted(t.downstream_task_ids), t.trigger_rule, sql_steps.lake_path(t)]
        for t in dag.tasks
    }
    for dag_id, dag in bag.dags.items()
}
print("GRAPH " + json.dumps({"backend": sql_steps.BACKEND, "graph": graph}, default=str))
"""


def dag_graph(backend: str) -> dict:
    """Every DAG's tasks, their downstream tasks, trigger rules and lake paths, parsed with ``backend``."""
    env = {
        **os.environ,
        sql_steps.BACKEND_VARIABLE: backend,
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "PYTHONPATH": str(PROJECT),
    }
    result = subprocess.run(
        [sys.executable, "-c", GRAPH], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("GRAPH "))
    found = json.loads(line.removeprefix("GRAPH "))
    assert found["backend"] == backend
    return found["graph"]


@pytest.fixture(scope="module")
def providers_graph():
    return dag_graph("providers")


@pytest.mark.skipif(AIRFLOW_3, reason="the Astro SDK does not run on Airflow 3")
def test_the_providers_back_end_builds_the_sdks_dags(providers_graph):
    assert providers_graph == dag_graph("astro")


def test_the_providers_back_end_builds_the_dags_this_process_parsed(dagbag, providers_graph):
    parsed = {
        dag_id: {
            t.task_id: [sorted(t.downstream_task_ids), getattr(t.trigger_rule, "value", t.trigger_rule)]
            for t in dag.tasks
        }
        for dag_id, dag in dagbag.dags.items()
    }
    assert {
        dag_id: {task_id: found[:2] for task_id, found in tasks.items()} for dag_id, tasks in providers_graph.items()
    } == parsed


@pytest.mark.skipif(not AIRFLOW_3, reason="on Airflow 2 the Astro SDK is the default back-end")
def test_asking_for_the_sdk_on_airflow_3_fails_with_the_reason():
    env = {**os.environ, sql_steps.BACKEND_VARIABLE: "astro", "PYTHONPATH": str(PROJECT)}
    result = subprocess.run(
        [sys.executable, "-c", "import include.shopstream.platform.sql_steps"],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "does not run on Airflow 3; use providers" in result.stderr


def test_every_sql_step_reads_a_sql_file_that_exists(dagbag):
    """The providers' step names its file; the SDK's holds the file's text once the DAG is parsed."""
    texts = {path.read_text(): path.name for path in SQL_DIR.glob("*.sql")}
    steps = [
        task
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if task.task_type in ("TransformFileOperator", "TransformOperator")
    ]
    files = {getattr(task, "sql_file", None) or texts.get(task.sql, task.sql) for task in steps}
    assert len(steps) == 10
    assert len(files) == 10
    assert {name for name in files if not (SQL_DIR / name).is_file()} == set()
