"""pg.py: what the project asks of a Postgres connection, for psycopg2 and psycopg 3 alike.

Error classification needs no server; the connection helpers (driver, SQL module, server version,
client-side binding, COPY in and out) run against the embedded Postgres, once per installed driver.
"""

from __future__ import annotations

import csv
import importlib
import io
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.shopstream.platform import pg

DATABASE = "shopstream_unit_pg"

# What a Postgres text can hold: any character but NUL (and no lone surrogates).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60)
EXAMPLES = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# -- Data errors are told by SQLSTATE, so that psycopg2 and psycopg 3 errors are judged alike ----


@pytest.mark.parametrize(
    ("state", "data_error", "constraint_or_data"),
    [("23502", False, True), ("23505", False, True), ("22P02", True, True), ("22003", True, True),
     ("21000", False, True), ("08006", False, False), ("57014", False, False), ("42P01", False, False),
     (None, False, False)],
)  # fmt: skip
def test_constraint_and_data_errors_are_told_by_their_sqlstate_class(state, data_error, constraint_or_data):
    error = SimpleNamespace(diag=SimpleNamespace(sqlstate=state))
    assert pg.is_data_exception(error) is data_error
    assert pg.is_constraint_or_data_error(error) is constraint_or_data


def test_the_sqlstate_is_read_wherever_the_driver_keeps_it():
    assert pg.sqlstate(SimpleNamespace(diag=SimpleNamespace(sqlstate="23505"))) == "23505"
    assert pg.sqlstate(SimpleNamespace(diag=SimpleNamespace(sqlstate=None), pgcode="22012")) == "22012"
    assert pg.sqlstate(SimpleNamespace(sqlstate="23514")) == "23514"  # psycopg 3's error classes
    assert pg.sqlstate(SimpleNamespace(diag=SimpleNamespace(sqlstate=""), pgcode=None)) is None
    assert pg.sqlstate(ValueError("no driver")) is None


def test_the_drivers_error_is_found_behind_a_wrapper():
    import psycopg2

    inner = psycopg2.errors.NotNullViolation("null value in column")
    wrapper = RuntimeError("the merge failed")
    wrapper.__cause__ = inner
    assert pg.database_error(wrapper) is inner
    assert pg.database_error(SimpleNamespace(orig=inner, __cause__=None, __context__=None)) is inner
    assert pg.database_error(ValueError("no database here")) is None


def test_a_psycopg3_error_is_found_too():
    psycopg = pytest.importorskip("psycopg")

    inner = psycopg.errors.CheckViolation("breaks a check")
    wrapper = RuntimeError("wrapped")
    wrapper.__context__ = inner
    assert pg.database_error(wrapper) is inner


def test_a_chain_of_errors_that_loops_ends_the_search():
    first, second = RuntimeError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    assert pg.database_error(first) is None
    assert pg.database_error(None) is None


def test_an_error_raised_by_hand_is_judged_by_its_class():
    """No server, no SQLSTATE: psycopg2's class says what the SQLSTATE would have."""
    import psycopg2

    assert pg.is_constraint_or_data_error(psycopg2.errors.UniqueViolation("duplicate key"))
    assert pg.is_data_exception(psycopg2.errors.InvalidTextRepresentation("invalid input"))
    assert not pg.is_constraint_or_data_error(psycopg2.OperationalError("connection lost"))


# -- On the embedded Postgres, once per installed driver ----------------------------------------


@pytest.fixture(scope="module", params=["psycopg2", "psycopg"])
def connection(request, pg_server):
    try:
        driver = importlib.import_module(request.param)
    except ImportError:
        pytest.skip(f"{request.param} is not installed in this profile")
    pg_server.ensure_database(DATABASE)
    conn = driver.connect(pg_server.url(DATABASE))
    yield conn
    conn.close()


@pytest.fixture
def cursor(connection):
    with connection.cursor() as cur:
        yield cur
    connection.rollback()


