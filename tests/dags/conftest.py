"""One DagBag for all structural tests (parsing is what costs)."""

import pytest

from tests.conftest import PROJECT


@pytest.fixture(scope="session")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(PROJECT / "dags"), include_examples=False)
