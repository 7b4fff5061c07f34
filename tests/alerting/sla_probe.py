"""What Airflow 2.10's own SLA check records for the ordinary late-ingest history.

Run in a subprocess against a migrated metadata database:
``python -m tests.alerting.sla_probe <dag folder> <sla hours>``. The folder holds a one-task DAG on
the ingest's schedule whose task carries ``sla``; yesterday's run succeeded at 02:40, today's
started at 02:00 and is still running. ``DagFileProcessor.manage_slas`` runs with the clock frozen
at 04:01 and at 23:59; the probe prints the SLA misses recorded after each, as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import time_machine


def main(folder: str) -> None:
    from airflow.dag_processing.processor import DagFileProcessor
    from airflow.models import DagBag, DagRun, SlaMiss, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType
    from sqlalchemy import delete, select

    bag = DagBag(dag_folder=folder, include_examples=False)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["sla_probe"]
    bag.sync_to_db()
    today = datetime(2031, 1, 15, 2, tzinfo=UTC)  # the 02:00 start of today's run
    with create_session() as session:
        for model in (SlaMiss, TaskInstance, DagRun):  # the probe DAG's own rows from an earlier call
            session.execute(delete(model).where(model.dag_id == dag.dag_id))
        for start, state in ((today - timedelta(days=1), DagRunState.SUCCESS), (today, DagRunState.RUNNING)):
            interval = (start - timedelta(days=1), start)
            with time_machine.travel(start, tick=False):
                run = dag.create_dagrun(
                    run_id=f"scheduled__{interval[0].isoformat()}",
                    run_type=DagRunType.SCHEDULED,
                    execution_date=interval[0],
                    data_interval=interval,
                    state=state,
                    external_trigger=False,
                    session=session,
                )
            ti = run.get_task_instance("ingest", session=session)
            ti.state = TaskInstanceState.SUCCESS if state == DagRunState.SUCCESS else TaskInstanceState.RUNNING
    found = {}
    for moment in (today.replace(hour=4, minute=1), today.replace(hour=23, minute=59)):
        with time_machine.travel(moment, tick=False):
            DagFileProcessor.manage_slas(dag.fileloc, dag.dag_id)
        with create_session() as session:
            found[moment.isoformat()] = [
                m.execution_date.isoformat()
                for m in session.scalars(select(SlaMiss).where(SlaMiss.dag_id == dag.dag_id)).all()
            ]
    print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1])
