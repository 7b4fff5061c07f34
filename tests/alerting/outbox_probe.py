"""Open incidents whose success no callback saw, resolved by the alert_redelivery DAG.

Run in a subprocess against a migrated metadata database (the test passes the environment, the
sink's connections and a warehouse): ``python -m tests.alerting.outbox_probe``. With the clock
frozen at each moment it records, as the scheduler and a user would have:

- ``sales_core_pipeline`` runs for two business dates whose ``extract_orders`` failed for good,
  each with its real failure callback (a Slack alert and a PagerDuty trigger);
- a user marking the first date's failed task success in the UI (``DAG.set_task_instance_state``,
  what the UI's "Mark success" calls), which runs no callback;
- an ``analytics_and_reporting_pipeline`` run started by Dataset events whose
  ``daily_reports.build_daily_reports`` failed, then a run of it triggered by hand in which that
  task succeeded (another data interval, so the success callback resolves another key);
- the next sales date succeeding, which must not resolve the second date's incident;

then runs ``alert_redelivery`` with ``DAG.test`` and prints one JSON line: the run's state, the
housekeeping's result and ``ops.open_incident``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import time_machine

T0 = datetime(2031, 2, 3, 2, 40, tzinfo=UTC)
SALES_TASK = "orders_etl.extract_orders"
ANALYTICS_TASK = "daily_reports.build_daily_reports"


def main() -> None:
    from airflow.models import DagBag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunType

    from include.shopstream.ops import alerting, outbox
    from tests.conftest import PROJECT

    bag = DagBag(dag_folder=str(PROJECT / "dags"), include_examples=False)
    assert not bag.import_errors, bag.import_errors
    bag.sync_to_db()
    sales, analytics = bag.dags["sales_core_pipeline"], bag.dags["analytics_and_reporting_pipeline"]
    redelivery = bag.dags[outbox.OUTBOX_DAG]

    def record(dag, run_type, start, end, task_id, state, at):
        """A run of ``dag`` whose ``task_id`` ended in ``state`` at ``at``; its failure callback runs."""
        with time_machine.travel(at, tick=False), create_session() as session:
            run = dag.create_dagrun(
                run_id=f"{run_type.value}__{at.isoformat()}",
                run_type=run_type,
                execution_date=start if run_type == DagRunType.SCHEDULED else at,
                data_interval=(start, end),
                state=DagRunState.FAILED if state == "failed" else DagRunState.SUCCESS,
                external_trigger=run_type == DagRunType.MANUAL,
                start_date=at - timedelta(minutes=5),
                session=session,
            )
            ti = run.get_task_instance(task_id, session=session)
            ti.task = dag.get_task(task_id)
            ti.state, ti.start_date, ti.end_date = TaskInstanceState(state), at - timedelta(minutes=1), at
            session.flush()
            if state == "failed":
                context = ti.get_template_context(session=session)
                context["exception"] = RuntimeError("boom")
                alerting.critical_failure(context)
            return run

    day = timedelta(days=1)
    first = T0.replace(hour=2, minute=0) - 2 * day
    marked = record(sales, DagRunType.SCHEDULED, first, first + day, SALES_TASK, "failed", T0 - day)
    second = record(sales, DagRunType.SCHEDULED, first + day, first + 2 * day, SALES_TASK, "failed", T0)
    record(sales, DagRunType.SCHEDULED, first + 2 * day, first + 3 * day, SALES_TASK, "success", T0 + 2 * day)
    events = (T0 + timedelta(minutes=1), T0 + timedelta(minutes=2))
    record(analytics, DagRunType.DATASET_TRIGGERED, *events, ANALYTICS_TASK, "failed", T0 + timedelta(minutes=3))
    rerun_at = T0 + timedelta(minutes=20)
    record(analytics, DagRunType.MANUAL, rerun_at, rerun_at, ANALYTICS_TASK, "success", rerun_at)

    with time_machine.travel(T0 + 2 * day + timedelta(minutes=1), tick=False), create_session() as session:
        sales.set_task_instance_state(
            task_id=SALES_TASK, run_id=marked.run_id, state=TaskInstanceState.SUCCESS, session=session
        )

    moment = T0 + 2 * day + timedelta(minutes=10)
    with time_machine.travel(moment, tick=True):
        run = redelivery.test(execution_date=moment.replace(minute=5, second=0, microsecond=0))
    conn = outbox.connect()
    with conn, conn.cursor() as cur:
        cur.execute("SELECT dedup_key, resolved_at IS NOT NULL FROM ops.open_incident ORDER BY opened_at")
        incidents = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM ops.alert_outbox")
        queued = cur.fetchone()[0]
    conn.close()
    print(json.dumps({"state": run.state, "incidents": incidents, "queued": queued, "second": second.run_id}))


if __name__ == "__main__":
    main()
