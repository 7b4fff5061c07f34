"""sql_steps (the package): which back-end runs, the tables its steps take, and the one API that
hands each step to the chosen back-end. No database: the back-ends' own tests run them."""

from __future__ import annotations

import os

import pytest

from include.shopstream.platform import sql_steps
from include.shopstream.platform.compat import AIRFLOW_3
from include.shopstream.platform.sql_steps import BackendError, choose_backend


def test_the_sdk_is_the_default_where_it_runs_and_the_providers_elsewhere():
    assert choose_backend(None, airflow_3=False, sdk_installed=True) == "astro"
    assert choose_backend("", airflow_3=False, sdk_installed=True) == "astro"
    assert choose_backend(None, airflow_3=False, sdk_installed=False) == "providers"
    assert choose_backend(None, airflow_3=True, sdk_installed=True) == "providers"
    assert choose_backend(None, airflow_3=True, sdk_installed=False) == "providers"


def test_the_environment_variable_chooses_when_set():
    assert choose_backend("providers", airflow_3=False, sdk_installed=True) == "providers"
    assert choose_backend(" Providers ", airflow_3=True, sdk_installed=False) == "providers"
    assert choose_backend("astro", airflow_3=False, sdk_installed=True) == "astro"


@pytest.mark.parametrize(
    ("requested", "airflow_3", "installed", "message"),
    [
        ("astro", True, True, "does not run on Airflow 3"),
        ("astro", False, False, "is not installed"),
        ("sdk", False, True, "expected one of astro, providers"),
    ],
)
def test_a_back_end_that_cannot_run_here_is_refused_with_the_reason(requested, airflow_3, installed, message):
    with pytest.raises(BackendError, match=message):
        choose_backend(requested, airflow_3=airflow_3, sdk_installed=installed)


def test_this_process_runs_the_back_end_its_environment_chooses():
    assert choose_backend(os.environ.get(sql_steps.BACKEND_VARIABLE)) == sql_steps.BACKEND
    if AIRFLOW_3:
        assert sql_steps.BACKEND == "providers"


def test_a_staging_table_is_the_runs_own_and_a_gold_table_is_named_as_is():
    staged = sql_steps.table("orders_raw", "staging")
    gold = sql_steps.table("orders")
    names = {
        "astro": lambda t: (t.metadata.schema, t.name, t.conn_id),
        "providers": lambda t: (t.schema, t.name, t.conn_id),
    }[sql_steps.BACKEND]
    schema, name, conn_id = names(staged)
    assert (schema, conn_id) == ("staging", "shopstream_warehouse")
    assert name.startswith("orders_raw__{{ macros.uuid.uuid5(")
    assert names(gold) == ("gold", "orders", "shopstream_warehouse")


def test_a_tables_column_types_do_not_make_it_another_table():
    from sqlalchemy import Column, Text

    typed = sql_steps.Table("orders_raw", "staging", columns=(Column("order_id", Text),))
    assert typed == sql_steps.Table("orders_raw", "staging")
    assert typed != sql_steps.Table("orders_raw")
    assert typed.qualified == "staging.orders_raw"
    assert sql_steps.Table("orders").qualified == "gold.orders"
    assert sql_steps.Table.template_fields == ("name",), "a staging table's name is rendered for the run"


def test_a_tables_declared_columns_reach_the_back_end():
    from sqlalchemy import Column, Integer

    staged = sql_steps.table("stock_raw", "staging", [Column("on_hand", Integer)])
    assert [c.name for c in staged.columns] == ["on_hand"]
    assert list(sql_steps.table("orders").columns) == []


class Recorder:
    """A back-end that notes each call it gets."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return name

        return call


@pytest.fixture
def recorded(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(sql_steps, "_backend", recorder)
    return recorder.calls


def test_each_step_goes_to_the_chosen_back_end_with_its_arguments(recorded):
    target, source = sql_steps.Table("orders"), sql_steps.Table("orders_valid", "staging")
    assert sql_steps.load_file("load", "s3://shopstream/raw/orders/", source) == "load_file"
    sql_steps.transform_file("build", "orders_valid.sql", source, orders=target, trigger_rule="all_done")
    sql_steps.merge("merge", target, source, ("order_id", "status"), ("order_id",), retries=0)
    sql_steps.export_file("publish", target, "s3://shopstream/gold/orders/orders.parquet")
    sql_steps.dataframe(task_id="frame")
    assert recorded == [
        ("load_file", ("load", "s3://shopstream/raw/orders/", source), {"filetype": "csv", "text_as_is": False}),
        ("transform_file", ("build", "orders_valid.sql", source), {"orders": target, "trigger_rule": "all_done"}),
        ("merge", ("merge", target, source, ["order_id", "status"], ["order_id"]), {"retries": 0}),
        ("export_file", ("publish", target, "s3://shopstream/gold/orders/orders.parquet"), {}),
        ("dataframe", (), {"task_id": "frame"}),
    ]


def test_the_steps_work_outside_a_task_goes_to_the_chosen_back_end_too(recorded):
    sql_steps.load_into("/tmp/stock.ndjson", "staging.stock", filetype="ndjson")
    sql_steps.merge_into("gold.orders", "staging.orders_valid", ("order_id",), ("order_id",))
    sql_steps.table_frame("gold.orders")
    sql_steps.lake_path("an operator")
    sql_steps.source_table_name("an operator")
    assert recorded == [
        ("load_into", ("/tmp/stock.ndjson", "staging.stock", ()), {"filetype": "ndjson", "text_as_is": False}),
        ("merge_into", ("gold.orders", "staging.orders_valid", ["order_id"], ["order_id"]), {}),
        ("table_frame", ("gold.orders",), {}),
        ("lake_path", ("an operator",), {}),
        ("source_table_name", ("an operator",), {}),
    ]
