"""The SQL steps on the Postgres and Amazon providers: what the Astro SDK did, with no SDK.

- load: ``COPY ... FROM STDIN`` from the lake's objects into a table dropped and created again;
  a staging table of text columns is streamed as it is (an empty field is NULL, as the SDK's
  ``text_as_is`` reading makes it), anything else goes through pandas as the SDK's load does;
- transform: the ``.sql`` file rendered with tables as identifiers and other values bound,
  into ``CREATE TABLE ... AS``;
- merge: ``INSERT ... ON CONFLICT (key) DO UPDATE``, the SDK's statement on Postgres;
- export: ``COPY ... TO STDOUT`` for CSV, Parquet in bounded batches (``lake.export_query_to_parquet``);
- dataframe: a task that reads its table arguments into pandas.

A step that produces a table returns ``{"table": "schema.name"}`` as its XCom, which the next
step's arguments take as a table; an export returns the file's ``s3://`` URI.
"""

from __future__ import annotations

import csv
import functools
import io
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from include.shopstream.platform.compat import BaseOperator, task
from include.shopstream.platform.sql_steps import Table

# Rows pandas reads to choose the column types of a table a load creates without declared
# columns (what the SDK reads for the same purpose).
AUTODETECT_ROWS = 1000


def as_table(spec: Table) -> Table:
    return spec


# -- What a step's arguments hold, at parse time and once Airflow resolved them -------------


def _table_name(value: Any) -> Any:
    """A table argument as a templated field holds it: ``schema.name`` (a template), or the XComArg."""
    if isinstance(value, Table):
        return value.qualified
    return value


def _columns(value: Any) -> tuple:
    return value.columns if isinstance(value, Table) else ()


def resolved_table(value: Any) -> str | None:
    """``schema.name`` of a resolved table argument (a ``Table``, a step's XCom, a name), else None."""
    if isinstance(value, Table):
        return value.qualified
    if isinstance(value, dict) and set(value) == {"table"}:
        return value["table"]
    return None


def _identifier(sql, qualified: str):
    return sql.Identifier(*qualified.split(".", 1))


def _hook():
    from include.shopstream.platform.warehouse import warehouse_hook

    return warehouse_hook()


def _engine():
    from include.shopstream.platform.warehouse import warehouse_engine

    return warehouse_engine()


# -- Lake objects: a file, or a folder of parts -------------------------------------------


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def lake_objects(path: str) -> list[str]:
    """The objects a path names, in order: ``s3://`` URIs (a file, or every object under a folder's
    prefix) or local files (a file, or the files of a folder)."""
    if not path.startswith("s3://"):
        local = Path(path)
        return sorted(str(p) for p in local.iterdir() if p.is_file()) if local.is_dir() else [str(local)]
    from include.shopstream.platform.lake import lake_hook

    bucket, key = _split(path)
    if not key.endswith("/"):
        return [path]
    keys = sorted(lake_hook().list_keys(bucket_name=bucket, prefix=key) or [])
    found = [f"s3://{bucket}/{k}" for k in keys if not k.endswith("/")]
    if not found:
        raise FileNotFoundError(f"no file under {path}")
    return found


@contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file with the object's bytes (the object itself when it is local)."""
    if not path.startswith("s3://"):
        yield path
        return
    from include.shopstream.platform.lake import lake_hook

    bucket, key = _split(path)
    with tempfile.NamedTemporaryFile(suffix=Path(key).suffix) as local:
        lake_hook().get_key(key, bucket_name=bucket).download_fileobj(local)
        local.flush()
        yield local.name


def upload(local: str, path: str) -> None:
    from include.shopstream.platform.lake import lake_hook

    bucket, key = _split(path)
    lake_hook().load_file(local, key=key, bucket_name=bucket, replace=True)


# -- The steps' work, callable outside a task (the tests call it) --------------------------


