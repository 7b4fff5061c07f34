"""What task code and callbacks ask about other runs, answered without a metadata-database session.

The few questions the platform asks about runs (the 04:00 deadline check, the alert outbox's
housekeeping, the quality results) live here, each with two back-ends chosen by the Airflow
version:

- **Airflow 2** (``AIRFLOW_3`` false): the metadata database through Airflow's ORM, the only way
  Airflow 2.10 gives task code to read other runs (short of its REST API and a credential for
  it). This module is the one place of ``include/`` and ``plugins/`` that opens such a session.
- **Airflow 3**: the Task SDK, whose task process talks to the Execution API, never to the
  database: ``RuntimeTaskInstance.get_task_states``, ``get_dr_count``, ``get_dagrun_state`` and
  ``get_previous_dagrun`` of the running task (``context["ti"]``), and the Asset events of the
  task's inlets (``context["inlet_events"]``).

The Execution API answers less than the database: task states without their end times, runs by
run id or logical date but not by data interval, no run's creation time. Where a question needs
more, the Airflow 3 back-end reads the Dataset (Asset) event that the producing task records as
its last step: its timestamp is when the data was done, its source run gives the data interval.
What each answer means on either version is said at the function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from include.shopstream.platform.compat import AIRFLOW_3, get_current_context

log = logging.getLogger(__name__)

SUCCESS = "success"
MANUAL = "manual"


@dataclass(frozen=True)
class TaskRun:
    """One run of a DAG and the state of one of its tasks in it."""

    run_id: str
    run_state: str | None
    task_state: str | None
    task_end: datetime | None  # when the task finished (Airflow 3: when its Dataset event was recorded)


@dataclass(frozen=True)
class Event:
    """One Dataset (Asset) event, as both versions describe it."""

    timestamp: datetime
    extra: dict[str, Any] = field(hash=False)
    source_dag_id: str | None
    source_run_id: str | None


@dataclass(frozen=True)
class Since:
    """Since when a producer has been running, as far as the back-end can tell."""

    at: datetime | None  # None: it has never run (Airflow 3: never recorded the event)
    what: str  # what ``at`` is the time of, for on-call: "its first run was created"
    never: str  # what on-call reads when ``at`` is None

    def describe(self, moment: Callable[[datetime], str] = datetime.isoformat) -> str:
        return f"{self.what} at {moment(self.at)}" if self.at is not None else self.never


def _context(context) -> dict:
    if context is not None:
        return context
    return get_current_context()


def _ti(context):
    return _context(context)["ti"]


def _state(value) -> str | None:
    """A state as its plain value (the SDK's generated enums print as ``DagRunState.SUCCESS``)."""
    return None if value is None else str(getattr(value, "value", value))


def _dt(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _interval_start(dag_id: str, run_id: str) -> datetime | None:
    """Airflow 3: the start of a run's data interval, from the Execution API."""
    from include.shopstream.platform.compat import dag_run

    return dag_run(dag_id, run_id).data_interval_start


# -- the questions ------------------------------------------------------------------------------


def triggered_by_hand(dag_run) -> bool:
    """Whether ``dag_run`` was triggered by a person (the UI, the CLI, the REST API)."""
    if dag_run is None:
        return False
    if AIRFLOW_3:  # external_trigger is gone; the run type says it
        return _state(dag_run.run_type) == MANUAL
    return bool(dag_run.external_trigger)


def task_states(
    dag_id: str,
    *,
    task_ids: list[str] | None = None,
    run_ids: list[str] | None = None,
    logical_dates: list[datetime] | None = None,
    context=None,
) -> dict[str, dict[str, str | None]]:
    """``{run_id: {task_id: state}}`` of ``dag_id``'s task instances matching every filter given.

    A mapped task instance is keyed ``<task_id>_<map_index>`` (the Execution API's own keys).
    """
    if AIRFLOW_3:
        states = _ti(context).get_task_states(
            dag_id=dag_id, task_ids=task_ids, run_ids=run_ids, logical_dates=logical_dates
        )
        return {run_id: {task: _state(state) for task, state in by_task.items()} for run_id, by_task in states.items()}
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = (
        select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)
        .join(DagRun, (DagRun.dag_id == TaskInstance.dag_id) & (DagRun.run_id == TaskInstance.run_id))
        .where(TaskInstance.dag_id == dag_id)
    )
    if task_ids:
        query = query.where(TaskInstance.task_id.in_(task_ids))
    if run_ids:
        query = query.where(TaskInstance.run_id.in_(run_ids))
    if logical_dates:
        query = query.where(DagRun.execution_date.in_(logical_dates))
    found: dict[str, dict[str, str | None]] = {}
    with create_session() as session:
        for run_id, task_id, map_index, state in session.execute(query):
            key = task_id if map_index < 0 else f"{task_id}_{map_index}"
            found.setdefault(run_id, {})[key] = _state(state)
    return found


def dag_run_state(dag_id: str, run_id: str, *, context=None) -> str | None:
    """The state of one DAG run (``None`` on Airflow 2 when there is no such run)."""
    if AIRFLOW_3:
        return _state(_ti(context).get_dagrun_state(dag_id=dag_id, run_id=run_id))
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    return _state(state)


def count_runs(
    dag_id: str,
    *,
    logical_dates: list[datetime] | None = None,
    run_ids: list[str] | None = None,
    states: list[str] | None = None,
    context=None,
) -> int:
    """How many runs of ``dag_id`` match every filter given."""
    if AIRFLOW_3:
        return _ti(context).get_dr_count(dag_id=dag_id, logical_dates=logical_dates, run_ids=run_ids, states=states)
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    query = select(func.count()).select_from(DagRun).where(DagRun.dag_id == dag_id)
    if logical_dates:
        query = query.where(DagRun.execution_date.in_(logical_dates))
    if run_ids:
        query = query.where(DagRun.run_id.in_(run_ids))
    if states:
        query = query.where(DagRun.state.in_(states))
    with create_session() as session:
        return session.scalar(query) or 0


def event_inlets(*datasets) -> list:
    """The inlets a task declares to read ``datasets``' events: on Airflow 3 only, which needs them.

    Airflow 2.10 reads the events from the database without them, and its lineage would push
    the inlets as XComs of the task beside its return value.
    """
    return [d for d in datasets if d is not None] if AIRFLOW_3 else []


def dataset_events(dataset, *, after: datetime | None = None, limit: int | None = None, context=None) -> list[Event]:
    """The events of ``dataset``, an inlet of the running task, oldest first (after ``after``)."""
    accessor = _context(context)["inlet_events"][dataset]
    if AIRFLOW_3:
        if after is not None:
            accessor = accessor.after(after)
        if limit is not None:
            accessor = accessor.limit(limit)
        return [_event(e) for e in accessor]
    # Airflow 2.10's accessor is ordered by timestamp and only sliced; the filter is ours.
    events = [_event(e) for e in accessor if after is None or e.timestamp > after]
    return events[:limit] if limit is not None else events


def _event(event) -> Event:
    return Event(event.timestamp, dict(event.extra or {}), event.source_dag_id, event.source_run_id)


# -- the 04:00 deadline's questions --------------------------------------------------------------


def runs_of_intervals(
    dag_id: str,
    task_id: str,
    intervals: list[tuple[datetime, datetime]],
    *,
    announces=None,
    context=None,
) -> dict[datetime, tuple[TaskRun, ...]]:
    """The runs of ``dag_id`` for these data intervals, by interval end, oldest run first.

    Scheduled and manual runs of the same business date share its data interval, so a manual
    re-run counts. Airflow 2 reads the runs by data interval and ``task_id``'s end time from the
    database. Airflow 3 finds the runs by logical date (the interval's start: the scheduled run),
    and when ``task_id`` records the Dataset ``announces`` (an inlet of the running task), takes
    its end from that event, which also brings in the runs of the interval under another logical
    date that did announce (a manual re-run). An interval without runs is absent.
    """
    if AIRFLOW_3:
        return _runs_of_intervals_sdk(dag_id, task_id, intervals, announces, context)
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(DagRun.data_interval_end, DagRun.run_id, DagRun.state, TaskInstance.state, TaskInstance.end_date)
            .outerjoin(
                TaskInstance,
                (TaskInstance.dag_id == DagRun.dag_id)
                & (TaskInstance.run_id == DagRun.run_id)
                & (TaskInstance.task_id == task_id),
            )
            .where(DagRun.dag_id == dag_id, DagRun.data_interval_end.in_([end for _, end in intervals]))
            .order_by(DagRun.id)
        ).all()
    runs: dict[datetime, list[TaskRun]] = {}
    for end, run_id, run_state, state, task_end in rows:
        runs.setdefault(end, []).append(TaskRun(run_id, run_state, state, task_end))
    return {end: tuple(found) for end, found in runs.items()}


