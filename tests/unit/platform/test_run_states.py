"""run_states: the one place task code asks about other runs, with an Airflow 2 and an Airflow 3 back-end.

The Airflow 3 back-end is played here against stand-ins of the running task instance and its
``inlet_events`` (the Execution API is not started). Under the Airflow 3 profile every call the
back-end makes is first bound to the real Task SDK method's signature (``RuntimeTaskInstance``,
``InletEventsAccessor``), so a call with a parameter the SDK does not take fails here; the
attributes it reads from the SDK's answers are held to the SDK's models. The Airflow 2 back-end
(the metadata database) is played through Airflow's own code by tests/alerting/.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from include.shopstream.platform import run_states
from tests.conftest import PROJECT

DAG = "sales_core_pipeline"
TASK = "orders_etl.announce_orders"
ORDERS = "s3://shopstream/gold/orders"
DAY = datetime(2030, 3, 4, 2, tzinfo=UTC)  # a data interval's start; its run starts a day later
INTERVAL = (DAY, DAY + timedelta(days=1))

# Under the Airflow 3 profile the stand-ins check every call against the Task SDK's signatures.
SDK = run_states.AIRFLOW_3


def bind(owner: type, name: str, args: tuple, kwargs: dict) -> None:
    """Fail unless the SDK's ``owner.name`` takes these arguments (its own instance stands in as self)."""
    if not SDK:
        return
    method = getattr(owner, name)
    if not isinstance(inspect.getattr_static(owner, name), staticmethod):
        args = (object(), *args)
    inspect.signature(method).bind(*args, **kwargs)


def runtime_ti():
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    return RuntimeTaskInstance


def inlet_accessor():
    from airflow.sdk.execution_time.context import InletEventsAccessor

    return InletEventsAccessor


@dataclass
class SourceRun:
    data_interval_end: datetime
    state: str = "success"


@dataclass
class AssetEvent:
    """What the SDK's ``AssetEventResult`` answers: the attributes the back-end reads."""

    timestamp: datetime
    source_run_id: str
    source_dag_run: SourceRun | None
    source_dag_id: str = DAG
    extra: dict[str, Any] = field(default_factory=dict)


class Accessor:
    """``inlet_events[asset]``: filters as the Execution API does (``after``, ``limit``), oldest first."""

    def __init__(self, events: list[AssetEvent]) -> None:
        self.events, self.calls = sorted(events, key=lambda e: e.timestamp), []

    def after(self, *args, **kwargs):
        bind(inlet_accessor() if SDK else object, "after", args, kwargs)
        self.calls.append(("after", args))
        (moment,) = args
        return Accessor([e for e in self.events if e.timestamp > moment])

    def limit(self, *args, **kwargs):
        bind(inlet_accessor() if SDK else object, "limit", args, kwargs)
        self.calls.append(("limit", args))
        accessor = Accessor(self.events[: args[0]])
        return accessor

    def __iter__(self):
        return iter(self.events)


class TaskInstance:
    """The running task instance: each answer is a function of the call's keyword arguments."""

    def __init__(self, dag_id: str = "ingest_deadline", **answers) -> None:
        self.dag_id, self.answers, self.calls = dag_id, answers, []

    def __getattr__(self, name: str):
        if name not in self.answers:
            raise AttributeError(name)

        def call(*args, **kwargs):
            bind(runtime_ti() if SDK else object, name, args, kwargs)
            self.calls.append((name, kwargs))
            return self.answers[name](**kwargs)

        return call


def context(ti: TaskInstance, events: list[AssetEvent] | None = None) -> dict:
    return {"ti": ti, "inlet_events": {ORDERS: Accessor(events or [])}}


@pytest.fixture
def airflow3(monkeypatch):
    """The Airflow 3 back-end, whatever the profile (its code reads only what it is handed)."""
    monkeypatch.setattr(run_states, "AIRFLOW_3", True)


