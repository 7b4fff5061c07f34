"""Small tasks that several pipelines share."""

from __future__ import annotations

from airflow.datasets import Dataset
from airflow.decorators import task


@task
def prepare_warehouse() -> None:
    """Create the warehouse's schemas and keyed gold tables on first use."""
    from include.shopstream.warehouse import ensure_warehouse

    ensure_warehouse()


@task
def swap_into_gold(staged: str, target: str, columns: tuple[str, ...]) -> int:
    """Replace ``target``'s rows with ``staged``'s in one transaction; readers never see it empty."""
    from include.shopstream.warehouse import replace_rows

    return replace_rows(target, staged, list(columns))


@task
def report_date(**context) -> str:
    """The business date a consumer run reports on (from its triggering Dataset events)."""
    from include.shopstream.warehouse import report_date as resolve

    return resolve(context)


def announce(dataset: Dataset, task_id: str, day=None):
    """A task that records ``dataset``'s event, carrying the business date (``ds``) it is about:
    ``day`` when given (a consumer's report date), else the day the run's data interval starts.

    It is the producer's last step: when anything before it fails, no event is recorded and
    nothing downstream runs on stale data.
    """

    @task(task_id=task_id, outlets=[dataset])
    def _announce(day: str | None, data_interval_start=None, outlet_events=None) -> None:
        outlet_events[dataset].extra = {"ds": day or f"{data_interval_start:%Y-%m-%d}"}

    return _announce(day)
