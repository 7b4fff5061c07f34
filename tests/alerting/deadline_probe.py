"""Plays one day of the 04:00 deadline through Airflow's own code, with the clock frozen.

Run in a subprocess against a migrated metadata database (the test passes the environment):
``python -m tests.alerting.deadline_probe < steps.json``. It starts from an empty history (no run
of either DAG, no incident or delivery record), as a platform's first day. Each step, at its own
frozen moment:

- ``{"sales": "2026-11-25", "state": "success"|"running"|"failed"|"queued", "at": ..., "manual": bool}``
  records a run of ``sales_core_pipeline`` for that business date as the scheduler or a user
  would have created it; ``success`` also marks ``orders_etl.announce_orders`` done at ``at``.
- ``{"finish": "2026-11-25", "at": ...}`` runs ``orders_etl.announce_orders`` of that date's
  latest run through ``TaskInstance.run``, with its real success callbacks.
- ``{"tick": ..., "down": ["slack"]}`` asks ``ingest_deadline``'s timetable, as the scheduler
  does, whether a run is due at that moment after the previous check, and if so runs it with
  ``DAG.test`` (retries and failure callbacks included); the channels in ``down`` (``slack``,
  ``pagerduty``) refuse connections meanwhile, and with ``metadata`` the check's read of the
  metadata database fails as a lost connection does.

It prints one JSON line per step: what the scheduler would have done and the run's outcome (state,
tries, and the lines the check returned).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import UTC, datetime, timedelta

import time_machine


def unreachable(*args, **kwargs):
    from sqlalchemy.exc import OperationalError

    raise OperationalError("SELECT ... FROM dag_run", {}, ConnectionError("server closed the connection"))


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def refused_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def channels_down(names: list[str]) -> dict[str, str]:
    """The connection environment variables that send ``names`` to a refused port."""
    down = {}
    for name in names:
        if name == "metadata":
            continue
        variable = f"AIRFLOW_CONN_{name.upper()}_ALERTS"
        conn = json.loads(os.environ[variable])
        down[variable] = json.dumps({**conn, "host": f"{refused_url()}/{name}"})
    return down


def main() -> None:
    from airflow.models import DagBag, DagRun, TaskInstance, XCom
    from airflow.models.variable import Variable
    from airflow.timetables.base import DataInterval
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType
    from sqlalchemy import delete, select

    from include.shopstream.ops import deadlines
    from tests.conftest import PROJECT

    steps = json.load(sys.stdin)
    bag = DagBag(dag_folder=str(PROJECT / "dags"), include_examples=False)
    assert not bag.import_errors, bag.import_errors
    sales, watch = bag.dags[deadlines.INGEST.dag_id], bag.dags["ingest_deadline"]
    bag.sync_to_db()
    with create_session() as session:  # runs cascade to their task instances and XComs
        for stale in (
            delete(DagRun).where(DagRun.dag_id.in_((sales.dag_id, watch.dag_id))),
            delete(Variable).where(Variable.key.startswith("shopstream_", autoescape=True)),
        ):
            session.execute(stale.execution_options(synchronize_session=False))
    last_check: DataInterval | None = None

    for step in steps:
        if "sales" in step:
            day = datetime.fromisoformat(step["sales"]).replace(hour=2, tzinfo=UTC)
            at = moment(step["at"])
            interval = (day, day + timedelta(days=1))
            manual = step.get("manual", False)
            with time_machine.travel(at, tick=False), create_session() as session:
                run = sales.create_dagrun(
                    run_id=f"{'manual' if manual else 'scheduled'}__{(at if manual else day).isoformat()}",
                    run_type=DagRunType.MANUAL if manual else DagRunType.SCHEDULED,
                    execution_date=at if manual else day,
                    data_interval=interval,
                    state=DagRunState(step["state"]),
                    external_trigger=manual,
                    start_date=at,
                    session=session,
                )
                if step["state"] == "success":
                    ti = run.get_task_instance(deadlines.INGEST.task_id, session=session)
                    ti.state, ti.end_date = TaskInstanceState.SUCCESS, at
                elif step["state"] == "failed":
                    ti = run.get_task_instance("orders_etl.extract_orders", session=session)
                    ti.state, ti.end_date = TaskInstanceState.FAILED, at
            print(json.dumps({"step": step, "run_id": run.run_id}), flush=True)
        elif "finish" in step:
            day = datetime.fromisoformat(step["finish"]).replace(hour=2, tzinfo=UTC)
            with time_machine.travel(moment(step["at"]), tick=True), create_session() as session:
                run = session.scalars(
                    select(DagRun)
                    .where(DagRun.dag_id == sales.dag_id, DagRun.data_interval_start == day)
                    .order_by(DagRun.id.desc())
                ).first()
                ti = run.get_task_instance(deadlines.INGEST.task_id, session=session)
                ti.task = sales.get_task(deadlines.INGEST.task_id)
                ti.run(ignore_all_deps=True, ignore_ti_state=True, session=session)
                state = ti.state
            print(json.dumps({"step": step, "state": state}), flush=True)
        else:
            at = moment(step["tick"])
            saved = dict(os.environ)
            os.environ.update(channels_down(step.get("down", [])))
            metadata = deadlines.read_history
            if "metadata" in step.get("down", []):
                deadlines.read_history = unreachable
            try:
                with time_machine.travel(at, tick=True):
                    info = watch.next_dagrun_info(last_check, restricted=True)
                    due = info is not None and info.run_after <= at
                    state = tries = lines = None
                    if due:
                        run = watch.test(execution_date=info.logical_date)
                        state = run.state
                        last_check = info.data_interval
                        with create_session() as session:
                            ti = session.scalar(
                                select(TaskInstance).where(
                                    TaskInstance.dag_id == watch.dag_id, TaskInstance.run_id == run.run_id
                                )
                            )
                            tries = ti.try_number
                            lines = XCom.get_one(
                                run_id=run.run_id, dag_id=watch.dag_id, task_id=ti.task_id, session=session
                            )
            finally:
                deadlines.read_history = metadata
                os.environ.clear()
                os.environ.update(saved)
            result = {"step": step, "due": due, "check_state": state, "tries": tries, "lines": lines}
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
