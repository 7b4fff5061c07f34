"""The 04:00 check reads runs only through run_states; what it makes of the answers.

The answers here stand in for either back-end (tests/test_run_states.py plays the Airflow 3 one,
tests/alerting/test_ingest_deadline.py the whole check on Airflow 2's metadata database).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from include.shopstream.ops import deadlines
from include.shopstream.platform import outputs, run_states

DUE = datetime(2030, 3, 5, 4, tzinfo=UTC)  # the deadline of business date 2030-03-04
START, END = datetime(2030, 3, 4, 2, tzinfo=UTC), datetime(2030, 3, 5, 2, tzinfo=UTC)


def test_the_check_asks_run_states_about_the_dates_and_its_own_last_run(monkeypatch):
    asked = []
    run = run_states.TaskRun("scheduled__2030-03-04T02:00:00+00:00", "success", "success", DUE - timedelta(minutes=5))

    def runs_of_intervals(dag_id, task_id, intervals, *, announces=None):
        asked.append(("runs", dag_id, task_id, intervals, announces))
        return {END: (run,)}

    def producer_since(dag_id, *, announces=None):
        asked.append(("since", dag_id, announces))
        return run_states.Since(START, "its first run was created", "it has no run")

    def last_scheduled_success(dag_id, before):
        asked.append(("last", dag_id, before))
        return DUE - timedelta(days=1, seconds=-30)

    for name, fake in (
        ("runs_of_intervals", runs_of_intervals),
        ("producer_since", producer_since),
        ("last_scheduled_success", last_scheduled_success),
    ):
        monkeypatch.setattr(run_states, name, fake)
    history = deadlines.read_history(deadlines.INGEST, [(START, END)], "ingest_deadline", DUE)
    assert asked == [
        ("runs", "sales_core_pipeline", "orders_etl.announce_orders", [(START, END)], outputs.ORDERS.dataset),
        ("since", "sales_core_pipeline", outputs.ORDERS.dataset),
        ("last", "ingest_deadline", DUE),
    ]
    assert history.runs == {END: (run,)}
    assert history.checked_until == DUE - timedelta(days=1)
    verdict = deadlines.judge(deadlines.INGEST, DUE, history.runs[END], history.producer_since)
    assert verdict.line() == (
        "sales_core_pipeline 2030-03-04 (due 2030-03-05 04:00 UTC): met, done at 2030-03-05 03:55 UTC, by the deadline"
    )


def test_before_the_platform_says_what_the_back_end_knows():
    # Airflow 3 tells no run's creation time: the first orders event stands for it.
    since = run_states.Since(DUE + timedelta(hours=1), f"it first announced {outputs.ORDERS.uri}", "never")
    verdict = deadlines.judge(deadlines.INGEST, DUE, (), since.at, since_text=since.describe(deadlines._utc))
    assert verdict.outcome == deadlines.BEFORE_PLATFORM
    assert verdict.state == (
        f"sales_core_pipeline was not running yet (it first announced {outputs.ORDERS.uri} at 2030-03-05 05:00 UTC)"
    )
    # Airflow 2's words, as before run_states.
    since = run_states.Since(None, "its first run was created", "it has no run")
    verdict = deadlines.judge(deadlines.INGEST, DUE, (), since.at, since_text=since.describe(deadlines._utc))
    assert verdict.state == "sales_core_pipeline was not running yet (it has no run)"


def test_a_missed_date_names_each_runs_state():
    runs = (run_states.TaskRun("scheduled__x", "running", None, None),)
    verdict = deadlines.judge(deadlines.INGEST, DUE, runs, START)
    assert verdict.outcome == deadlines.MISSED
    assert verdict.state == "run scheduled__x is running, orders_etl.announce_orders is not started"


def test_the_orders_dataset_is_the_checks_inlet():
    from include.shopstream.platform.compat import DAG

    with DAG("probe_ingest_deadline", schedule=None, start_date=START):
        check = deadlines.check_deadline(deadlines.INGEST.name)
    # Only Airflow 3 needs the inlet; Airflow 2's lineage would push it as an XCom of the check.
    assert check.operator.inlets == ([outputs.ORDERS.dataset] if run_states.AIRFLOW_3 else [])