def _runs_of_intervals_sdk(dag_id, task_id, intervals, announces, context) -> dict[datetime, tuple[TaskRun, ...]]:
    ti = _ti(context)
    runs: dict[datetime, dict[str, TaskRun]] = {}
    for start, end in intervals:
        states = ti.get_task_states(dag_id=dag_id, task_ids=[task_id], logical_dates=[start])
        for run_id, by_task in sorted(states.items()):
            run_state = _state(ti.get_dagrun_state(dag_id=dag_id, run_id=run_id))
            runs.setdefault(end, {})[run_id] = TaskRun(run_id, run_state, _state(by_task.get(task_id)), None)
    if announces is not None and intervals:
        ends = {end for _, end in intervals}
        accessor = _context(context)["inlet_events"][announces].after(min(start for start, _ in intervals))
        for event in accessor:
            if event.source_dag_id != dag_id or not event.source_run_id:
                continue
            source = event.source_dag_run  # the Execution API's run of the event: its data interval
            end = source.data_interval_end if source is not None else None
            if end not in ends:
                continue
            known = runs.setdefault(end, {}).get(event.source_run_id)
            task_end = (
                event.timestamp if known is None or known.task_end is None else max(known.task_end, event.timestamp)
            )
            run_state = _state(source.state) if known is None else known.run_state
            runs[end][event.source_run_id] = TaskRun(event.source_run_id, run_state, SUCCESS, task_end)
    return {end: tuple(found.values()) for end, found in runs.items()}


