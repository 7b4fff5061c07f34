"""What the project needs from a Postgres connection, for either driver the Postgres provider hands out.

With SQLAlchemy 2 and psycopg (3) installed, the provider's ``PostgresHook.get_conn`` returns a
psycopg 3 connection (provider 7.x, the Airflow 3 profile); otherwise a psycopg2 one (the
Airflow 2 profile). The two differ in a few places the project uses: SQL composition objects
belong to their own driver, COPY has another interface, the server's version and the error
classes live elsewhere. These helpers look at the connection, not at the Airflow version.
"""

from __future__ import annotations

import contextlib
import importlib
from types import ModuleType
from typing import IO

COPY_CHUNK = 1 << 20  # bytes per COPY block when streaming a file in or out


def is_psycopg3(conn_or_cursor) -> bool:
    """Whether a connection or cursor is psycopg (3)'s."""
    return type(conn_or_cursor).__module__.split(".", 1)[0] == "psycopg"


def sql_module(conn_or_cursor) -> ModuleType:
    """The driver's ``sql`` module (``SQL``, ``Identifier``, ``Literal``, ``Composable``) for this connection."""
    if is_psycopg3(conn_or_cursor):
        from psycopg import sql
    else:
        from psycopg2 import sql
    return sql


def server_version(conn) -> int:
    """The server's version as an integer (``160004`` for 16.4)."""
    return conn.info.server_version if is_psycopg3(conn) else conn.server_version


def bind(cur, query: str, params) -> str:
    """``query`` with ``params`` bound on the client, for a statement that takes no parameters (COPY)."""
    if is_psycopg3(cur):
        from psycopg import ClientCursor

        return ClientCursor(cur.connection).mogrify(query, params)
    return cur.mogrify(query, params).decode()


def copy_out(cur, statement: str, file: IO[bytes]) -> int:
    """Run ``COPY ... TO STDOUT`` and write what it sends to ``file``; returns the rows copied."""
    if is_psycopg3(cur):
        with cur.copy(statement) as copy:
            for block in copy:
                file.write(block)
    else:
        cur.copy_expert(statement, file, size=COPY_CHUNK)
    return max(cur.rowcount, 0)


def copy_in(cur, statement: str, file: IO[bytes]) -> int:
    """Run ``COPY ... FROM STDIN`` on what ``file`` holds; returns the rows copied."""
    if is_psycopg3(cur):
        with cur.copy(statement) as copy:
            while block := file.read(COPY_CHUNK):
                copy.write(block)
    else:
        cur.copy_expert(statement, file, size=COPY_CHUNK)
    return max(cur.rowcount, 0)


def _drivers() -> list[ModuleType]:
    """The installed drivers: psycopg2, psycopg (3), or both."""
    drivers = []
    for name in ("psycopg2", "psycopg"):
        with contextlib.suppress(ImportError):
            drivers.append(importlib.import_module(name))
    return drivers


def _driver_errors(kind: str = "Error") -> tuple[type, ...]:
    """The DB-API error class ``kind`` (``Error``, ``DataError``, ``IntegrityError``) of each installed driver."""
    return tuple(getattr(driver, kind) for driver in _drivers())


def database_error(error: BaseException | None):
    """The driver's error behind ``error`` (SQLAlchemy wraps it as ``.orig``), if there is one."""
    errors = _driver_errors()
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, errors):
            return error
        orig = getattr(error, "orig", None)
        if isinstance(orig, errors):
            return orig
        error = error.__cause__ or error.__context__
    return None


def sqlstate(database_error) -> str | None:
    """The five-character SQLSTATE of a driver's error (both drivers show it on ``diag``; psycopg 3's
    error classes carry it too)."""
    diag = getattr(database_error, "diag", None)
    found = getattr(diag, "sqlstate", None) or getattr(database_error, "pgcode", None)
    return found or getattr(database_error, "sqlstate", None) or None


# SQLSTATE classes: 22 data exception (a value that does not fit its type, an overflow, a division
# by zero), 23 integrity constraint violation (NOT NULL, CHECK, foreign and unique keys). The
# drivers raise DataError and IntegrityError for exactly these. And 21 cardinality violation: a
# merge whose source holds one key twice ("ON CONFLICT DO UPDATE command cannot affect row a
# second time"), or a subquery that returns two rows where one is expected; the drivers raise it
# as ProgrammingError, but the same rows fail it on every try.
DATA_EXCEPTION = "22"
INTEGRITY_CONSTRAINT_VIOLATION = "23"
CARDINALITY_VIOLATION = "21"


def _of_class(database_error, state_class: str, kind: str) -> bool:
    state = sqlstate(database_error)
    if state:
        return state[:2] == state_class
    # An error the driver did not get from the server (raised by hand) has no SQLSTATE: its
    # DB-API class says the same, for both drivers.
    return isinstance(database_error, _driver_errors(kind))


def is_data_exception(database_error) -> bool:
    return _of_class(database_error, DATA_EXCEPTION, "DataError")


def is_constraint_or_data_error(database_error) -> bool:
    return (
        is_data_exception(database_error)
        or _of_class(database_error, INTEGRITY_CONSTRAINT_VIOLATION, "IntegrityError")
        or (sqlstate(database_error) or "")[:2] == CARDINALITY_VIOLATION
    )