def _create(cur, sql, qualified: str, columns) -> None:
    """Drop ``qualified`` and create it with ``columns`` (SQLAlchemy ``Column`` objects)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    schema, name = qualified.split(".", 1)
    ddl = CreateTable(sa.Table(name, sa.MetaData(schema=schema), *(c._copy() for c in columns)))
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_identifier(sql, qualified)))
    cur.execute(str(ddl.compile(dialect=postgresql.dialect())))


def _csv_header(local: str) -> list[str]:
    with open(local, newline="", encoding="utf-8") as file:
        return next(csv.reader(file), [])


def _read_frame(local: str, filetype: str, nrows: int | None = None):
    """A file as the SDK's pandas load reads it (its default options)."""
    import pandas as pd

    if filetype == "ndjson":
        import json

        with open(local, encoding="utf-8") as file:
            lines = [json.loads(line) for line in file if line.strip()]
        return pd.json_normalize(lines[:nrows] if nrows else lines)
    return pd.read_csv(local, nrows=nrows)


def load_into(path: str, output: str, columns=(), *, filetype: str = "csv", text_as_is: bool = False) -> int:
    """Replace table ``output`` (``schema.name``) with the rows of the file or folder at ``path``; returns the rows.

    ``columns``: the table's columns (SQLAlchemy ``Column``); without them pandas chooses the types
    from the first file, as the SDK does. ``text_as_is`` (text columns, CSV): each file is
    streamed into the table as it is, an empty field (quoted or not) NULL.
    """
    from include.shopstream.platform.pg import copy_in, sql_module

    files = lake_objects(path)
    rows = 0
    with closing(_hook().get_conn()) as conn, conn, conn.cursor() as cur:
        sql = sql_module(conn)
        target = _identifier(sql, output)
        if columns:
            _create(cur, sql, output, columns)
        for number, uri in enumerate(files):
            with local_copy(uri) as local:
                if text_as_is and filetype == "csv":
                    header = _csv_header(local)
                    names = sql.SQL(", ").join(map(sql.Identifier, header))
                    statement = sql.SQL(
                        "COPY {t} ({c}) FROM STDIN WITH (FORMAT csv, HEADER true, FORCE_NULL ({c}))"
                    ).format(t=target, c=names)
                    with open(local, "rb") as file:
                        copied = copy_in(cur, statement.as_string(conn), file)
                else:
                    frame = _read_frame(local, filetype)
                    if number == 0 and not columns:
                        _create_like(conn, output, _read_frame(local, filetype, AUTODETECT_ROWS))
                    names = sql.SQL(", ").join(map(sql.Identifier, frame.columns))
                    data = io.BytesIO(frame.to_csv(index=False).encode())
                    statement = sql.SQL("COPY {t} ({c}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
                        t=target, c=names
                    )
                    copied = copy_in(cur, statement.as_string(conn), data) if len(frame) else 0
            if copied == 0:
                raise ValueError(f"Can't load empty dataframe: {uri} has no rows")
            rows += copied
    return rows


def _create_like(conn, output: str, sample) -> None:
    """Drop ``output`` and create it with the column types pandas gives ``sample`` (the SDK's inference)."""
    from include.shopstream.platform.pg import sql_module

    sql = sql_module(conn)
    schema, name = output.split(".", 1)
    engine = _engine()
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_identifier(sql, output)))
        conn.commit()  # the engine's own connection creates the table: release the lock first
        sample.head(0).to_sql(name, engine, schema=schema, if_exists="replace", index=False)
    finally:
        engine.dispose()


def render_sql(template: str, parameters: dict) -> tuple[str, dict]:
    """The SQL of a ``.sql`` template: each table parameter a quoted identifier, each other one a
    bound placeholder (``%(name)s``); returns the statement and the values to bind."""
    import jinja2

    marks = {key: f"\x00{key}\x00" for key in parameters}
    rendered = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(**marks)
    # A literal % in the SQL is the driver's placeholder character: written twice, it stays one.
    rendered = rendered.replace("%", "%%")
    values = {}
    for key, value in parameters.items():
        qualified = resolved_table(value)
        if qualified is None:
            values[key] = value
        rendered = rendered.replace(marks[key], _quoted(qualified) if qualified is not None else f"%({key})s")
    return rendered, values


def _quoted(qualified: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in qualified.split(".", 1))


