"""Names of the platform's connections, schemas, tables and lake paths, and the few helpers
that every pipeline shares. One source of truth: nothing else spells these out.
"""

from __future__ import annotations

from pathlib import Path

SOURCE_CONN_ID = "shopstream_source"
WAREHOUSE_CONN_ID = "shopstream_warehouse"
LAKE_CONN_ID = "aws_default"
INVENTORY_API_CONN_ID = "inventory_api"

BUCKET = "shopstream"
STAGING = "staging"
GOLD = "gold"

SQL_DIR = Path(__file__).with_name("sql")
TEMPLATE_SEARCHPATH = [str(SQL_DIR)]  # every DAG sets it, so that SDK transforms find their .sql files

# The business date of a run, which names its lake partitions: the day its data interval starts
# (the 02:00 run on the 24th covers the 23rd; so does a manual run with logical date the 24th).
PARTITION = "{{ data_interval_start | ds }}"

BAD_ROW_THRESHOLD_VARIABLE = "shopstream_bad_row_threshold"
DEFAULT_BAD_ROW_THRESHOLD = 0.05


def lake_uri(*parts: str) -> str:
    """``s3://shopstream/<parts...>``."""
    return "s3://" + "/".join([BUCKET, *(p.strip("/") for p in parts)])


def sql(name: str) -> str:
    """The text of ``include/shopstream/sql/<name>``."""
    return (SQL_DIR / name).read_text()


def table(name: str, schema: str = GOLD, columns=None):
    """An Astro SDK ``Table`` in the warehouse (never in ``tmp_astro``)."""
    from astro.table import Metadata, Table

    return Table(name=name, conn_id=WAREHOUSE_CONN_ID, metadata=Metadata(schema=schema), columns=columns or [])


def warehouse_hook():
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID)


def lake_hook():
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=LAKE_CONN_ID)


def ensure_warehouse() -> None:
    """Create the schemas and gold tables (with their keys) unless they exist."""
    warehouse_hook().run(sql("warehouse_schema.sql"))


def replace_rows(target: str, source: str, columns: list[str]) -> int:
    """Make ``target``'s rows those of ``source`` in one transaction; readers never see it empty."""
    from psycopg2 import sql as pgsql

    column_list = pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
    target_id = pgsql.Identifier(*target.split("."))
    source_id = pgsql.Identifier(*source.split("."))
    conn = warehouse_hook().get_conn()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(pgsql.SQL("DELETE FROM {}").format(target_id))
            cur.execute(
                pgsql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s}").format(t=target_id, c=column_list, s=source_id)
            )
            return cur.rowcount
    finally:
        conn.close()


def replace_prefix(prefix: str) -> None:
    """Delete every object under ``s3://shopstream/<prefix>`` (overwrite-by-partition)."""
    hook = lake_hook()
    keys = hook.list_keys(bucket_name=BUCKET, prefix=prefix.rstrip("/") + "/")
    if keys:
        hook.delete_objects(bucket=BUCKET, keys=keys)


def triggering_events(context) -> dict[str, list[tuple]]:
    """Dataset URI -> [(timestamp, extra), ...] of the events that triggered this DAG run.

    Read from the metadata database in a session of our own: the lazy
    ``triggering_dataset_events`` context entry cannot be read under ``airflow dags test``.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=context["dag"].dag_id, run_id=context["run_id"]).one()
        events: dict[str, list[tuple]] = {}
        for event in run.consumed_dataset_events:
            events.setdefault(event.dataset.uri, []).append((event.timestamp, dict(event.extra or {})))
    return events


def report_date(context) -> str:
    """The business date a Dataset-triggered run is about.

    Producers put ``{"ds": ...}`` on their Dataset events; a consumer reports on the newest
    date among its triggering events, or on its own data interval's start when run by hand.
    """
    dates = [extra["ds"] for events in triggering_events(context).values() for _, extra in events if extra.get("ds")]
    return max(dates) if dates else f"{context['data_interval_start']:%Y-%m-%d}"


def transform_sql(task_id: str, sql_file: str, output, **parameters):
    """``aql.transform_file`` on ``sql/<sql_file>``, writing ``output`` (a Table) in place.

    Tables among ``parameters`` become identifiers in the SQL; other values are bound.
    """
    from astro import sql as aql

    kwargs = {key: parameters.pop(key) for key in ("trigger_rule",) if key in parameters}
    return aql.transform_file(
        task_id=task_id,
        file_path=sql_file,  # found through the DAG's template_searchpath (SQL_DIR)
        parameters=parameters,
        op_kwargs={"output_table": output},
        **kwargs,
    )