def test_no_code_but_run_states_opens_a_metadata_database_session():
    session = re.compile(r"create_session|settings\.Session|provide_session|NEW_SESSION|get_task_instances\(")
    models = re.compile(r"from airflow\.models[\w.]* import [^\n]*\b(DagRun|TaskInstance|DagModel|DatasetEvent)\b")
    offenders = []
    for path in sorted([*(PROJECT / "include").rglob("*.py"), *(PROJECT / "plugins").rglob("*.py")]):
        if path.name == "run_states.py":
            continue
        text = path.read_text()
        offenders += [
            f"{path.relative_to(PROJECT)}: {m.group(0)}" for m in (*session.finditer(text), *models.finditer(text))
        ]
    assert offenders == []


def test_airflow3_finds_a_dates_runs_and_takes_the_ingests_end_from_its_event(airflow3):
    end = INTERVAL[1]
    states = {
        DAY: {"scheduled__2030-03-04T02:00:00+00:00": {TASK: "success"}},
    }
    ti = TaskInstance(
        get_task_states=lambda dag_id, task_ids, logical_dates, **_: states.get(logical_dates[0], {}),
        get_dagrun_state=lambda dag_id, run_id: "success",
    )
    events = [
        AssetEvent(end + timedelta(minutes=110), "scheduled__2030-03-04T02:00:00+00:00", SourceRun(end)),
        # A manual re-run of the same date (another logical date) that also announced.
        AssetEvent(end + timedelta(hours=3), "manual__2030-03-05T05:00:00+00:00", SourceRun(end)),
        # Another date's event and another DAG's are not this date's.
        AssetEvent(end + timedelta(days=1), "scheduled__2030-03-05T02:00:00+00:00", SourceRun(end + timedelta(days=1))),
        AssetEvent(end + timedelta(minutes=5), "x", SourceRun(end), source_dag_id="other"),
    ]
    runs = run_states.runs_of_intervals(DAG, TASK, [INTERVAL], announces=ORDERS, context=context(ti, events))
    assert runs == {
        end: (
            run_states.TaskRun(
                "scheduled__2030-03-04T02:00:00+00:00", "success", "success", end + timedelta(minutes=110)
            ),
            run_states.TaskRun("manual__2030-03-05T05:00:00+00:00", "success", "success", end + timedelta(hours=3)),
        )
    }
    assert [name for name, _ in ti.calls] == ["get_task_states", "get_dagrun_state"]
    assert ti.calls[0][1] == {"dag_id": DAG, "task_ids": [TASK], "logical_dates": [DAY]}


def test_airflow3_reports_a_running_ingest_without_an_end(airflow3):
    ti = TaskInstance(
        get_task_states=lambda **_: {"scheduled__x": {TASK: None}, "manual__y": {}},
        get_dagrun_state=lambda dag_id, run_id: "running" if run_id == "scheduled__x" else "failed",
    )
    runs = run_states.runs_of_intervals(DAG, TASK, [INTERVAL], announces=ORDERS, context=context(ti))
    assert runs == {
        INTERVAL[1]: (
            run_states.TaskRun("manual__y", "failed", None, None),
            run_states.TaskRun("scheduled__x", "running", None, None),
        )
    }


def test_airflow3_dates_without_runs_are_absent(airflow3):
    ti = TaskInstance(get_task_states=lambda **_: {}, get_dagrun_state=lambda **_: "success")
    assert run_states.runs_of_intervals(DAG, TASK, [INTERVAL], announces=ORDERS, context=context(ti)) == {}


def test_airflow3_producer_since_is_its_first_event(airflow3):
    first = DAY + timedelta(days=1, minutes=40)
    later = AssetEvent(first + timedelta(days=1), "b", SourceRun(DAY))
    since = run_states.producer_since(
        DAG, announces=ORDERS, context=context(TaskInstance(), [later, AssetEvent(first, "a", SourceRun(DAY))])
    )
    assert since.at == first
    assert since.describe() == f"it first announced {ORDERS} at {first.isoformat()}"
    never = run_states.producer_since(DAG, announces=ORDERS, context=context(TaskInstance()))
    assert (never.at, never.describe()) == (None, f"it has not announced {ORDERS} yet")