def transform_into(sql_file: str, output: str, parameters: dict) -> int:
    """Replace table ``output`` with the rows of ``sql/<sql_file>`` (tables as identifiers, values bound)."""
    from include.shopstream.platform.names import sql as read_sql
    from include.shopstream.platform.pg import sql_module

    with closing(_hook().get_conn()) as conn, conn, conn.cursor() as cur:
        sql = sql_module(conn)
        statement, values = render_sql(read_sql(sql_file), parameters)
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_identifier(sql, output)))
        create = sql.SQL("CREATE TABLE IF NOT EXISTS {} AS ").format(_identifier(sql, output)).as_string(conn)
        cur.execute(create + statement, values)
        return max(cur.rowcount, 0)


def merge_into(target: str, source: str, columns, key) -> int:
    """``INSERT INTO target (columns) SELECT columns FROM source ON CONFLICT (key) DO UPDATE SET ...``:
    the SDK's merge on Postgres, statement for statement."""
    from include.shopstream.platform.pg import sql_module
    from include.shopstream.platform.warehouse import data_errors_fail

    with data_errors_fail(source=source), closing(_hook().get_conn()) as conn, conn, conn.cursor() as cur:
        sql = sql_module(conn)
        names = [sql.Identifier(c) for c in columns]
        statement = sql.SQL(
            "INSERT INTO {target} ({columns}) SELECT {columns} FROM {source}"
            " ON CONFLICT ({key}) DO UPDATE SET {updates}"
        ).format(
            target=_identifier(sql, target),
            source=_identifier(sql, source),
            columns=sql.SQL(",").join(names),
            key=sql.SQL(",").join(sql.Identifier(k) for k in key),
            updates=sql.SQL(",").join(sql.SQL("{c}=EXCLUDED.{c}").format(c=n) for n in names),
        )
        cur.execute(statement)
        return max(cur.rowcount, 0)


def table_frame(qualified: str):
    """The rows of a table as a pandas DataFrame (what the SDK hands a dataframe step)."""
    import pandas as pd
    from sqlalchemy import text

    engine = _engine()
    try:
        with engine.connect() as conn:
            return pd.read_sql(text(f"SELECT * FROM {_quoted(qualified)}"), conn)
    finally:
        engine.dispose()


def export_to(source: Any, path: str) -> int:
    """Write a table (``schema.name``) or a DataFrame to ``path`` (``.csv`` or ``.parquet``), replacing it."""
    from include.shopstream.platform.lake import export_query_to_parquet
    from include.shopstream.platform.pg import copy_out

    suffix = Path(_split(path)[1] if path.startswith("s3://") else path).suffix
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"cannot tell the format of {path}: expected .csv or .parquet")
    qualified = resolved_table(source) if not isinstance(source, str) else source
    with tempfile.NamedTemporaryFile(suffix=suffix) as local:
        if qualified is None:  # a DataFrame
            if suffix == ".csv":
                source.to_csv(local.name, index=False)
            else:
                source.to_parquet(local.name)
            rows = len(source)
        elif suffix == ".csv":
            with closing(_hook().get_conn()) as conn, conn, conn.cursor() as cur:
                statement = f"COPY (SELECT * FROM {_quoted(qualified)}) TO STDOUT WITH (FORMAT csv, HEADER true)"
                rows = copy_out(cur, statement, local)
            local.flush()
        else:
            key = _local_or_key(path)  # refused before the warehouse is asked for anything
            engine = _engine()
            try:
                rows = export_query_to_parquet(engine, f"SELECT * FROM {_quoted(qualified)}", {}, key)
            finally:
                engine.dispose()
            if rows:
                return rows
            # No batch, no schema: an empty table is written as the SDK writes it, through pandas.
            table_frame(qualified).to_parquet(local.name)
        if path.startswith("s3://"):
            upload(local.name, path)
        else:
            Path(path).write_bytes(Path(local.name).read_bytes())
    return rows


def _local_or_key(path: str) -> str:
    if not path.startswith("s3://"):
        raise ValueError(f"a table's Parquet export goes to the lake, not to {path}")
    bucket, key = _split(path)
    from include.shopstream.platform.names import BUCKET, lake_uri

    if bucket != BUCKET:
        raise ValueError(f"a table's Parquet export goes to {lake_uri('')}, not to {path}")
    return key


# -- The operators -------------------------------------------------------------------------


