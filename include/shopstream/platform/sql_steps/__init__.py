"""The pipelines' SQL steps: load a lake file into a table, transform with a ``.sql`` file, merge
into gold, export a table to the lake, and run a pandas function on a table.

One small API with two back-ends of the same task ids, tables and SQL files:

- ``astro_sdk``: the Astro SDK (``aql.load_file``, ``aql.transform_file``, ``aql.merge``,
  ``aql.export_to_file``, ``aql.dataframe``), on Airflow 2 where it installs. The only module
  that imports ``astro``.
- ``providers``: the Postgres and Amazon providers (``COPY ... FROM STDIN`` / ``TO STDOUT``,
  ``INSERT ... ON CONFLICT``), on any Airflow version.

The SDK is chosen when it imports on Airflow 2, the providers otherwise; the environment
variable ``SHOPSTREAM_SQL_BACKEND`` (``astro`` or ``providers``) decides instead when set, so the
providers' back-end can run on Airflow 2 too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

from include.shopstream.platform.compat import AIRFLOW_3
from include.shopstream.platform.names import GOLD, STAGING, WAREHOUSE_CONN_ID

BACKEND_VARIABLE = "SHOPSTREAM_SQL_BACKEND"
BACKENDS = ("astro", "providers")


class BackendError(ImportError):
    """The back-end asked for cannot be used here."""


def choose_backend(
    requested: str | None = None, *, airflow_3: bool = AIRFLOW_3, sdk_installed: bool | None = None
) -> str:
    """The back-end to use: ``requested`` (the environment variable) when set, else the SDK where it works."""
    if sdk_installed is None:
        sdk_installed = importlib.util.find_spec("astro") is not None
    requested = (requested or "").strip().lower()
    if requested:
        if requested not in BACKENDS:
            raise BackendError(f"{BACKEND_VARIABLE}={requested!r}: expected one of {', '.join(BACKENDS)}")
        if requested == "astro" and (airflow_3 or not sdk_installed):
            why = "the Astro SDK does not run on Airflow 3" if airflow_3 else "the Astro SDK is not installed"
            raise BackendError(f"{BACKEND_VARIABLE}=astro: {why}; use providers")
        return requested
    return "astro" if sdk_installed and not airflow_3 else "providers"


@dataclass
class Table:
    """A warehouse table: ``schema.name`` on the warehouse connection, with optional column types
    (SQLAlchemy ``Column`` objects) for a table a load creates. ``name`` may be a template (a run's
    staging table); Airflow renders it in any templated field that holds the table.
    """

    name: str
    schema: str = GOLD
    columns: tuple = field(default=(), compare=False)
    conn_id: str = WAREHOUSE_CONN_ID

    template_fields = ("name",)

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def table(name: str, schema: str = GOLD, columns=None) -> Any:
    """A table in the warehouse (never in the SDK's ``tmp_astro``); in staging, the run's own.

    What the back-end's steps take: an SDK ``Table`` or this module's ``Table``.
    """
    from include.shopstream.platform.warehouse import staging_name

    if schema == STAGING:
        name = staging_name(name).split(".", 1)[1]
    return _backend.as_table(Table(name=name, schema=schema, columns=tuple(columns or ())))


BACKEND = choose_backend(os.environ.get(BACKEND_VARIABLE))
_backend = importlib.import_module(f"{__name__}.{'astro_sdk' if BACKEND == 'astro' else 'providers'}")


def load_file(task_id: str, path: str, output_table, *, filetype: str = "csv", text_as_is: bool = False, **kwargs):
    """Load the lake file or folder of parts at ``path`` (a URI template) into ``output_table``, replacing it.

    ``filetype``: ``csv`` or ``ndjson``. ``text_as_is``: every CSV value as the text it is, an
    empty field as NULL (for staging tables of text columns).
    """
    return _backend.load_file(task_id, path, output_table, filetype=filetype, text_as_is=text_as_is, **kwargs)


def transform_file(task_id: str, sql_file: str, output_table, **parameters):
    """Write the rows of ``sql/<sql_file>`` into ``output_table`` (dropped and created again).

    Tables among ``parameters`` become identifiers in the SQL; other values are bound.
    ``trigger_rule`` among them is the task's.
    """
    return _backend.transform_file(task_id, sql_file, output_table, **parameters)


def merge(task_id: str, target_table, source_table, columns, key, **kwargs):
    """``INSERT INTO target (columns) SELECT columns FROM source ON CONFLICT (key) DO UPDATE``."""
    return _backend.merge(task_id, target_table, source_table, list(columns), list(key), **kwargs)


def export_file(task_id: str, source, path: str, **kwargs):
    """Write ``source`` (a table, or a ``dataframe`` step's result) to ``path`` in the lake, replacing it.

    The format follows the name: ``.csv`` or ``.parquet``.
    """
    return _backend.export_file(task_id, source, path, **kwargs)


def dataframe(**kwargs):
    """A task decorator: the function gets each table argument as a pandas DataFrame and returns one."""
    return _backend.dataframe(**kwargs)


# The steps' work outside a task, on the chosen back-end: what the tests drive without a DAG run.


def load_into(path: str, output: str, columns=(), *, filetype: str = "csv", text_as_is: bool = False) -> int:
    """Replace table ``output`` (``schema.name``) with the rows of the file or folder at ``path``."""
    return _backend.load_into(path, output, columns, filetype=filetype, text_as_is=text_as_is)


def merge_into(target: str, source: str, columns, key):
    """Merge table ``source`` into ``target`` as ``merge`` does (names as ``schema.name``)."""
    return _backend.merge_into(target, source, list(columns), list(key))


def table_frame(qualified: str):
    """A table's rows as the DataFrame a ``dataframe`` step receives."""
    return _backend.table_frame(qualified)


def lake_path(operator) -> str | None:
    """The lake path (a URI, maybe a template) a load step reads or an export step writes; else None."""
    return _backend.lake_path(operator)


def source_table_name(operator) -> str | None:
    """``schema.name`` of the table a merge task reads (as rendered), for naming offending rows."""
    return _backend.source_table_name(operator)
