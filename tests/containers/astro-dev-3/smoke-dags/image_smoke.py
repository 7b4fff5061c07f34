"""Two stand-in DAGs for ``verify_image.py smoke`` (the Airflow 3 image's compose stack).

They check the stack's parts, not the platform: ``image_smoke`` defers a task to the triggerer,
reads a connection that airflow_settings.yaml set (the warehouse, through the postgres provider
and the execution API), and emits an Asset event; ``image_smoke_consumer`` runs on that event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.providers.postgres.hooks.postgres import PostgresHook
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import DAG, Asset, BaseOperator, task

SMOKE_ASSET = Asset("shopstream://image-smoke/ready")
RESUMED = "resumed by the triggerer"


class DeferOnce(BaseOperator):
    """Defers for a few seconds, always: the task finishes only if the triggerer fires."""

    def execute(self, context):
        self.defer(trigger=DateTimeTrigger(moment=datetime.now(UTC) + timedelta(seconds=3)), method_name="resume")

    def resume(self, context, event=None):
        return RESUMED


with DAG("image_smoke", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, tags=["smoke"]):

    @task
    def warehouse() -> str:
        return PostgresHook(postgres_conn_id="shopstream_warehouse").get_first("SELECT current_database()")[0]

    @task(outlets=[SMOKE_ASSET])
    def publish(resumed: str, database: str) -> str:
        if resumed != RESUMED:
            raise ValueError(f"the deferred task returned {resumed!r}: the triggerer did not resume it")
        return f"{resumed}; warehouse: {database}"

    publish(DeferOnce(task_id="defer").output, warehouse())


with DAG(
    "image_smoke_consumer", schedule=[SMOKE_ASSET], start_date=datetime(2026, 1, 1), catchup=False, tags=["smoke"]
):

    @task
    def consume(**context) -> int:
        events = [e for asset_events in context["triggering_asset_events"].values() for e in asset_events]
        if not events:
            raise ValueError("no triggering Asset event")
        return len(events)

    consume()
