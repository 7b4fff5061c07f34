"""Airflow's own objects for unit tests, on either Airflow version.

The scheduler sees a task after the DAG's serialization round trip, not as the DAG file built it
(Airflow 3 turns ``retry_exponential_backoff=True`` into its multiplier, 2.0, there), and Airflow
3's metadata-database task instance names the DAG version it belongs to.
"""

from __future__ import annotations

import uuid

from include.shopstream.platform.compat import AIRFLOW_3


def scheduler_task(dag, task_id: str):
    """``dag``'s task as the scheduler deserializes it from the metadata database."""
    if AIRFLOW_3:
        from airflow.serialization.serialized_objects import DagSerialization as Serialization
    else:
        from airflow.serialization.serialized_objects import SerializedDAG as Serialization
    return Serialization.from_dict(Serialization.to_dict(dag)).get_task(task_id)


def task_instance(task, run_id: str):
    """A metadata-database task instance of ``task`` (not saved)."""
    from airflow.models import TaskInstance

    return TaskInstance(task, run_id=run_id, **({"dag_version_id": uuid.uuid4()} if AIRFLOW_3 else {}))
