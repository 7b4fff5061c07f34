"""compat: one module names where Airflow 2.10 and Airflow 3 keep what the project imports.

Each profile's names are held to that Airflow's own homes (a case per profile, run on its
profile); the helpers and the shared vocabulary (Datasets, conditions, ``Variable.get``'s
positional default) are held to behave the same on both.
"""

from __future__ import annotations

import importlib
import inspect
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import airflow
import pytest

from include.shopstream.platform import compat

ON_AIRFLOW_2 = pytest.mark.skipif(compat.AIRFLOW_3, reason="Airflow 2's homes and words; this profile runs Airflow 3")
ON_AIRFLOW_3 = pytest.mark.skipif(
    not compat.AIRFLOW_3, reason="Airflow 3's homes and words; this profile runs Airflow 2"
)

MOMENT = datetime(2026, 11, 23, 2, tzinfo=UTC)


def exported(names) -> dict[str, object]:
    return {name: getattr(compat, name) for name in names}


def test_the_version_is_the_running_airflows_and_airflow_3_is_its_major_version():
    assert airflow.__version__ == compat.AIRFLOW_VERSION
    assert compat.AIRFLOW_3 is (int(airflow.__version__.split(".")[0]) >= 3)


def test_every_name_compat_exports_is_defined():
    assert [name for name in compat.__all__ if not hasattr(compat, name)] == []
    assert len(compat.__all__) == len(set(compat.__all__))


# Where each Airflow keeps the names compat exports: name -> (module, attribute).
AIRFLOW_2_HOMES = {
    "DAG": ("airflow.models.dag", "DAG"),
    "Dataset": ("airflow.datasets", "Dataset"),
    "DatasetAll": ("airflow.datasets", "DatasetAll"),
    "DatasetAny": ("airflow.datasets", "DatasetAny"),
    "dag": ("airflow.decorators", "dag"),
    "task": ("airflow.decorators", "task"),
    "task_group": ("airflow.decorators", "task_group"),
    "AirflowException": ("airflow.exceptions", "AirflowException"),
    "AirflowFailException": ("airflow.exceptions", "AirflowFailException"),
    "AirflowSkipException": ("airflow.exceptions", "AirflowSkipException"),
    "BaseHook": ("airflow.hooks.base", "BaseHook"),
    "BaseNotifier": ("airflow.notifications.basenotifier", "BaseNotifier"),
    "BaseOperator": ("airflow.models.baseoperator", "BaseOperator"),
    "BaseOperatorLink": ("airflow.models.baseoperatorlink", "BaseOperatorLink"),
    "CronDataIntervalTimetable": ("airflow.timetables.interval", "CronDataIntervalTimetable"),
    "CronTriggerTimetable": ("airflow.timetables.trigger", "CronTriggerTimetable"),
    "EmptyOperator": ("airflow.operators.empty", "EmptyOperator"),
    "MappedOperator": ("airflow.models.mappedoperator", "MappedOperator"),
    "TimeDeltaTrigger": ("airflow.triggers.temporal", "TimeDeltaTrigger"),
    "TriggerRule": ("airflow.utils.trigger_rule", "TriggerRule"),
    "Variable": ("airflow.models", "Variable"),
    "XComArg": ("airflow.models.xcom_arg", "XComArg"),
    "get_current_context": ("airflow.operators.python", "get_current_context"),
}
SDK_NAMES = (
    "DAG", "dag", "task", "task_group", "BaseHook", "BaseNotifier", "BaseOperator", "BaseOperatorLink",
    "CronDataIntervalTimetable", "CronTriggerTimetable", "TriggerRule", "Variable", "XComArg", "get_current_context",
)  # fmt: skip
AIRFLOW_3_HOMES = {
    **{name: ("airflow.sdk", name) for name in SDK_NAMES},
    "Dataset": ("airflow.sdk", "Asset"),
    "DatasetAll": ("airflow.sdk", "AssetAll"),
    "DatasetAny": ("airflow.sdk", "AssetAny"),
    "AirflowException": ("airflow.sdk.exceptions", "AirflowException"),
    "AirflowFailException": ("airflow.sdk.exceptions", "AirflowFailException"),
    "AirflowSkipException": ("airflow.sdk.exceptions", "AirflowSkipException"),
    "EmptyOperator": ("airflow.providers.standard.operators.empty", "EmptyOperator"),
    "MappedOperator": ("airflow.sdk.definitions.mappedoperator", "MappedOperator"),
    "TimeDeltaTrigger": ("airflow.providers.standard.triggers.temporal", "TimeDeltaTrigger"),
}


def at_home(homes: dict[str, tuple[str, str]]) -> dict[str, object]:
    return {name: getattr(importlib.import_module(module), attribute) for name, (module, attribute) in homes.items()}


def test_both_profiles_name_a_home_for_every_class_and_function_compat_exports():
    words = {
        "AIRFLOW_3",
        "AIRFLOW_VERSION",
        "EVENT_TRIGGERED",
        "TRIGGERING_EVENTS",
        "dag_run",
        "run_moment",
        "xcom_value",
    }
    assert set(AIRFLOW_2_HOMES) == set(AIRFLOW_3_HOMES) == set(compat.__all__) - words


