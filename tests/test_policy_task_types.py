"""The cluster policy on task types that do not run through ``execute`` alone: mapped tasks and
deferrable ones (tests/policy_dags/policy_task_types.py).

Parsed and run as Airflow does, in processes of their own with plugins/ as the plugins folder,
so that Airflow itself loads plugins/airflow_local_settings.py and applies the policy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from tests.conftest import PROJECT

DAGS = PROJECT / "tests" / "policy_dags"
DAG_ID = "shopstream_policy_task_types"

PARSE = """
import json
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder={folder!r})  # examples: off through AIRFLOW__CORE__LOAD_EXAMPLES
dag = bag.dags.get({dag_id!r})
print(json.dumps({{"errors": {{k: v.splitlines()[-1] for k, v in bag.import_errors.items()}},
                  "tasks": sorted(dag.task_ids) if dag else []}}))
"""


def test_a_dag_with_mapped_and_deferrable_tasks_imports_under_the_policy(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "PYTHONPATH": str(PROJECT),
    }
    result = subprocess.run(
        [sys.executable, "-c", PARSE.format(folder=str(DAGS), dag_id=DAG_ID)],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert parsed["tasks"] == ["deferred_write", "mapped_deferred_write", "write_part"]


@pytest.mark.services
def test_data_errors_in_mapped_and_resumed_tasks_fail_on_the_first_try(airflow_stack):
    stack = airflow_stack
    env = stack.airflow_env()
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS)
    logical_date = datetime(2026, 11, 24, 2, tzinfo=UTC)
    result = stack.run_airflow("dags", "test", DAG_ID, logical_date.isoformat(), env=env, timeout=300)
    log = result.stdout + result.stderr
    rows = stack.metadata(
        "SELECT ti.task_id, ti.map_index, ti.state, ti.try_number, ti.max_tries, ti.next_method"
        " FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
        " WHERE dr.dag_id = %s AND dr.execution_date = %s ORDER BY ti.task_id, ti.map_index",
        (DAG_ID, logical_date),
    )
    assert rows, f"`airflow dags test` made no run:\n{log[-3000:]}"
    tries = {(r["task_id"], r["map_index"]): (r["state"], r["try_number"], r["max_tries"]) for r in rows}
    assert tries == {
        ("deferred_write", -1): ("failed", 1, 2),
        ("mapped_deferred_write", 0): ("failed", 1, 2),
        ("write_part", 0): ("failed", 1, 2),
        ("write_part", 1): ("failed", 1, 2),
    }, log[-4000:]
    # The deferrable tasks failed after their trigger fired, not before deferring.
    assert log.count("[DAG TEST] Trigger completed") == 2
    assert log.count("A data error: not retried.") >= 4
    assert "UniqueViolation on a warehouse table" in log
