"""The warehouse: its hook, the schema runner, the run's staging tables, whole-table swaps, and
how a constraint or data error from it fails a task at once.

Names (connections, schemas, SQL files) are in ``names.py``; the lake's helpers in ``lake.py``;
the pipelines' load, transform, merge and export steps in ``sql_steps/``. Whatever connection
the Postgres provider hands out (psycopg2 or psycopg 3), ``pg.py`` speaks to it.
"""

from __future__ import annotations

import logging
import re

from include.shopstream.platform.names import STAGING, WAREHOUSE_CONN_ID, sql

# Staging tables belong to one DAG run: two runs at once (a backfill beside the scheduler, a manual
# trigger, `airflow dags test`) would otherwise load, check and merge each other's rows. A run's
# tables end in ``__`` and a key of its DAG and run id; Airflow renders the key (the SQL steps'
# table names are template fields, and so are the arguments of a ``@task``), and a retry or a
# cleared task of the same run finds the same tables.
RUN_KEY_LENGTH = 12
RUN_KEY_TEMPLATE = (
    "{{ macros.uuid.uuid5(macros.uuid.NAMESPACE_URL, dag.dag_id ~ '/' ~ run_id).hex[:" + str(RUN_KEY_LENGTH) + "] }}"
)
RUN_KEY_PATTERN = r"__([0-9a-f]{" + str(RUN_KEY_LENGTH) + "})$"


def run_key(dag_id: str, run_id: str) -> str:
    """The key of a run's staging tables, as ``RUN_KEY_TEMPLATE`` renders it."""
    import uuid

    return uuid.uuid5(uuid.NAMESPACE_URL, f"{dag_id}/{run_id}").hex[:RUN_KEY_LENGTH]


def staging_name(name: str) -> str:
    """``staging.<name>__<run key>`` as a template, for any templated field (a task's arguments)."""
    return f"{STAGING}.{name}__{RUN_KEY_TEMPLATE}"