@ON_AIRFLOW_2
def test_on_airflow_2_the_names_are_airflow_2s_own():
    assert exported(AIRFLOW_2_HOMES) == at_home(AIRFLOW_2_HOMES)
    assert (compat.TRIGGERING_EVENTS, compat.EVENT_TRIGGERED) == ("triggering_dataset_events", "dataset_triggered")


@ON_AIRFLOW_3
def test_on_airflow_3_the_names_are_the_task_sdks_and_datasets_are_assets():
    assert exported(AIRFLOW_3_HOMES) == at_home(AIRFLOW_3_HOMES)
    assert (compat.TRIGGERING_EVENTS, compat.EVENT_TRIGGERED) == ("triggering_asset_events", "asset_triggered")


def test_the_event_triggered_run_type_is_one_the_running_airflow_has():
    from airflow.utils.types import DagRunType

    assert compat.EVENT_TRIGGERED in {run_type.value for run_type in DagRunType}


@ON_AIRFLOW_2
def test_on_airflow_2_the_triggering_events_are_a_context_entry():
    from airflow.utils.context import KNOWN_CONTEXT_KEYS

    assert compat.TRIGGERING_EVENTS in KNOWN_CONTEXT_KEYS


@ON_AIRFLOW_3
def test_on_airflow_3_the_triggering_events_are_a_context_entry():
    from airflow.sdk.definitions.context import Context

    assert compat.TRIGGERING_EVENTS in Context.__annotations__


def test_a_dataset_is_its_uri_and_combines_into_all_and_any_conditions():
    orders, customers = compat.Dataset("s3://shopstream/gold/orders"), compat.Dataset("s3://shopstream/gold/c")
    assert orders.uri == "s3://shopstream/gold/orders"
    assert orders == compat.Dataset("s3://shopstream/gold/orders") and orders != customers
    assert len({orders, compat.Dataset("s3://shopstream/gold/orders")}) == 1
    both, either = orders & customers, orders | customers
    assert isinstance(both, compat.DatasetAll) and isinstance(either, compat.DatasetAny)
    assert [d.uri for d in both.objects] == [d.uri for d in either.objects] == [orders.uri, customers.uri]


def test_variable_get_takes_its_default_as_the_second_argument():
    parameters = list(inspect.signature(compat.Variable.get).parameters.values())
    positional = [p for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "cls")]
    assert positional[0].name == "key"
    assert positional[1].name == ("default" if compat.AIRFLOW_3 else "default_var")
    inspect.signature(compat.Variable.get).bind("shopstream_bad_row_threshold", 0.05)


def test_variable_get_reads_a_variable_set_in_the_environment(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_SHOPSTREAM_COMPAT_PROBE", "0.2")
    assert compat.Variable.get("shopstream_compat_probe", "0.05") == "0.2"


DUE = MOMENT + timedelta(days=1, minutes=31)


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"logical_date": MOMENT, "dag_run": SimpleNamespace(run_after=DUE)}, MOMENT),
        ({"logical_date": None, "dag_run": SimpleNamespace(run_after=DUE)}, DUE),
        ({"dag_run": SimpleNamespace(run_after=DUE)}, DUE),
    ],
    ids=["logical date", "no logical date (Airflow 3, started on Assets)", "no such entry"],
)
def test_a_runs_moment_is_its_logical_date_else_when_it_became_due(context, expected):
    assert compat.run_moment(context) == expected


def test_a_runs_moment_never_asks_for_the_run_when_it_has_a_logical_date():
    assert compat.run_moment({"logical_date": MOMENT}) == MOMENT


def xcom_class():
    if compat.AIRFLOW_3:
        from airflow.sdk.execution_time.xcom import XCom
    else:
        from airflow.models.xcom import XCom
    return XCom


def test_an_extra_link_reads_the_task_instances_xcom_by_its_key(monkeypatch):
    asked = []

    def get_value(*, ti_key, key):
        asked.append((ti_key, key))
        return f"value of {key}"

    monkeypatch.setattr(xcom_class(), "get_value", get_value)
    ti_key = SimpleNamespace(dag_id="sales_core_pipeline", task_id="orders_etl.announce_orders")
    assert compat.xcom_value(ti_key) == "value of return_value"
    assert compat.xcom_value(ti_key, "report_uri") == "value of report_uri"
    assert asked == [(ti_key, "return_value"), (ti_key, "report_uri")]


@ON_AIRFLOW_2
def test_on_airflow_2_another_run_is_not_fetched_from_the_execution_api():
    with pytest.raises(NotImplementedError, match="metadata database"):
        compat.dag_run("sales_core_pipeline", "scheduled__2026-11-23T02:00:00+00:00")


@ON_AIRFLOW_3
def test_on_airflow_3_another_run_is_asked_of_the_supervisor_by_dag_and_run_id(monkeypatch):
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import GetDagRun

    sent = []
    comms = SimpleNamespace(send=lambda message: sent.append(message) or "the run")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    assert compat.dag_run("sales_core_pipeline", "manual__x") == "the run"
    assert sent == [GetDagRun(dag_id="sales_core_pipeline", run_id="manual__x")]