def producer_since(dag_id: str, *, announces=None, context=None) -> Since:
    """Since when ``dag_id`` has been running: before that moment, no deadline of it applies.

    Airflow 2: when its first run was created (``queued_at``, or the start of a run created
    already running: a backfill, ``DAG.test``); the data interval says nothing about when the
    platform existed. Airflow 3 tells no run's creation time: when it first recorded the Dataset
    ``announces`` (its first complete run), or, while it never has, ``None``.
    """
    if AIRFLOW_3:
        uri = getattr(announces, "uri", announces)
        first = dataset_events(announces, limit=1, context=context) if announces is not None else []
        at = first[0].timestamp if first else None
        return Since(at, f"it first announced {uri}", f"it has not announced {uri} yet")
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        at = session.scalar(
            select(func.min(func.coalesce(DagRun.queued_at, DagRun.start_date))).where(DagRun.dag_id == dag_id)
        )
    return Since(at, "its first run was created", "it has no run")


def last_scheduled_success(dag_id: str, before: datetime, *, context=None) -> datetime | None:
    """The logical date of ``dag_id``'s latest successful run before ``before`` not triggered by hand.

    Airflow 3 answers it for the running task's own DAG only (``get_previous_dagrun``, which
    does not skip manual runs): when the previous successful run was manual, ``None``, as if
    there were none, so the caller looks back further rather than less.
    """
    if AIRFLOW_3:
        ti = _ti(context)
        if ti.dag_id != dag_id:
            raise ValueError(f"the Task SDK reads the previous runs of the task's own DAG only, not {dag_id}")
        previous = ti.get_previous_dagrun(state=SUCCESS)
        if previous is None or previous.logical_date is None or triggered_by_hand(previous):
            return None
        return previous.logical_date if previous.logical_date < before else None
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.max(DagRun.execution_date)).where(
                DagRun.dag_id == dag_id,
                DagRun.state == SUCCESS,
                DagRun.external_trigger.is_(False),
                DagRun.execution_date < before,
            )
        )


# -- the alert outbox's question ---------------------------------------------------------------


def succeeded_in(
    dag_id: str, task_id: str, interval_start: datetime | str, *, ended_after: datetime | None = None, context=None
) -> str | None:
    """A run in which ``task_id`` succeeded for the data interval starting ``interval_start``.

    With ``ended_after`` and a DAG scheduled on Datasets (whose intervals are those of its
    events), a success in any run that ended after that moment counts too. Returns the run id
    (the latest run's), or ``None``.

    Airflow 2 reads it from the database. Airflow 3 finds the runs of that logical date (the
    interval's start: the scheduled run and a re-run of it, a clear, "mark success") and keeps
    those whose data interval does start there: a manual run's logical date is the end of its
    interval, so a manual run at that moment covers the interval before. It reads no end times,
    so ``ended_after`` is not answered there (an Asset-triggered run has no logical date to find it
    by), nor a manual run of the interval (found under the interval's end): such an incident is
    resolved by the task's success callback.
    """
    start = _dt(interval_start)
    if AIRFLOW_3:
        states = _ti(context).get_task_states(dag_id=dag_id, task_ids=[task_id], logical_dates=[start])
        done = sorted(
            run_id
            for run_id, by_task in states.items()
            if _state(by_task.get(task_id)) == SUCCESS and _interval_start(dag_id, run_id) == start
        )
        return done[-1] if done else None
    from airflow.models import DagModel, DagRun, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import and_, or_, select

    with create_session() as session:
        same_interval = DagRun.data_interval_start == start
        matches = same_interval
        if ended_after is not None:
            by_events = session.scalar(select(DagModel.dataset_expression).where(DagModel.dag_id == dag_id))
            if by_events:
                matches = or_(same_interval, TaskInstance.end_date > ended_after)
        return session.scalar(
            select(DagRun.run_id)
            .join(TaskInstance, and_(TaskInstance.dag_id == DagRun.dag_id, TaskInstance.run_id == DagRun.run_id))
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.task_id == task_id,
                TaskInstance.state == TaskInstanceState.SUCCESS,
                matches,
            )
            .order_by(DagRun.id.desc())
            .limit(1)
        )
