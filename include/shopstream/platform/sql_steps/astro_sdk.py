"""The SQL steps on the Astro SDK: the only module of the project that imports ``astro``.

Each step is the SDK call the pipelines made before there was a choice of back-end, with the
same arguments, so task ids, tables, XComs and behaviour are the SDK's own.
"""

from __future__ import annotations

from astro import sql as aql
from astro.constants import FileType
from astro.dataframes.load_options import PandasLoadOptions
from astro.files import File
from astro.table import Metadata
from astro.table import Table as SdkTable
from sqlalchemy import Column

from include.shopstream.platform.names import LAKE_CONN_ID, WAREHOUSE_CONN_ID
from include.shopstream.platform.sql_steps import Table

FILE_TYPES = {"csv": FileType.CSV, "ndjson": FileType.NDJSON}

# How the CSV extracts are read: every value as the text it is. pandas' defaults would turn
# "NA", "null", "None" or "N/A" (a name, a category) into a missing value, and "007" into 7.
# An empty field is missing: CSV cannot tell an empty text from NULL.
TEXT_AS_IS = PandasLoadOptions(dtype=str, kwargs={"keep_default_na": False, "na_values": [""]})


def as_table(spec) -> SdkTable:
    """The SDK ``Table`` of a ``sql_steps.Table``."""
    return SdkTable(
        name=spec.name, conn_id=spec.conn_id, metadata=Metadata(schema=spec.schema), columns=list(spec.columns)
    )


def load_file(task_id, path, output_table, *, filetype, text_as_is, **kwargs):
    options = {"load_options": TEXT_AS_IS} if text_as_is else {}
    return aql.load_file(
        task_id=task_id,
        input_file=File(path=path, conn_id=LAKE_CONN_ID, filetype=FILE_TYPES[filetype]),
        output_table=output_table,
        if_exists="replace",
        use_native_support=False,
        **options,
        **kwargs,
    )


def transform_file(task_id, sql_file, output_table, **parameters):
    kwargs = {key: parameters.pop(key) for key in ("trigger_rule",) if key in parameters}
    return aql.transform_file(
        task_id=task_id,
        file_path=sql_file,  # found through the DAG's template_searchpath (SQL_DIR)
        parameters=parameters,
        op_kwargs={"output_table": output_table},
        **kwargs,
    )


def merge(task_id, target_table, source_table, columns, key, **kwargs):
    return aql.merge(
        task_id=task_id,
        target_table=target_table,
        source_table=source_table,
        columns=columns,
        target_conflict_columns=key,
        if_conflicts="update",
        **kwargs,
    )


def export_file(task_id, source, path, **kwargs):
    return aql.export_to_file(
        task_id=task_id,
        input_data=source,
        output_file=File(path=path, conn_id=LAKE_CONN_ID),
        if_exists="replace",
        **kwargs,
    )


def dataframe(**kwargs):
    return aql.dataframe(**kwargs)


def lake_path(operator) -> str | None:
    file = getattr(operator, "input_file", None) or getattr(operator, "output_file", None)
    return getattr(file, "path", None)


def source_table_name(operator) -> str | None:
    source = getattr(operator, "source_table", None)
    metadata = getattr(source, "metadata", None)
    if metadata is None or not metadata.schema:
        return None
    return f"{metadata.schema}.{source.name}"


# -- The steps' work outside a task (the tests call it): the SDK's own code paths ----------


def _named(qualified: str, columns=()) -> SdkTable:
    schema, name = qualified.split(".", 1)
    return as_table(Table(name=name, schema=schema, columns=tuple(columns)))


def load_into(path: str, output: str, columns=(), *, filetype: str = "csv", text_as_is: bool = False) -> int:
    from astro.databases import create_database
    from astro.sql.operators.load_file import LoadFileOperator

    options = {"load_options": TEXT_AS_IS} if text_as_is else {}
    operator = LoadFileOperator(
        task_id="load",
        input_file=File(
            path=path, conn_id=LAKE_CONN_ID if path.startswith("s3://") else None, filetype=FILE_TYPES[filetype]
        ),
        output_table=_named(output, [Column(c.name, c.type) for c in columns]),
        if_exists="replace",
        use_native_support=False,
        **options,
    )
    database = create_database(operator.output_table.conn_id)
    try:
        operator.load_data_to_table(operator.input_file, context={})
        return database.row_count(operator.output_table)
    finally:
        database.sqlalchemy_engine.dispose()


def merge_into(target: str, source: str, columns, key) -> None:
    from astro.databases.postgres import PostgresDatabase

    database = PostgresDatabase(conn_id=WAREHOUSE_CONN_ID)
    try:
        database.merge_table(
            source_table=_named(source),
            target_table=_named(target),
            source_to_target_columns_map={c: c for c in columns},
            target_conflict_columns=list(key),
            if_conflicts="update",
        )
    finally:
        database.sqlalchemy_engine.dispose()


def table_frame(qualified: str):
    from astro.databases.postgres import PostgresDatabase

    database = PostgresDatabase(conn_id=WAREHOUSE_CONN_ID)
    try:
        return database.export_table_to_pandas_dataframe(_named(qualified))
    finally:
        database.sqlalchemy_engine.dispose()