@dataclass
class PreviousRun:
    logical_date: datetime | None
    run_type: str = "scheduled"


def test_airflow3_last_check_is_the_previous_scheduled_success_of_the_checks_own_dag(airflow3):
    before = DAY + timedelta(days=1, hours=2)
    for previous, expected in (
        (PreviousRun(DAY + timedelta(hours=2)), DAY + timedelta(hours=2)),
        (PreviousRun(DAY + timedelta(hours=8), "manual"), None),  # look back further, not less
        (None, None),
    ):
        ti = TaskInstance(get_previous_dagrun=lambda state, previous=previous: previous)
        assert run_states.last_scheduled_success("ingest_deadline", before, context=context(ti)) == expected
        assert ti.calls == [("get_previous_dagrun", {"state": "success"})]
    with pytest.raises(ValueError, match="own DAG"):
        run_states.last_scheduled_success(DAG, before, context=context(TaskInstance()))


def test_airflow3_finds_a_success_of_the_incidents_date(airflow3, monkeypatch):
    # manual__c has the same logical date but, being manual, covers the interval before it.
    states = {"scheduled__a": {TASK: "failed"}, "manual__b": {TASK: "success"}, "manual__c": {TASK: "success"}}
    starts = {"scheduled__a": DAY, "manual__b": DAY, "manual__c": DAY - timedelta(days=1)}
    monkeypatch.setattr(run_states, "_interval_start", lambda dag_id, run_id: starts[run_id])
    ti = TaskInstance(get_task_states=lambda **kwargs: states if kwargs["logical_dates"] == [DAY] else {})
    assert run_states.succeeded_in(DAG, TASK, DAY.isoformat(), ended_after=DAY, context=context(ti)) == "manual__b"
    assert run_states.succeeded_in(DAG, TASK, DAY + timedelta(days=1), context=context(ti)) is None
    del states["manual__b"]
    assert run_states.succeeded_in(DAG, TASK, DAY, context=context(ti)) is None


def test_airflow3_passes_the_plain_questions_through(airflow3):
    class Enum:  # the SDK's generated enums print as their class and name
        value = "success"

    ti = TaskInstance(
        get_task_states=lambda **_: {"run": {"a": Enum(), "b": None}},
        get_dr_count=lambda **kwargs: 3 if kwargs["states"] == ["success"] else 0,
        get_dagrun_state=lambda **_: Enum(),
    )
    ctx = context(ti)
    assert run_states.task_states(DAG, run_ids=["run"], context=ctx) == {"run": {"a": "success", "b": None}}
    assert run_states.count_runs(DAG, logical_dates=[DAY], states=["success"], context=ctx) == 3
    assert run_states.dag_run_state(DAG, "run", context=ctx) == "success"


@dataclass
class DagRun:
    run_type: str
    external_trigger: bool = False


def test_a_run_triggered_by_hand(monkeypatch):
    assert run_states.triggered_by_hand(None) is False
    monkeypatch.setattr(run_states, "AIRFLOW_3", False)
    assert run_states.triggered_by_hand(DagRun("manual", external_trigger=True)) is True
    assert run_states.triggered_by_hand(DagRun("scheduled")) is False
    monkeypatch.setattr(run_states, "AIRFLOW_3", True)  # external_trigger is gone there
    assert run_states.triggered_by_hand(DagRun("manual")) is True
    assert run_states.triggered_by_hand(DagRun("asset_triggered")) is False


