"""The output registry (include/shopstream/platform/outputs.py) drives the DAGs: each published Dataset is
announced where its entry says, written where its entry says, and checked by data_quality_checks."""

from __future__ import annotations

from include.shopstream.platform import outputs, sql_steps
from include.shopstream.platform.compat import Dataset

PRODUCERS = ("sales_core_pipeline", "inventory_mgmt_pipeline", "analytics_and_reporting_pipeline")


def announced(dag) -> dict[str, set[str]]:
    """task_id -> the Dataset URIs it publishes."""
    return {t.task_id: {o.uri for o in t.outlets if isinstance(o, Dataset)} for t in dag.tasks if t.outlets}


def unchecked(published, checks_dag) -> list[str]:
    """The URIs of published outputs that declare no checks or that ``checks_dag`` does not check:
    no check task of theirs that the run's chooser can pick."""
    from include.shopstream.pipelines.quality import CHOOSER

    chooser = checks_dag.get_task(f"data_quality_checks.{CHOOSER}")
    picks = chooser.op_args[0]  # Dataset URI -> the task ids of its checks
    missing = []
    for output in published:
        declares = bool(output.columns or output.checks)
        task_ids = picks.get(output.uri, [])
        if not declares or not task_ids or not set(task_ids) <= chooser.downstream_task_ids:
            missing.append(output.uri)
    return missing


def test_each_dag_announces_exactly_the_outputs_registered_for_it(dagbag):
    for dag_id in PRODUCERS:
        expected = {o.announced_by: {o.uri} for o in outputs.published_by(dag_id)}
        assert announced(dagbag.dags[dag_id]) == expected, dag_id
    registered = {o.dag_id for o in outputs.PUBLISHED}
    assert registered == set(PRODUCERS)


def test_every_published_dataset_has_checks(dagbag):
    published = {uri for dag in dagbag.dags.values() for uris in announced(dag).values() for uri in uris}
    assert published == {o.uri for o in outputs.PUBLISHED}, "every announced Dataset has a registry entry"
    assert unchecked(outputs.PUBLISHED, dagbag.dags["observability_pipeline"]) == []


def test_a_published_output_without_checks_is_caught(dagbag):
    ninth = outputs.Output("returns", "s3://shopstream/gold/returns", "sales_core_pipeline", "returns.announce", ())
    checks = dagbag.dags["observability_pipeline"]
    assert unchecked((*outputs.PUBLISHED, ninth), checks) == ["s3://shopstream/gold/returns"]


def test_every_lake_path_of_a_dag_is_declared_in_the_registry(dagbag):
    declared = {value.prefix for value in vars(outputs).values() if isinstance(value, outputs.LakeFile)}
    paths = [
        (dag.dag_id, task.task_id, path)
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if (path := sql_steps.lake_path(task)) and path.startswith("s3://")
    ]
    assert len(paths) >= 9  # the load and export steps (publish_orders streams through lake.py)
    undeclared = [
        p for p in paths if not any(p[2].startswith(f"s3://shopstream/{prefix}/") for prefix in sorted(declared))
    ]
    assert undeclared == []


def test_a_business_date_names_the_same_key_in_python_and_in_a_template():
    from datetime import UTC, datetime

    from jinja2 import Template

    run = datetime(2026, 11, 23, 2, tzinfo=UTC)
    quarantines = (outputs.ORDERS_QUARANTINE, outputs.CUSTOMERS_QUARANTINE)
    for lake_file in (outputs.RAW_ORDERS, *quarantines, outputs.RAW_STOCK, outputs.RAW_PRODUCTS):
        rendered = Template(lake_file.uri_template).render(data_interval_start=run, logical_date=run)
        assert rendered == lake_file.uri_for(run)
    assert outputs.DAILY_REPORT_CSV.key_for("2026-11-23") == "reports/daily/ds=2026-11-23/daily_report.csv"
    assert outputs.REVENUE_CHART.uri_for(run) == "s3://shopstream/reports/daily/ds=2026-11-23/revenue_30d.png"
    assert outputs.FEATURES_FILE.key_for(run.date()) == "features/customer/ds=2026-11-23/features.parquet"
    results = outputs.QUALITY_RESULTS.key_for(run, "20261123T020000.json")
    assert results == "quality/results/ds=2026-11-23/20261123T020000.json"


def test_a_run_checks_only_the_outputs_whose_events_started_it(dagbag):
    """A sibling pipeline still writing is never judged; a run by hand checks everything."""
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from include.shopstream.pipelines.quality import CHOOSER, outputs_to_check
    from include.shopstream.platform.compat import EVENT_TRIGGERED, TRIGGERING_EVENTS
    from include.shopstream.platform.outputs import ORDERS

    chooser = dagbag.dags["observability_pipeline"].get_task(f"data_quality_checks.{CHOOSER}")
    checks = chooser.op_args[0]
    event = SimpleNamespace(timestamp=datetime(2026, 11, 25, 2, 30, tzinfo=UTC), extra={"ds": "2026-11-24"})

    def chosen(run_type, events):
        context = {"dag_run": SimpleNamespace(run_type=run_type), TRIGGERING_EVENTS: events}
        return set(outputs_to_check.function(checks, **context))

    orders_checks = {f"data_quality_checks.orders_{kind}" for kind in ("columns", "table", "freshness")}
    assert chosen(EVENT_TRIGGERED, {ORDERS.uri: [event]}) == orders_checks
    everything = {task_id for task_ids in checks.values() for task_id in task_ids}
    assert len(everything) == 19
    assert chosen("manual", {}) == everything
    assert set(chooser.downstream_task_ids) == everything
