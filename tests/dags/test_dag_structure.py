"""The contract of DESIGN.md: DAG ids, TaskGroups in order, schedules and Dataset wiring."""

import pytest

from include.shopstream.platform import datasets, sql_steps
from include.shopstream.platform.compat import AIRFLOW_3, Dataset, DatasetAll, DatasetAny

GOLD = "s3://shopstream/gold/"


def groups(dag) -> list[str]:
    return list(dag.task_group.children)


def outlets(dag) -> dict[str, set[str]]:
    """task_id -> the Dataset URIs it publishes."""
    return {t.task_id: {o.uri for o in t.outlets if isinstance(o, Dataset)} for t in dag.tasks if t.outlets}


def group_tasks(dag, group_id):
    return [t for t in dag.tasks if t.task_id.startswith(group_id + ".")]


def runs_before(dag, first: str, second: str) -> bool:
    """Every task of group ``second`` runs after the tasks that end group ``first``."""
    second_ids = {t.task_id for t in group_tasks(dag, second)}
    leaves = [
        t for t in group_tasks(dag, first) if not any(d.task_id.startswith(first + ".") for d in t.downstream_list)
    ]
    return bool(leaves) and all(second_ids <= leaf.get_flat_relative_ids(upstream=False) for leaf in leaves)


def condition_of(dag):
    """The Dataset condition a DAG is scheduled on (Airflow 3 calls it the asset condition)."""
    timetable = dag.timetable
    return timetable.asset_condition if AIRFLOW_3 else timetable.dataset_condition


def test_sales_core_pipeline(dagbag, scheduled):
    dag = dagbag.dags["sales_core_pipeline"]
    assert scheduled[dag.dag_id].timetable.summary == "0 2 * * *"
    assert groups(dag) == ["orders_etl", "customer_360", "drop_staging"]
    assert runs_before(dag, "orders_etl", "customer_360")
    assert outlets(dag) == {
        "orders_etl.announce_orders": {GOLD + "orders"},
        "customer_360.announce_customer_360": {GOLD + "customer_360"},
    }


def test_inventory_mgmt_pipeline(dagbag, scheduled):
    dag = dagbag.dags["inventory_mgmt_pipeline"]
    assert scheduled[dag.dag_id].timetable.summary == "0 */4 * * *"
    assert groups(dag) == ["inventory_sync", "product_catalog", "drop_staging"]
    assert runs_before(dag, "inventory_sync", "product_catalog")
    assert outlets(dag) == {
        "inventory_sync.announce_inventory": {GOLD + "inventory"},
        "product_catalog.announce_catalog": {GOLD + "product_catalog"},
    }


def test_analytics_waits_for_both_sales_datasets(dagbag):
    dag = dagbag.dags["analytics_and_reporting_pipeline"]
    condition = condition_of(dag)
    assert isinstance(condition, DatasetAll)
    assert {d.uri for d in condition.objects} == {GOLD + "orders", GOLD + "customer_360"}
    assert set(groups(dag)) == {
        "report_date", "daily_reports", "weekly_analytics", "ml_feature_pipeline", "drop_staging"
    }  # fmt: skip
    assert runs_before(dag, "daily_reports", "weekly_analytics")
    assert outlets(dag) == {
        "daily_reports.announce_daily_reports": {GOLD + "daily_reports"},
        "weekly_analytics.announce_weekly_analytics": {GOLD + "weekly_analytics"},
        "ml_feature_pipeline.announce_features": {"s3://shopstream/features/customer"},
    }


def test_observability_watches_any_published_dataset(dagbag):
    dag = dagbag.dags["observability_pipeline"]
    condition = condition_of(dag)
    assert isinstance(condition, DatasetAny)
    published = {uri for dag in dagbag.dags.values() for uris in outlets(dag).values() for uri in uris}
    assert {d.uri for d in condition.objects} == published
    assert len(published) == 7
    assert groups(dag) == ["data_quality_checks", "quality_results"]
    assert outlets(dag) == {}


@pytest.mark.parametrize(
    "dag_id", ["sales_core_pipeline", "analytics_and_reporting_pipeline", "inventory_mgmt_pipeline"]
)
def test_the_run_drops_its_staging_tables_last(dagbag, dag_id):
    """drop_staging comes after every other task, and only when none failed (a failed task keeps
    the tables it needs to be cleared and re-run)."""
    dag = dagbag.dags[dag_id]
    drop = dag.get_task("drop_staging")
    assert drop.trigger_rule == "none_failed"
    assert drop.get_flat_relative_ids(upstream=True) == set(dag.task_ids) - {"drop_staging"}


def test_each_dataset_uri_is_defined_once():
    defined = [value.uri for value in vars(datasets).values() if isinstance(value, Dataset)]
    assert len(defined) == len(set(defined)) == 7
    assert set(defined) == {d.uri for d in datasets.PUBLISHED}


