"""Small tasks that several pipelines share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from include.shopstream.platform.compat import task

if TYPE_CHECKING:
    from include.shopstream.platform.compat import XComArg
    from include.shopstream.platform.outputs import Output


@task
def prepare_warehouse(dag=None, run_id=None) -> None:
    """Create the warehouse's schemas and keyed gold tables on first use; claim the run's staging tables."""
    from include.shopstream.platform.warehouse import claim_staging, ensure_warehouse

    ensure_warehouse()
    claim_staging(dag.dag_id, run_id)


@task
def note_gold_writes(tables: tuple[str, ...]) -> int:
    """How many writes ``tables`` have had: taken after the run's merges, before a build that reads them."""
    from contextlib import closing

    from include.shopstream.platform.warehouse import gold_writes, warehouse_hook

    with closing(warehouse_hook().get_conn()) as conn, conn.cursor() as cur:
        return gold_writes(cur, tables)


@task
def swap_into_gold(staged: str, target: str, columns: tuple[str, ...], built_after: int | None = None) -> int | None:
    """Replace ``target``'s rows with ``staged``'s in one transaction; readers never see it empty.

    With ``built_after`` (``note_gold_writes`` before the build), a build older than the one in
    place is not swapped in.
    """
    from include.shopstream.platform.warehouse import replace_rows

    return replace_rows(target, staged, list(columns), built_after=built_after)


@task(trigger_rule="none_failed")
def drop_staging(dag=None, run_id=None) -> list[str]:
    """The run's last task: drop its staging tables, and those of failed runs older than a few days.

    After a failure it does not run, so the failed task can be cleared and re-run on the tables
    it needs; a later run drops them (``warehouse.STAGING_KEPT_DAYS``).
    """
    from include.shopstream.platform.warehouse import drop_staging as drop

    dropped = drop(dag.dag_id, run_id)
    print(f"dropped {len(dropped)} staging tables: {', '.join(dropped) or 'none'}")
    return dropped


@task
def report_date(**context) -> str:
    """The business date a consumer run reports on (from its triggering Dataset events)."""
    from include.shopstream.platform.events import business_date_reported

    return business_date_reported(context).isoformat()


def rendered(value: XComArg) -> str:
    """A template that renders to ``value``, for the few templated fields that take no XComArg
    (the SQL steps' lake paths). The task is named by the argument, never spelled out; the
    caller wires ``value``'s task upstream.
    """
    return "{{ " + f"ti.xcom_pull(task_ids={value.operator.task_id!r}, key={value.key!r})" + " }}"


def announce(output: Output, day=None):
    """A task that records ``output``'s Dataset event, carrying the business date (``ds``) it is
    about: ``day`` when given (a consumer's report date), else the run's business date.

    It is the producer's last step: when anything before it fails, no event is recorded and
    nothing downstream runs on stale data.

    One at a time across the DAG's runs (``max_active_tis_per_dag=1``): on Airflow 3.3 two runs
    recording the same Asset's event at the same moment (a backfill beside the daily run) can
    deadlock in the metadata database while the API server queues the consumers, and the API
    server then fails the task outright, without its retries.
    """
    dataset = output.dataset

    @task(task_id=output.announce_task_id, outlets=[dataset], max_active_tis_per_dag=1)
    def _announce(day: str | None, outlet_events=None, **context) -> None:
        from include.shopstream.platform.business_dates import business_date

        outlet_events[dataset].extra = {"ds": day or business_date(context).isoformat()}

    return _announce(day)