@pytest.mark.skipif(
    not run_states.AIRFLOW_3,
    reason="the Task SDK (airflow.sdk) is Airflow 3's; under Airflow 2 the back-end is the metadata database",
)
def test_the_task_sdk_answers_with_what_the_airflow3_back_end_reads():
    import airflow.sdk
    from airflow.sdk.api.datamodels._generated import DagRun as SdkDagRun
    from airflow.sdk.execution_time.comms import AssetEventResult
    from airflow.sdk.execution_time.context import InletEventsAccessors

    assert callable(airflow.sdk.get_current_context)
    for name in ("get_task_states", "get_dr_count", "get_dagrun_state", "get_previous_dagrun"):
        assert callable(getattr(runtime_ti(), name)), name
    for name in ("after", "limit"):
        assert callable(getattr(inlet_accessor(), name)), name
    assert callable(InletEventsAccessors.__getitem__)
    event_fields = set(AssetEventResult.model_fields)
    assert {"timestamp", "extra", "source_dag_id", "source_run_id"} <= event_fields
    assert hasattr(AssetEventResult, "source_dag_run")  # the event's run, fetched from the Execution API
    assert {"data_interval_start", "data_interval_end", "state", "run_type", "logical_date"} <= set(
        SdkDagRun.model_fields
    )
    from airflow.sdk.execution_time.comms import DagRunResult, GetDagRun

    assert set(GetDagRun.model_fields) >= {"dag_id", "run_id"} and issubclass(DagRunResult, SdkDagRun)


def test_a_task_declares_event_inlets_on_airflow_3_only(monkeypatch):
    monkeypatch.setattr(run_states, "AIRFLOW_3", True)
    assert run_states.event_inlets(ORDERS, None, "s3://shopstream/gold/customer_360") == [
        ORDERS,
        "s3://shopstream/gold/customer_360",
    ]
    monkeypatch.setattr(run_states, "AIRFLOW_3", False)  # lineage would push them as XComs there
    assert run_states.event_inlets(ORDERS) == []


def events_a_day_apart(count: int) -> list[AssetEvent]:
    return [
        AssetEvent(DAY + timedelta(days=n), f"scheduled__{n}", None, extra={"ds": f"day {n}"} if n else None)
        for n in range(count)
    ]


def test_airflow2_filters_and_slices_a_datasets_events_itself(monkeypatch):
    monkeypatch.setattr(run_states, "AIRFLOW_3", False)
    ctx = {"inlet_events": {ORDERS: events_a_day_apart(4)}}  # Airflow 2.10's accessor: ordered, only sliced
    found = run_states.dataset_events(ORDERS, context=ctx)
    assert [e.source_run_id for e in found] == ["scheduled__0", "scheduled__1", "scheduled__2", "scheduled__3"]
    assert found[0] == run_states.Event(DAY, {}, DAG, "scheduled__0")
    assert found[1].extra == {"ds": "day 1"}
    after = run_states.dataset_events(ORDERS, after=DAY + timedelta(days=1), limit=1, context=ctx)
    assert [e.source_run_id for e in after] == ["scheduled__2"]  # strictly after, then the oldest
    assert run_states.dataset_events(ORDERS, limit=0, context=ctx) == []


def test_airflow3_asks_the_execution_api_to_filter_a_datasets_events(airflow3):
    accessor = Accessor(events_a_day_apart(4))
    found = run_states.dataset_events(
        ORDERS, after=DAY, limit=2, context={"ti": TaskInstance(), "inlet_events": {ORDERS: accessor}}
    )
    assert [e.source_run_id for e in found] == ["scheduled__1", "scheduled__2"]
    assert accessor.calls == [("after", (DAY,))]


def test_since_says_when_in_the_moments_own_words_or_that_it_never_ran():
    since = run_states.Since(DAY, "its first run was created", "it has no run")
    assert since.describe() == f"its first run was created at {DAY.isoformat()}"
    assert since.describe(lambda moment: moment.strftime("%d %b %H:%M")) == "its first run was created at 04 Mar 02:00"
    assert run_states.Since(None, "its first run was created", "it has no run").describe() == "it has no run"
