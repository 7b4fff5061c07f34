"""Where Airflow 2.10 and Airflow 3 keep what the project imports: the one module that asks.

DAG files and ``include/shopstream`` import these names from here, never from their homes in
either version, so the same code runs on both. Airflow 3 renamed Datasets to Assets; the project
keeps its own word, ``Dataset``, for both. ``tests/test_layout.py`` holds every other module to
this.

Call ``Variable.get(key, default)`` with the default as the second argument: its keyword is
``default_var`` on Airflow 2 and ``default`` on Airflow 3. The context entry a producer sets an
event's extra on, ``outlet_events[dataset].extra``, has the same name and use on both; the entry
with the events that triggered a run does not (``TRIGGERING_EVENTS``).
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION  # noqa: N812 - a constant

AIRFLOW_3 = int(AIRFLOW_VERSION.split(".", 1)[0]) >= 3

if AIRFLOW_3:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
    from airflow.sdk import (
        DAG,
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseOperatorLink,
        CronDataIntervalTimetable,
        CronTriggerTimetable,
        TriggerRule,
        Variable,
        XComArg,
        dag,
        get_current_context,
        task,
        task_group,
    )
    from airflow.sdk import (
        Asset as Dataset,
    )
    from airflow.sdk import (
        AssetAll as DatasetAll,
    )
    from airflow.sdk import (
        AssetAny as DatasetAny,
    )
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

    # The context entry with the events that triggered a run, and the run type of such a run.
    TRIGGERING_EVENTS = "triggering_asset_events"
    EVENT_TRIGGERED = "asset_triggered"
else:
    from airflow.datasets import Dataset, DatasetAll, DatasetAny
    from airflow.decorators import dag, task, task_group
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
    from airflow.hooks.base import BaseHook
    from airflow.models import Variable
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.baseoperatorlink import BaseOperatorLink
    from airflow.models.dag import DAG
    from airflow.models.mappedoperator import MappedOperator
    from airflow.models.xcom_arg import XComArg
    from airflow.notifications.basenotifier import BaseNotifier
    from airflow.operators.empty import EmptyOperator
    from airflow.operators.python import get_current_context
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable
    from airflow.triggers.temporal import TimeDeltaTrigger
    from airflow.utils.trigger_rule import TriggerRule

    TRIGGERING_EVENTS = "triggering_dataset_events"
    EVENT_TRIGGERED = "dataset_triggered"

__all__ = [
    "AIRFLOW_3",
    "AIRFLOW_VERSION",
    "DAG",
    "EVENT_TRIGGERED",
    "TRIGGERING_EVENTS",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseOperatorLink",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "Dataset",
    "DatasetAll",
    "DatasetAny",
    "EmptyOperator",
    "MappedOperator",
    "TimeDeltaTrigger",
    "TriggerRule",
    "Variable",
    "XComArg",
    "dag",
    "dag_run",
    "get_current_context",
    "run_moment",
    "task",
    "task_group",
    "xcom_value",
]


def run_moment(context):
    """The moment a run is for: its logical date. A run Airflow 3 started on Assets has none (nor
    ``ds`` or ``ts``); the moment it became due, ``run_after``, stands in, as the trigger time is
    the logical date of such a run on Airflow 2."""
    logical = context.get("logical_date")
    return logical if logical is not None else context["dag_run"].run_after


def xcom_value(ti_key, key: str = "return_value"):
    """A task instance's XCom value, for an operator extra link (read where the UI server runs)."""
    if AIRFLOW_3:
        from airflow.sdk.execution_time.xcom import XCom
    else:
        from airflow.models.xcom import XCom
    return XCom.get_value(ti_key=ti_key, key=key)


def dag_run(dag_id: str, run_id: str):
    """Airflow 3: another run of a DAG as the Execution API describes it (data interval, state, run
    type), for task code. The Task SDK fetches an Asset event's ``source_dag_run`` this way; the
    running task instance has no public call for it. Airflow 2's task code reads the metadata
    database instead (``run_states``).
    """
    if not AIRFLOW_3:
        raise NotImplementedError("on Airflow 2, read the run from the metadata database")
    from airflow.sdk.execution_time.comms import GetDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

    return SUPERVISOR_COMMS.send(GetDagRun(dag_id=dag_id, run_id=run_id))
