"""gold.py: how a producer publishes an output, built in a DAG and read back (no scheduler).

The steps take their task ids from the output's announcing task and run in one order: build,
swap (or merge), lake files, then the Dataset event, on whichever SQL back-end this profile runs.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from include.shopstream.platform import gold, sql_steps
from include.shopstream.platform.compat import DAG, EmptyOperator
from include.shopstream.platform.names import STAGING
from include.shopstream.platform.outputs import DAILY_REPORTS, INVENTORY, ORDERS, PRODUCT_CATALOG, WEEKLY_ANALYTICS
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.warehouse import staging_name

COLUMNS = ("sku", "product_id", "name")


def build(make):
    """The DAG that ``make`` builds its steps in, and what it returns."""
    with DAG("gold_steps", start_date=datetime(2026, 11, 1, tzinfo=UTC), schedule=None) as dag:
        made = make()
    return dag, made


def qualified(value) -> str:
    """``schema.name`` of a step's table as its operator holds it (an SDK ``Table``, or the name)."""
    metadata = getattr(value, "metadata", None)
    return f"{metadata.schema}.{value.name}" if metadata is not None else value


def edges(dag) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


def test_a_rebuild_builds_into_the_runs_staging_table_then_swaps_it_into_gold():
    dag, swapped = build(lambda: gold.rebuild(PRODUCT_CATALOG, COLUMNS, inventory=table("inventory")))
    assert edges(dag) == {("build_catalog", "swap_catalog")}
    assert swapped.operator.task_id == "swap_catalog"
    built = dag.get_task("build_catalog")
    assert getattr(built, "sql_file", getattr(built, "sql", None)) == "product_catalog.sql"
    assert qualified(built.output_table) == staging_name("product_catalog_build")
    assert "inventory" in (getattr(built, "parameters", None) or {})
    assert list(swapped.operator.op_args) == [staging_name("product_catalog_build"), "gold.product_catalog", COLUMNS]
    assert "built_after" not in swapped.operator.op_kwargs


def test_a_rebuild_after_noting_gold_writes_builds_after_it_and_swaps_with_the_count():
    def steps():
        noted = EmptyOperator(task_id="note_gold_writes").output
        return noted, gold.rebuild(DAILY_REPORTS, COLUMNS, built_after=noted, gold_orders=table("orders"))

    dag, (noted, swapped) = build(steps)
    assert edges(dag) == {
        ("note_gold_writes", "build_daily_reports"),
        ("note_gold_writes", "swap_daily_reports"),
        ("build_daily_reports", "swap_daily_reports"),
    }
    assert swapped.operator.op_kwargs["built_after"] is noted


def test_the_steps_of_an_output_whose_event_task_is_not_announce_name_are_refused():
    renamed = dataclasses.replace(PRODUCT_CATALOG, announced_by="product_catalog.publish_catalog")
    with pytest.raises(ValueError, match=r"'publish_catalog' is not announce_<name>"):
        build(lambda: gold.rebuild(renamed, COLUMNS))
    with pytest.raises(ValueError, match="is not announce_<name>"):
        build(lambda: gold.export(dataclasses.replace(INVENTORY, announced_by="inventory_sync.inventory_done")))


def test_a_merge_writes_the_staged_rows_into_the_gold_table_on_the_outputs_key():
    _, merged = build(lambda: gold.merge(ORDERS, table("orders_valid", STAGING), ("order_id", "status")))
    operator = merged.operator
    assert operator.task_id == "merge_orders"
    assert qualified(operator.target_table) == "gold.orders"
    assert qualified(operator.source_table) == staging_name("orders_valid")
    assert list(getattr(operator, "target_conflict_columns", None) or operator.key) == ["order_id"]


def test_an_export_writes_the_gold_table_over_its_one_lake_file():
    _, exported = build(lambda: gold.export(INVENTORY))
    assert exported.operator.task_id == "publish_inventory"
    assert sql_steps.lake_path(exported.operator) == "s3://shopstream/gold/inventory/inventory.parquet"


@pytest.mark.parametrize("output", [ORDERS, DAILY_REPORTS, WEEKLY_ANALYTICS], ids=lambda o: o.name)
def test_an_output_without_exactly_one_unpartitioned_file_is_not_exported_whole(output):
    with pytest.raises(ValueError, match=f"{output.name}: not one unpartitioned lake file"):
        build(lambda: gold.export(output))


def test_publishing_exports_the_lake_file_after_the_write_and_announces_last():
    def steps():
        return gold.publish(INVENTORY, EmptyOperator(task_id="merge_inventory").output)

    dag, announced = build(steps)
    assert edges(dag) == {("merge_inventory", "publish_inventory"), ("publish_inventory", "announce_inventory")}
    assert announced.operator.task_id == "announce_inventory"
    assert announced.operator.outlets == [INVENTORY.dataset]


def test_publishing_with_its_own_lake_step_runs_that_step_instead_of_the_export():
    def steps():
        written = [EmptyOperator(task_id="swap_daily_reports").output, EmptyOperator(task_id="checked").output]
        return gold.publish(
            DAILY_REPORTS, written, lake=EmptyOperator(task_id="write_reports").output, day="2026-11-23"
        )

    dag, announced = build(steps)
    assert edges(dag) == {
        ("swap_daily_reports", "write_reports"),
        ("checked", "write_reports"),
        ("write_reports", "announce_daily_reports"),
    }
    assert list(announced.operator.op_args) == ["2026-11-23"]


def test_an_output_without_lake_files_is_announced_right_after_its_write():
    dag, announced = build(lambda: gold.publish(WEEKLY_ANALYTICS, EmptyOperator(task_id="merge_weekly").output))
    assert edges(dag) == {("merge_weekly", "announce_weekly_analytics")}
    assert list(announced.operator.op_args) == [None], "the run's own business date"
