"""Task types the cluster policy must keep working: a mapped task and deferrable tasks.

Each task meets a data error (psycopg2's ``IntegrityError``) where its type runs user code: a
mapped task in its unmapped copy, a deferrable one after it resumed from its trigger. Each has
retries, so only the policy can make the failure final on the first try. Not in dags/: the
tests in tests/test_policy_task_types.py parse and run it. (Airflow's DagBag reads a file only
when it names both "airflow" and "dag", as this docstring does.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from include.shopstream.platform.compat import DAG, BaseOperator, TimeDeltaTrigger, task

DAG_ID = "shopstream_policy_task_types"


def unique_violation(where: str):
    """A unique-key violation as psycopg2 raises it (the class Postgres' SQLSTATE 23505 maps to)."""
    from psycopg2.errors import UniqueViolation

    return UniqueViolation(f'duplicate key value violates unique constraint "orders_pkey" ({where})')


class DefersThenWrites(BaseOperator):
    """Defers on a short timer; the write after resuming breaks a key."""

    def __init__(self, *, resume_method: str = "execute_complete", **kwargs) -> None:
        super().__init__(**kwargs)
        self.resume_method = resume_method

    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=1)), method_name=self.resume_method)

    def execute_complete(self, context, event=None):
        raise unique_violation(f"{self.task_id} after its trigger fired")

    def write_after_wait(self, context, event=None):
        raise unique_violation(f"{self.task_id} after its trigger fired")


with DAG(
    DAG_ID,
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
) as dag:

    @task
    def write_part(part: int) -> None:
        raise unique_violation(f"part {part}")

    write_part.expand(part=[1, 2])
    DefersThenWrites(task_id="deferred_write")
    DefersThenWrites.partial(task_id="mapped_deferred_write").expand(resume_method=["write_after_wait"])
