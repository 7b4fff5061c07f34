"""One DagBag for all structural tests (parsing is what costs)."""

import pytest

from tests.conftest import PROJECT


@pytest.fixture(scope="session")
def dagbag():
    from airflow.models import DagBag

    from include.shopstream.platform.compat import AIRFLOW_3

    # Airflow 3's DagBag has no example DAGs to leave out.
    examples = {} if AIRFLOW_3 else {"include_examples": False}
    return DagBag(dag_folder=str(PROJECT / "dags"), **examples)


@pytest.fixture(scope="session")
def scheduled(dagbag):
    """dag_id -> the DAG as the scheduler holds it: serialized and read back.

    On Airflow 3 a DAG file builds Task SDK objects; the scheduler's timetables (data intervals,
    next runs) are those of the serialized DAG. On Airflow 2 the round trip changes nothing.
    """
    from include.shopstream.platform.compat import AIRFLOW_3

    if AIRFLOW_3:
        from airflow.serialization.serialized_objects import DagSerialization as Serialization
    else:
        from airflow.serialization.serialized_objects import SerializedDAG as Serialization
    return {dag_id: Serialization.from_dict(Serialization.to_dict(dag)) for dag_id, dag in dagbag.dags.items()}