class _TableStep(BaseOperator):
    """A step whose XCom is a table: ``{"table": "schema.name"}``."""

    ui_color = "#cde6f7"


class LoadFileOperator(_TableStep):
    template_fields = ("path", "output_table")

    def __init__(self, *, path: str, output_table, filetype: str, text_as_is: bool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.output_table = _table_name(output_table)
        self.columns = _columns(output_table)
        self.filetype = filetype
        self.text_as_is = text_as_is

    def execute(self, context) -> dict:
        rows = load_into(self.path, self.output_table, self.columns, filetype=self.filetype, text_as_is=self.text_as_is)
        self.log.info("loaded %d rows from %s into %s", rows, self.path, self.output_table)
        return {"table": self.output_table}


class TransformFileOperator(_TableStep):
    template_fields = ("output_table", "parameters")

    def __init__(self, *, sql_file: str, output_table, parameters: dict, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sql_file = sql_file
        self.output_table = _table_name(output_table)
        self.parameters = parameters

    def execute(self, context) -> dict:
        rows = transform_into(self.sql_file, self.output_table, self.parameters)
        self.log.info("wrote %d rows of %s into %s", rows, self.sql_file, self.output_table)
        return {"table": self.output_table}


class MergeOperator(_TableStep):
    template_fields = ("target_table", "source_table")

    def __init__(self, *, target_table, source_table, columns: list[str], key: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_table = _table_name(target_table)
        self.source_table = _table_name(source_table)
        self.columns = columns
        self.key = key

    def execute(self, context) -> dict:
        source = resolved_table(self.source_table) or self.source_table
        rows = merge_into(self.target_table, source, self.columns, self.key)
        self.log.info("merged %d rows of %s into %s", rows, source, self.target_table)
        return {"table": self.target_table}


class ExportFileOperator(BaseOperator):
    template_fields = ("source", "path")

    def __init__(self, *, source, path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = _table_name(source)
        self.path = path

    def execute(self, context) -> str:
        rows = export_to(self.source, self.path)
        self.log.info("exported %d rows to %s", rows, self.path)
        return self.path


# -- The API of sql_steps ------------------------------------------------------------------


def load_file(task_id, path, output_table, *, filetype, text_as_is, **kwargs):
    operator = LoadFileOperator(
        task_id=task_id, path=path, output_table=output_table, filetype=filetype, text_as_is=text_as_is, **kwargs
    )
    return operator.output


def transform_file(task_id, sql_file, output_table, **parameters):
    kwargs = {key: parameters.pop(key) for key in ("trigger_rule",) if key in parameters}
    operator = TransformFileOperator(
        task_id=task_id, sql_file=sql_file, output_table=output_table, parameters=parameters, **kwargs
    )
    return operator.output


def merge(task_id, target_table, source_table, columns, key, **kwargs):
    operator = MergeOperator(
        task_id=task_id, target_table=target_table, source_table=source_table, columns=columns, key=key, **kwargs
    )
    return operator.output


def export_file(task_id, source, path, **kwargs):
    return ExportFileOperator(task_id=task_id, source=source, path=path, **kwargs).output


def dataframe(columns_names_capitalization: str = "original", **kwargs):
    """A ``@task`` that reads its table arguments into DataFrames (column names kept as they are)."""
    if columns_names_capitalization != "original":
        raise ValueError(
            "the providers' back-end keeps column names as they are: columns_names_capitalization='original'"
        )

    def decorate(function):
        @functools.wraps(function)
        def with_frames(*args, **named):
            args = [_frame_of(a) for a in args]
            named = {k: _frame_of(v) for k, v in named.items()}
            return function(*args, **named)

        return task(**kwargs)(with_frames)

    return decorate


def _frame_of(value: Any) -> Any:
    qualified = resolved_table(value)
    return table_frame(qualified) if qualified is not None else value


def lake_path(operator) -> str | None:
    return operator.path if isinstance(operator, LoadFileOperator | ExportFileOperator) else None


def source_table_name(operator) -> str | None:
    source = getattr(operator, "source_table", None)
    if isinstance(source, str) and "." in source and "{{" not in source:
        return source
    return resolved_table(source)
