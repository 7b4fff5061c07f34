"""The warehouse: its hooks and SDK tables, the schema runner, whole-table swaps, SQL transforms,
and how a constraint or data error from it fails a task at once.

Names (connections, schemas, SQL files) are in ``names.py``; the lake's helpers in ``lake.py``.
"""

from __future__ import annotations

import logging
import re

from include.shopstream.names import GOLD, WAREHOUSE_CONN_ID, sql


def table(name: str, schema: str = GOLD, columns=None):
    """An Astro SDK ``Table`` in the warehouse (never in ``tmp_astro``)."""
    from astro.table import Metadata, Table

    return Table(name=name, conn_id=WAREHOUSE_CONN_ID, metadata=Metadata(schema=schema), columns=columns or [])


def warehouse_hook():
    """The warehouse's Postgres hook."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID)


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
        with data_errors_fail(source=source), conn, conn.cursor() as cur:
            cur.execute(pgsql.SQL("DELETE FROM {}").format(target_id))
            cur.execute(
                pgsql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s}").format(t=target_id, c=column_list, s=source_id)
            )
            return cur.rowcount
    finally:
        conn.close()


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


# Errors in the data, not in the service: retrying cannot fix them. psycopg2's IntegrityError
# (NOT NULL, CHECK, foreign and unique keys) and DataError (a value that does not fit its type,
# an overflow, a division by zero) families; OperationalError (connection lost, timeouts) and
# everything else keep the task's retry policy.
OFFENDING_KEYS_SHOWN = 5


def _database_error(error: BaseException):
    """The psycopg2 error behind ``error`` (SQLAlchemy wraps it as ``.orig``), if there is one."""
    import psycopg2

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, psycopg2.Error):
            return error
        orig = getattr(error, "orig", None)
        if isinstance(orig, psycopg2.Error):
            return orig
        error = error.__cause__ or error.__context__
    return None


def is_data_error(error: BaseException) -> bool:
    """True for a constraint or data error from the warehouse: it fails the same way on every try."""
    import psycopg2

    return isinstance(_database_error(error), psycopg2.IntegrityError | psycopg2.DataError)


def offending_keys(conn, target: str, constraint: str | None, column: str | None, source: str) -> list[tuple]:
    """Up to a few keys of ``target`` among ``source``'s rows that break ``constraint`` (or NOT NULL on ``column``)."""
    from psycopg2 import sql as pgsql

    from include.shopstream.contract import read_contract

    with conn.cursor() as cur:
        contract = read_contract(cur, target)
        if not contract.key:
            return []
        key = pgsql.SQL(", ").join(map(pgsql.Identifier, contract.key))
        check = next((c for c in contract.checks if c.name == constraint), None)
        reference = next((r for r in contract.references if r.name == constraint), None)
        if column and constraint is None:
            where = pgsql.SQL("{} IS NULL").format(pgsql.Identifier(column))
        elif check is not None:
            where = pgsql.SQL("NOT ({})").format(pgsql.SQL(check.expression))
        elif reference is not None:
            where = pgsql.SQL("NOT EXISTS (SELECT 1 FROM {} AS ref WHERE {})").format(
                pgsql.Identifier(*reference.target.split(".")),
                pgsql.SQL(" AND ").join(
                    pgsql.SQL("ref.{} = s.{}").format(pgsql.Identifier(t), pgsql.Identifier(c))
                    for c, t in zip(reference.columns, reference.target_columns, strict=True)
                ),
            )
        elif unique := _unique_columns(cur, target, constraint):
            # Another key with the same values, in the batch or already in the table.
            same = pgsql.SQL(" AND ").join(pgsql.SQL("o.{c} = s.{c}").format(c=pgsql.Identifier(c)) for c in unique)
            other_key = pgsql.SQL("({}) IS DISTINCT FROM ({})").format(
                pgsql.SQL(", ").join(pgsql.SQL("o.{}").format(pgsql.Identifier(k)) for k in contract.key),
                pgsql.SQL(", ").join(pgsql.SQL("s.{}").format(pgsql.Identifier(k)) for k in contract.key),
            )
            where = pgsql.SQL(" OR ").join(
                pgsql.SQL("EXISTS (SELECT 1 FROM {} AS o WHERE {} AND {})").format(
                    pgsql.Identifier(*name.split(".")), same, other_key
                )
                for name in (source, target)
            )
        elif contract.key:  # the primary key: keys that come twice
            cur.execute(
                pgsql.SQL("SELECT {k} FROM {s} GROUP BY {k} HAVING count(*) > 1 ORDER BY {k} LIMIT %s").format(
                    k=key, s=pgsql.Identifier(*source.split("."))
                ),
                (OFFENDING_KEYS_SHOWN,),
            )
            return cur.fetchall()
        else:
            return []
        cur.execute(
            pgsql.SQL("SELECT DISTINCT {k} FROM {s} AS s WHERE {w} ORDER BY {k} LIMIT %s").format(
                k=key, s=pgsql.Identifier(*source.split(".")), w=where
            ),
            (OFFENDING_KEYS_SHOWN,),
        )
        return cur.fetchall()