@pytest.mark.services
def test_each_driver_is_known_by_its_connection_and_gets_its_own_sql_module(connection, request):
    third = request.node.callspec.params["connection"] == "psycopg"
    with connection.cursor() as cur:
        assert pg.is_psycopg3(connection) is third
        assert pg.is_psycopg3(cur) is third
    module = pg.sql_module(connection)
    assert module is importlib.import_module("psycopg.sql" if third else "psycopg2.sql")
    assert pg.sql_module(connection).Identifier("a").as_string(connection) == '"a"'


@pytest.mark.services
def test_the_server_version_is_the_number_the_server_reports(connection, cursor):
    cursor.execute("SHOW server_version_num")
    assert pg.server_version(connection) == int(cursor.fetchone()[0]) >= 120000


@pytest.mark.services
@EXAMPLES
@given(
    text=TEXT,
    number=st.integers(-(2**63), 2**63 - 1),
    moment=st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(UTC)),
)
def test_values_bound_on_the_client_reach_the_server_as_they_were(connection, text, number, moment):
    params = {"text": text, "number": number, "moment": moment}
    with connection.cursor() as cur:
        statement = pg.bind(cur, "SELECT %(text)s, %(number)s, %(moment)s", params)
        assert isinstance(statement, str)
        cur.execute(statement)
        assert cur.fetchone() == (text, number, moment)
    connection.rollback()


def csv_of(rows) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


@pytest.mark.services
@EXAMPLES
@given(values=st.lists(TEXT, max_size=8))
def test_copy_in_and_out_carry_any_text_and_count_the_rows(connection, values):
    rows = list(enumerate(values))
    try:
        with connection.cursor() as cur:
            cur.execute("CREATE TEMP TABLE texts (id int, v text) ON COMMIT DROP")
            copied = pg.copy_in(cur, "COPY texts FROM STDIN WITH (FORMAT csv)", io.BytesIO(csv_of(rows)))
            assert copied == len(rows)
            cur.execute("SELECT v FROM texts ORDER BY id")
            assert [v for (v,) in cur.fetchall()] == [v or None for v in values]  # an empty field is NULL

            out = io.BytesIO()
            sent = pg.copy_out(cur, "COPY (SELECT id, v FROM texts ORDER BY id) TO STDOUT WITH (FORMAT csv)", out)
            assert sent == len(rows)
            read = list(csv.reader(io.StringIO(out.getvalue().decode(), newline="")))
            assert [(int(i), v) for i, v in read] == rows
    finally:
        connection.rollback()


@pytest.mark.services
def test_a_file_larger_than_one_copy_block_streams_whole(connection, cursor, monkeypatch):
    monkeypatch.setattr(pg, "COPY_CHUNK", 7)
    rows = [(n, f'row {n}, "quoted"\nand more') for n in range(50)]
    cursor.execute("CREATE TEMP TABLE blocks (id int, v text) ON COMMIT DROP")
    assert pg.copy_in(cursor, "COPY blocks FROM STDIN WITH (FORMAT csv)", io.BytesIO(csv_of(rows))) == 50
    out = io.BytesIO()
    assert pg.copy_out(cursor, "COPY blocks TO STDOUT WITH (FORMAT csv)", out) == 50
    assert out.getvalue() == csv_of(rows).replace(b"\r\n", b"\n")


@pytest.mark.services
@pytest.mark.parametrize(
    ("statement", "data_error", "constraint_or_data"),
    [
        ("SELECT 1 / 0", True, True),
        ("SELECT 'x'::int", True, True),
        ("CREATE TEMP TABLE t (a int NOT NULL); INSERT INTO t VALUES (NULL)", False, True),
        ("SELECT * FROM no_such_table", False, False),
    ],
)
def test_an_error_from_the_server_is_judged_alike_by_either_driver(
    connection, statement, data_error, constraint_or_data
):
    with connection.cursor() as cur:
        try:
            cur.execute(statement)
        except Exception as err:  # noqa: BLE001 - each driver raises its own classes
            raised = err
        else:
            raise AssertionError(f"{statement!r} did not fail")
    connection.rollback()
    wrapper = RuntimeError("the step failed")
    wrapper.__cause__ = raised
    assert pg.database_error(wrapper) is raised
    assert pg.is_data_exception(raised) is data_error
    assert pg.is_constraint_or_data_error(raised) is constraint_or_data
