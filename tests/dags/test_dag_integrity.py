"""Every DAG imports cleanly and carries what operating it needs: tags, owner, docs, retries."""

import pytest

from tests.conftest import PROJECT

DAG_IDS = [
    "sales_core_pipeline",
    "inventory_mgmt_pipeline",
    "analytics_and_reporting_pipeline",
    "observability_pipeline",
    "ingest_deadline",
    "alert_redelivery",
]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_each_dag_file_holds_one_dag(dagbag):
    assert sorted(dagbag.dag_ids) == sorted(DAG_IDS)
    files = sorted(p.name for p in (PROJECT / "dags").glob("*.py"))
    assert files == sorted(f"{dag_id}.py" for dag_id in DAG_IDS)


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_is_documented_tagged_and_owned(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "shopstream" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.owner == "shopstream-data"
    assert not dag.catchup, "a new deployment must not backfill months of runs"


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_task_retries_at_least_twice(dagbag, dag_id):
    too_few = {t.task_id: t.retries for t in dagbag.dags[dag_id].tasks if t.retries < 2}
    assert too_few == {}