def _unique_columns(cur, table: str, constraint: str | None) -> tuple[str, ...]:
    """The columns of ``table``'s UNIQUE constraint ``constraint`` (none if it is no such constraint)."""
    if not constraint:
        return ()
    cur.execute(
        "SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)"
        " FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.conname = %s AND c.contype = 'u'",
        (table, constraint),
    )
    found = cur.fetchone()
    return tuple(found[0]) if found else ()


# Postgres' detail of a constraint error shows the row ("Failing row contains (...)") or the
# values of the key it is about ("Key (email)=(...) already exists"): personal data, which must
# not travel into alerts. Values of a primary key (the table's own, or the one a foreign key
# refers to) identify a row and are kept; any other values are withheld.
_KEY_DETAIL = re.compile(r"^Key \((?P<columns>.*?)\)=\((?P<values>.*)\)(?P<rest>[^()]*)$", re.DOTALL)
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
WITHHELD = "(values withheld)"


def _shows_primary_key(table: str | None, constraint: str | None) -> bool:
    """Whether the values of ``constraint``'s key detail are primary-key values (False if unknown)."""
    from contextlib import closing

    if not table or not constraint:
        return False
    try:
        with closing(warehouse_hook().get_conn()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT c.contype = 'p' OR (c.contype = 'f' AND EXISTS (SELECT 1 FROM pg_constraint p"
                " WHERE p.conrelid = c.confrelid AND p.contype = 'p'"
                " AND p.conkey @> c.confkey AND p.conkey <@ c.confkey))"
                " FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.conname = %s",
                (table, constraint),
            )
            found = cur.fetchone()
    except Exception:  # noqa: BLE001 - whatever cannot be confirmed as a key is withheld
        return False
    return bool(found and found[0])


def redacted_detail(detail: str | None, table: str | None, constraint: str | None) -> str | None:
    """Postgres' ``detail`` of a data error with every value that is not a primary key's withheld."""
    detail = (detail or "").strip()
    if not detail or detail.startswith("Failing row contains"):
        return None
    key = _KEY_DETAIL.match(detail)
    if key:
        if _shows_primary_key(table, constraint):
            return detail
        return f"Key ({key['columns']}) {WITHHELD}{key['rest']}"
    return _QUOTED.sub(WITHHELD, detail)


def redacted_primary(message: str, database_error) -> str:
    """Postgres' primary message; for a DataError, without the offending input it quotes."""
    import psycopg2

    if isinstance(database_error, psycopg2.DataError):
        # 'invalid input syntax for type integer: "..."', 'value "..." is out of range ...'
        return _QUOTED.sub(WITHHELD, message)
    return message


def data_error_message(error: BaseException, source: str | None = None) -> str:
    """One paragraph naming the table, the constraint and a few offending keys of a data error.

    It ends up in alerts (Slack, PagerDuty): it names keys, never other values of a row.
    """
    from contextlib import closing

    database_error = _database_error(error)
    diag = database_error.diag
    table = ".".join(part for part in (diag.schema_name, diag.table_name) if part) or "a warehouse table"
    what = diag.constraint_name or (f"NOT NULL on {diag.column_name}" if diag.column_name else None)
    parts = [f"{type(database_error).__name__} on {table}" + (f", constraint {what}" if what else "")]
    primary = diag.message_primary or next(iter(str(database_error).strip().splitlines()), "")
    parts.append(redacted_primary(primary.strip(), database_error))
    detail = redacted_detail(diag.message_detail, table if diag.table_name else None, diag.constraint_name)
    if detail:
        parts.append(detail)
    if source and diag.table_name:
        try:
            with closing(warehouse_hook().get_conn()) as conn:
                keys = offending_keys(conn, table, diag.constraint_name, diag.column_name, source)
        except Exception as err:  # naming the keys is a courtesy: never hide the error itself
            # The error's own text may quote a value; it goes to the task log, its type to the alert.
            logging.getLogger(__name__).warning("could not name the offending keys in %s", source, exc_info=True)
            keys, parts = [], [*parts, f"(offending keys not found: {type(err).__name__})"]
        if keys:
            shown = ", ".join(str(k[0]) if len(k) == 1 else str(k) for k in keys)
            parts.append(f"offending keys in {source}: {shown}")
    return ". ".join(p.rstrip(".") for p in parts) + ". A data error: not retried."


class data_errors_fail:  # noqa: N801 - used as a context manager, like contextlib's
    """Turn a constraint or data error from the warehouse into ``AirflowFailException`` (no retries).

    ``source``: the table whose rows were being written, to name a few offending keys.
    """

    def __init__(self, source: str | None = None) -> None:
        self.source = source

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is not None and not _is_fail_exception(error) and is_data_error(error):
            from airflow.exceptions import AirflowFailException

            raise AirflowFailException(data_error_message(error, self.source)) from error
        return False


def _is_fail_exception(error: BaseException) -> bool:
    from airflow.exceptions import AirflowFailException

    return isinstance(error, AirflowFailException)


_POLICY_MARK = "_shopstream_data_errors_fail"


def fail_fast_on_data_errors(task) -> None:
    """Make ``task`` fail without retries on a data error from the warehouse (a cluster policy).

    Covers each way Airflow 2.10 runs a task's code on a worker: ``execute``; ``resume_execution``,
    through which a deferred task comes back from its trigger (to ``execute_complete`` or whatever
    method it deferred to); and, for a mapped task, which never runs itself, the operator it unmaps
    into for each map index at run time. The copy the task runner executes is ``context["task"]``.
    A merge names its source table, so the message can list a few offending keys.
    """
    from airflow.models.mappedoperator import MappedOperator

    if isinstance(task, MappedOperator):
        _fail_fast_once_unmapped(task)
        return
    if not getattr(task.execute, _POLICY_MARK, False):

        def execute(context, **kwargs):
            running = context["task"]
            with _data_errors_of(running):
                return type(running).execute(running, context, **kwargs)

        execute.__name__ = "execute"  # the task runner passes its call-guard sentinel only to "execute"
        setattr(execute, _POLICY_MARK, True)
        task.execute = execute
    if not getattr(task.resume_execution, _POLICY_MARK, False):

        def resume_execution(next_method, next_kwargs, context):
            running = context["task"]
            with _data_errors_of(running):
                return type(running).resume_execution(running, next_method, next_kwargs, context)

        setattr(resume_execution, _POLICY_MARK, True)
        task.resume_execution = resume_execution


def _fail_fast_once_unmapped(mapped) -> None:
    """Apply the policy to each operator ``mapped`` unmaps into (Airflow builds one per map index)."""
    import types

    if getattr(mapped.unmap, _POLICY_MARK, False):
        return

    def unmap(self, resolve):
        operator = type(self).unmap(self, resolve)
        fail_fast_on_data_errors(operator)
        return operator

    setattr(unmap, _POLICY_MARK, True)
    # Bound to the instance, so that a deep copy of the DAG (a subset of it) unmaps its own copy.
    mapped.unmap = types.MethodType(unmap, mapped)


def _data_errors_of(running) -> data_errors_fail:
    source = getattr(running, "source_table", None)
    name = f"{source.metadata.schema}.{source.name}" if getattr(source, "metadata", None) else None
    return data_errors_fail(source=name if name and source.metadata.schema else None)
