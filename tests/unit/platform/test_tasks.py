"""tasks: the small tasks several pipelines share, and how they are wired.

The warehouse's helpers stand in for the warehouse: each task is held to calling them with the
run's own names and handing back what they answer. The announcing task records its output's
Dataset, under the task id the registry names, with the business date it is about.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from jinja2 import Template

from include.shopstream.platform import outputs, tasks, warehouse
from include.shopstream.platform.compat import DAG, task, task_group
from include.shopstream.platform.outputs import DAILY_REPORTS, ORDERS
from tests.unit.platform.contexts import START, scheduled_run, started_by_assets

RUN_ID = "scheduled__2026-11-23T02:00:00+00:00"
THE_DAG = SimpleNamespace(dag_id="sales_core_pipeline")


def a_dag(dag_id: str = "wiring") -> DAG:
    return DAG(dag_id, start_date=START, schedule=None)


def calls(monkeypatch, **answers) -> list[tuple]:
    """Replace the warehouse's helpers named in ``answers``; returns the calls they get, in order."""
    made = []
    for name, answer in answers.items():

        def helper(*args, name=name, answer=answer, **kwargs):
            made.append((name, args, kwargs))
            return answer

        monkeypatch.setattr(warehouse, name, helper)
    return made


def test_preparing_the_warehouse_creates_it_then_claims_the_runs_staging(monkeypatch):
    made = calls(monkeypatch, ensure_warehouse=None, claim_staging="key")
    assert tasks.prepare_warehouse.function(dag=THE_DAG, run_id=RUN_ID) is None
    assert made == [("ensure_warehouse", (), {}), ("claim_staging", ("sales_core_pipeline", RUN_ID), {})]


def test_dropping_staging_drops_the_runs_tables_and_says_which(monkeypatch, capsys):
    made = calls(monkeypatch, drop_staging=["staging.orders_raw_ab12", "staging.orders_valid_ab12"])
    assert tasks.drop_staging.function(dag=THE_DAG, run_id=RUN_ID) == [
        "staging.orders_raw_ab12",
        "staging.orders_valid_ab12",
    ]
    assert made == [("drop_staging", ("sales_core_pipeline", RUN_ID), {})]
    assert "dropped 2 staging tables: staging.orders_raw_ab12, staging.orders_valid_ab12" in capsys.readouterr().out


def test_dropping_staging_with_nothing_to_drop_says_none(monkeypatch, capsys):
    calls(monkeypatch, drop_staging=[])
    assert tasks.drop_staging.function(dag=THE_DAG, run_id=RUN_ID) == []
    assert "dropped 0 staging tables: none" in capsys.readouterr().out


def test_dropping_staging_runs_unless_something_failed():
    with a_dag():
        drop = tasks.drop_staging()
    assert drop.operator.trigger_rule == "none_failed"


def test_a_swap_hands_the_columns_as_a_list_and_keeps_the_build_guard(monkeypatch):
    made = calls(monkeypatch, replace_rows=1234)
    columns = ("order_id", "amount")
    assert tasks.swap_into_gold.function("staging.orders_built", "gold.orders", columns, built_after=7) == 1234
    assert tasks.swap_into_gold.function("staging.orders_built", "gold.orders", columns) == 1234
    assert made == [
        ("replace_rows", ("gold.orders", "staging.orders_built", ["order_id", "amount"]), {"built_after": 7}),
        ("replace_rows", ("gold.orders", "staging.orders_built", ["order_id", "amount"]), {"built_after": None}),
    ]


class Connection:
    def __init__(self) -> None:
        self.closed = False
        self.cursors = []

    def cursor(self):
        self.cursors.append(Cursor())
        return self.cursors[-1]

    def close(self) -> None:
        self.closed = True


class Cursor:
    closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.closed = True


def test_noting_gold_writes_counts_on_a_cursor_it_then_closes(monkeypatch):
    conn = Connection()
    monkeypatch.setattr(warehouse, "warehouse_hook", lambda: SimpleNamespace(get_conn=lambda: conn))
    counted = []
    monkeypatch.setattr(warehouse, "gold_writes", lambda cur, tables: counted.append((cur, tables)) or 42)
    assert tasks.note_gold_writes.function(("gold.orders", "gold.customers")) == 42
    assert counted == [(conn.cursors[0], ("gold.orders", "gold.customers"))]
    assert conn.closed and conn.cursors[0].closed


def test_the_report_date_is_the_newest_date_the_triggering_events_carry():
    events = {ORDERS.uri: [SimpleNamespace(timestamp=START.add(days=1), extra={"ds": "2026-11-23"})]}
    assert tasks.report_date.function(**started_by_assets(START.add(days=2), events)) == "2026-11-23"
    assert tasks.report_date.function(**scheduled_run()) == "2026-11-23"


def test_a_rendered_value_is_a_template_of_the_tasks_xcom_named_by_its_task():
    with a_dag():

        @task_group
        def daily():
            @task
            def report_uri() -> str:
                return "s3://shopstream/reports/daily/ds=2026-11-23/"

            return report_uri()

        value = daily()
    template = tasks.rendered(value)
    assert template == "{{ ti.xcom_pull(task_ids='daily.report_uri', key='return_value') }}"
    pulled = {("daily.report_uri", "return_value"): "s3://shopstream/reports/daily/ds=2026-11-23/"}
    ti = SimpleNamespace(xcom_pull=lambda task_ids, key: pulled[(task_ids, key)])
    assert Template(template).render(ti=ti) == "s3://shopstream/reports/daily/ds=2026-11-23/"


@pytest.mark.parametrize("output", outputs.PUBLISHED, ids=lambda output: output.name)
def test_each_output_is_announced_by_the_task_its_entry_names_with_its_dataset_only(output):
    group_id, _ = output.announced_by.rsplit(".", 1)
    with a_dag():

        @task_group(group_id=group_id)
        def producer():
            return tasks.announce(output)

        announced = producer().operator
    assert announced.task_id == output.announced_by
    assert list(announced.outlets) == [output.dataset]


def test_a_producer_announces_its_business_date_and_a_consumer_its_report_date():
    with DAG("announcing", start_date=START, schedule=None):
        producer = tasks.announce(ORDERS).operator.python_callable
        consumer = tasks.announce(DAILY_REPORTS, "2026-11-20").operator.python_callable
    outlets = {ORDERS.dataset: SimpleNamespace(), DAILY_REPORTS.dataset: SimpleNamespace()}
    producer(None, outlet_events=outlets, **scheduled_run())
    consumer("2026-11-20", outlet_events=outlets, **started_by_assets(START.add(days=3), {}))
    assert outlets[ORDERS.dataset].extra == {"ds": "2026-11-23"}
    assert outlets[DAILY_REPORTS.dataset].extra == {"ds": "2026-11-20"}