def warehouse_hook():
    """The warehouse's Postgres hook."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=WAREHOUSE_CONN_ID)


def warehouse_engine():
    """A SQLAlchemy engine on the warehouse, for what pandas reads or writes: through psycopg2 on
    both profiles (the hook's own URL, its driver replaced).

    On Airflow 3 the hook's engine would use psycopg 3 (its choice wherever psycopg 3 and
    SQLAlchemy 2 are installed). Through it pandas read a million gold orders 2.9 times slower
    (39 s against 13.5 s, the same query and Parquet export): psycopg 3 gives each timestamptz a
    zoneinfo time zone, which pandas converts value by value, and fetches a server-side cursor's
    rows in many small round trips. psycopg2 comes with the Postgres provider on both profiles.
    """
    from sqlalchemy import create_engine

    return create_engine(warehouse_hook().sqlalchemy_url.set(drivername="postgresql+psycopg2"))


def ensure_warehouse() -> None:
    """Create the schemas and gold tables (with their keys) unless they exist."""
    warehouse_hook().run(sql("warehouse_schema.sql"))


# How long a failed run's staging tables stay, for clearing and re-running its failed task.
STAGING_KEPT_DAYS = 2


def claim_staging(dag_id: str, run_id: str) -> str:
    """Note that the run uses its staging tables from now on; returns its key."""
    key = run_key(dag_id, run_id)
    warehouse_hook().run(
        f"INSERT INTO {STAGING}.runs (run_key, dag_id, run_id) VALUES (%(key)s, %(dag_id)s, %(run_id)s)"
        " ON CONFLICT (run_key) DO UPDATE SET dag_id = EXCLUDED.dag_id, run_id = EXCLUDED.run_id, seen_at = now()",
        parameters={"key": key, "dag_id": dag_id, "run_id": run_id},
    )
    return key


def drop_staging(dag_id: str, run_id: str, kept_days: float = STAGING_KEPT_DAYS) -> list[str]:
    """Drop the run's staging tables, and those of runs not seen for ``kept_days``; returns the tables dropped.

    A key found without a claim (a run whose first task has not run yet, or a run from before the
    claims) is noted as seen now, so its tables go ``kept_days`` later at the earliest.
    """
    from include.shopstream.platform.pg import sql_module

    own = run_key(dag_id, run_id)
    conn = warehouse_hook().get_conn()
    pgsql = sql_module(conn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                "SELECT c.relname, substring(c.relname FROM %(pattern)s) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p')"
                " AND c.relname ~ %(pattern)s",
                {"schema": STAGING, "pattern": RUN_KEY_PATTERN},
            )
            tables = cur.fetchall()
            found = sorted({key for _, key in tables} - {own})
            cur.execute(
                f"INSERT INTO {STAGING}.runs (run_key) SELECT unnest(%(keys)s::text[]) ON CONFLICT DO NOTHING",
                {"keys": found},
            )
            cur.execute(
                f"DELETE FROM {STAGING}.runs WHERE run_key = %(own)s"
                " OR (run_key <> %(own)s AND seen_at < now() - make_interval(secs => %(kept)s)) RETURNING run_key",
                {"own": own, "kept": kept_days * 86400},
            )
            gone = {row[0] for row in cur.fetchall()} | {own}
            dropped = sorted(name for name, key in tables if key in gone)
            for name in dropped:
                cur.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(STAGING, name)))
    finally:
        conn.close()
    return dropped


def gold_writes(cursor, tables: tuple[str, ...]) -> int:
    """How many statements have written ``tables`` (committed ones, as the cursor's snapshot sees them)."""
    cursor.execute(
        f"SELECT coalesce(sum(writes), 0) FROM {STAGING}.gold_writes WHERE table_name = ANY(%s)", (list(tables),)
    )
    return int(cursor.fetchone()[0])


def replace_rows(target: str, source: str, columns: list[str], *, built_after: int | None = None) -> int | None:
    """Make ``target``'s rows those of ``source`` in one transaction; readers never see it empty.

    Swaps of one target wait for each other (two at once would each delete what the other had
    not yet inserted). ``built_after``: the count of writes to the gold tables the build reads
    (``gold_writes``), taken after the run's own merges and before its build. A build taken after
    fewer writes than the one swapped in last is older than it and is not swapped in (returns
    None): two runs rebuilding from gold leave the later build, in whatever order they swap.
    """
    from include.shopstream.platform.pg import sql_module

    conn = warehouse_hook().get_conn()
    pgsql = sql_module(conn)
    column_list = pgsql.SQL(", ").join(map(pgsql.Identifier, columns))
    target_id = pgsql.Identifier(*target.split("."))
    source_id = pgsql.Identifier(*source.split("."))
    try:
        with data_errors_fail(source=source), conn, conn.cursor() as cur:
            # Readers (ACCESS SHARE) go on; another swap of the same target waits here.
            cur.execute(pgsql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target_id))
            if built_after is not None:
                cur.execute(f"SELECT built_after FROM {STAGING}.swaps WHERE target = %s", (target,))
                last = cur.fetchone()
                # A count above today's total is from before the counts were reset (a restored
                # warehouse): it would keep every build out, so it is not compared.
                cur.execute(f"SELECT coalesce(sum(writes), 0) FROM {STAGING}.gold_writes")
                if last is not None and built_after < last[0] <= cur.fetchone()[0]:
                    print(
                        f"{source} not swapped into {target}: it was built after {built_after} writes to gold,"
                        f" the rows in place after {last[0]} (another run's newer build)"
                    )
                    return None
                cur.execute(
                    f"INSERT INTO {STAGING}.swaps VALUES (%(target)s, %(built)s)"
                    " ON CONFLICT (target) DO UPDATE SET built_after = EXCLUDED.built_after",
                    {"target": target, "built": built_after},
                )
            cur.execute(pgsql.SQL("DELETE FROM {}").format(target_id))
            cur.execute(
                pgsql.SQL("INSERT INTO {t} ({c}) SELECT {c} FROM {s}").format(t=target_id, c=column_list, s=source_id)
            )
            return cur.rowcount
    finally:
        conn.close()


# Errors in the data, not in the service: retrying cannot fix them. The driver's IntegrityError
# (NOT NULL, CHECK, foreign and unique keys) and DataError (a value that does not fit its type,
# an overflow, a division by zero) families, told by their SQLSTATE class (23 and 22) so that
# psycopg2 and psycopg 3 are judged alike; OperationalError (connection lost, timeouts) and
# everything else keep the task's retry policy.
OFFENDING_KEYS_SHOWN = 5


def _database_error(error: BaseException):
    """The driver's error behind ``error`` (SQLAlchemy wraps it as ``.orig``), if there is one."""
    from include.shopstream.platform.pg import database_error

    return database_error(error)


def is_data_error(error: BaseException) -> bool:
    """True for a constraint or data error from the warehouse: it fails the same way on every try."""
    from include.shopstream.platform.pg import is_constraint_or_data_error

    found = _database_error(error)
    return found is not None and is_constraint_or_data_error(found)


def offending_keys(conn, target: str, constraint: str | None, column: str | None, source: str) -> list[tuple]:
    """Up to a few keys of ``target`` among ``source``'s rows that break ``constraint`` (or NOT NULL on ``column``)."""
    from include.shopstream.platform.contract import read_contract
    from include.shopstream.platform.pg import sql_module

    pgsql = sql_module(conn)
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
    from include.shopstream.platform.pg import is_data_exception

    if is_data_exception(database_error):
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
            from include.shopstream.platform.compat import AirflowFailException

            raise AirflowFailException(data_error_message(error, self.source)) from error
        return False


def _is_fail_exception(error: BaseException) -> bool:
    from include.shopstream.platform.compat import AirflowFailException

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
    from include.shopstream.platform.compat import MappedOperator

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
    from include.shopstream.platform.sql_steps import source_table_name

    return data_errors_fail(source=source_table_name(running))