@pytest.mark.parametrize(
    "dag_id", ["sales_core_pipeline", "analytics_and_reporting_pipeline", "inventory_mgmt_pipeline"]
)
def test_no_astro_sdk_datasets_leak_in(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    uris = {o.uri for t in dag.tasks for o in [*t.outlets, *t.inlets] if isinstance(o, Dataset)}
    assert not [u for u in uris if u.startswith("astro://")]


def test_failure_in_orders_etl_publishes_nothing(dagbag):
    """The orders event is the last step of orders_etl: every earlier task is upstream of it."""
    dag = dagbag.dags["sales_core_pipeline"]
    announce = dag.get_task("orders_etl.announce_orders")
    upstream = announce.get_flat_relative_ids(upstream=True)
    for task_id in ("orders_etl.extract_orders", "orders_etl.enforce_bad_row_threshold", "orders_etl.merge_orders"):
        assert task_id in upstream
    customer_event = dag.get_task("customer_360.announce_customer_360")
    assert "orders_etl.merge_orders" in customer_event.get_flat_relative_ids(upstream=True)


def test_customers_are_merged_only_after_their_contract_check_quarantine_and_threshold(dagbag):
    """One customer breaking gold.customers' contract is quarantined; it no longer fails the merge."""
    from include.shopstream.platform.outputs import CUSTOMERS_QUARANTINE

    dag = dagbag.dags["sales_core_pipeline"]
    merge = dag.get_task("orders_etl.merge_customers")
    upstream = merge.get_flat_relative_ids(upstream=True)
    for task_id in ("check_customers", "valid_customers", "quarantine_customers", "enforce_customer_threshold"):
        assert f"orders_etl.{task_id}" in upstream
    assert dag.get_task("orders_etl.rejected_customers").downstream_task_ids == {"orders_etl.quarantine_customers"}
    assert sql_steps.lake_path(dag.get_task("orders_etl.quarantine_customers")) == CUSTOMERS_QUARANTINE.uri_template
    # The orders' foreign key is checked against gold.customers as this run left it.
    assert "orders_etl.merge_customers" in dag.get_task("orders_etl.check_orders").get_flat_relative_ids(upstream=True)
    announce = dag.get_task("orders_etl.announce_orders").get_flat_relative_ids(upstream=True)
    assert "orders_etl.enforce_customer_threshold" in announce


@pytest.mark.devtools  # time-machine is a development tool, not in the image
def test_ingest_deadline_checks_the_sales_ingest_at_four(dagbag, scheduled):
    from datetime import UTC, datetime

    import time_machine
    from airflow.timetables.base import DataInterval, TimeRestriction

    from include.shopstream.ops import deadlines

    dag = scheduled["ingest_deadline"]
    assert scheduled[deadlines.INGEST.dag_id].timetable.summary == deadlines.INGEST.schedule
    assert deadlines.INGEST.task_id in dagbag.dags[deadlines.INGEST.dag_id].task_ids
    assert [t.task_id for t in dag.tasks] == ["check_deadline"]
    # Airflow's own timetable code, at 03:59 after yesterday's check: the next run is due at 04:00
    # sharp; after a scheduler outage over 04:00 the missed check runs as soon as it is back.
    yesterday = DataInterval(datetime(2026, 11, 25, 4, tzinfo=UTC), datetime(2026, 11, 25, 4, tzinfo=UTC))
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=False)
    for now in (datetime(2026, 11, 26, 3, 59, tzinfo=UTC), datetime(2026, 11, 26, 9, 30, tzinfo=UTC)):
        with time_machine.travel(now, tick=False):
            info = dag.timetable.next_dagrun_info(last_automated_data_interval=yesterday, restriction=restriction)
        assert info.run_after == datetime(2026, 11, 26, 4, tzinfo=UTC) == info.logical_date


def test_alert_redelivery_runs_every_five_minutes_and_never_feeds_its_own_outbox(dagbag, scheduled):
    from include.shopstream.ops import alerting, outbox

    dag = dagbag.dags["alert_redelivery"]
    assert scheduled[dag.dag_id].timetable.summary == "*/5 * * * *"
    assert [t.task_id for t in dag.tasks] == [outbox.OUTBOX_TASK]
    assert dag.max_active_runs == 1, "runs never pile up behind a slow receiver"
    task = dag.get_task(outbox.OUTBOX_TASK)
    assert task.on_failure_callback == [alerting.alerts_not_getting_through] or (
        task.on_failure_callback is alerting.alerts_not_getting_through
    )
    assert outbox.RUN_BUDGET_SECONDS < task.execution_timeout.total_seconds() < 5 * 60


def test_each_dataset_event_is_recorded_by_one_task_instance_at_a_time(dagbag):
    """Two runs of a producer recording the same event at once (a backfill beside the daily run)
    can deadlock in Airflow 3.3's metadata database, which then fails the task without retries."""
    producers = [t for dag in dagbag.dags.values() for t in dag.tasks if outlets_of(t)]
    assert producers
    assert {t.task_id: t.max_active_tis_per_dag for t in producers} == {t.task_id: 1 for t in producers}


def outlets_of(task) -> set[str]:
    return {o.uri for o in task.outlets if isinstance(o, Dataset)}
