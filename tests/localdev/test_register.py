"""`make run` registers every DAG's Datasets before its scheduler starts.

A scheduler's first parse runs two files at once; Airflow 2.10 inserts a Dataset with a
select-then-insert, so both can insert the same one and one file fails to sync until its next
parse. An event on a Dataset that has no row is dropped, and the first day's downstream DAG
never runs. So by the time the scheduler starts, every Dataset is in the metadata database.
"""

from __future__ import annotations

import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.services


class SchedulerWouldStartError(Exception):
    """Raised where `make run` would start the scheduler: the test looks at the database then."""


def project_datasets() -> tuple[set[str], dict[str, set[str]]]:
    """Every Dataset URI the project's DAGs produce or consume, and each consumer's triggers."""
    from airflow.models import DagBag

    from include.shopstream.platform.compat import AIRFLOW_3

    bag = DagBag(str(PROJECT / "dags"), **({} if AIRFLOW_3 else {"include_examples": False}))
    assert not bag.import_errors, bag.import_errors

    def uris(condition) -> set[str]:  # a Dataset (Asset), or any/all of such conditions
        if not condition:  # none, or Airflow 2's null condition of a time-scheduled DAG
            return set()
        if hasattr(condition, "uri"):
            return {condition.uri}
        return set().union(*(uris(part) for part in condition.objects))

    def triggers(dag) -> set[str]:  # Airflow 3 says Asset where Airflow 2 says Dataset
        timetable = dag.timetable
        return uris(getattr(timetable, "asset_condition", None) or getattr(timetable, "dataset_condition", None))

    consumers = {dag_id: found for dag_id, dag in bag.dags.items() if (found := triggers(dag))}
    produced = {outlet.uri for dag in bag.dags.values() for task in dag.tasks for outlet in task.outlets}
    return produced | set().union(*consumers.values()), consumers


def test_the_datasets_are_registered_before_the_scheduler_starts(airflow_stack, monkeypatch):
    uris, consumers = project_datasets()
    assert consumers, "the project has Dataset-triggered DAGs"
    seen = {}

    def start_scheduler(env=None, log_name="scheduler.log"):
        seen["datasets"] = {row["uri"] for row in airflow_stack.metadata("SELECT uri FROM dataset")}
        seen["triggers"] = airflow_stack.metadata(
            "SELECT r.dag_id, d.uri FROM dag_schedule_dataset_reference r JOIN dataset d ON d.id = r.dataset_id"
        )
        raise SchedulerWouldStartError

    monkeypatch.setattr(airflow_stack, "start_scheduler", start_scheduler)
    with pytest.raises(SchedulerWouldStartError):
        airflow_stack.start_airflow()

    assert uris <= seen["datasets"], f"not registered: {sorted(uris - seen['datasets'])}"
    registered = {}
    for row in seen["triggers"]:
        registered.setdefault(row["dag_id"], set()).add(row["uri"])
    assert registered == consumers
