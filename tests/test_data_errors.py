"""Data errors from the warehouse fail a task at once and say where; transient errors still retry.

The errors are real: raised by Postgres (the embedded server) on real tables.
"""

from __future__ import annotations

import psycopg2
import pytest
import sqlalchemy.exc
from airflow.exceptions import AirflowFailException

from include.shopstream.ops.alerting import error_text
from include.shopstream.platform.warehouse import (
    data_error_message,
    data_errors_fail,
    fail_fast_on_data_errors,
    is_data_error,
    replace_rows,
    sql,
)

pytestmark = pytest.mark.services

DATABASE = "shopstream_data_errors"


@pytest.fixture(scope="module")
def warehouse(pg_server):
    pg_server.ensure_database(DATABASE)
    with pg_server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(sql("warehouse_schema.sql"))
        cur.execute("TRUNCATE gold.orders, gold.customers, gold.daily_reports")
        cur.execute("INSERT INTO gold.customers VALUES (7, 'a@example.com', 'A', 'DE', now(), now())")
    return pg_server


@pytest.fixture
def warehouse_connection(warehouse, monkeypatch):
    """The Airflow connection shopstream_warehouse, pointing at the test database."""
    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", warehouse.url(DATABASE))


def raised(pg_server, statement: str) -> psycopg2.Error:
    with pg_server.connect(DATABASE) as conn, conn.cursor() as cur:
        try:
            cur.execute(statement)
        except psycopg2.Error as err:
            return err
    raise AssertionError(f"{statement!r} did not fail")


ORDER = (
    "INSERT INTO gold.orders VALUES"
    " ({id}, {customer}, 3, 'SKU-3', 'books', 1, {amount}, 'paid', 0, now(), now(), now())"
)


@pytest.mark.parametrize(
    ("statement", "table", "constraint"),
    [
        (ORDER.format(id=1, customer=99, amount=5), "gold.orders", "orders_customer_known"),
        (ORDER.format(id=1, customer=7, amount=-5), "gold.orders", "amount_not_negative"),
        (ORDER.format(id=1, customer="NULL", amount=5), "gold.orders", "NOT NULL on customer_id"),
    ],
)
def test_a_constraint_error_is_a_data_error_naming_table_and_constraint(warehouse, statement, table, constraint):
    error = raised(warehouse, statement)
    assert isinstance(error, psycopg2.IntegrityError)
    assert is_data_error(error)
    message = data_error_message(error)
    assert f"{type(error).__name__} on {table}, constraint {constraint}. " in message
    assert "Failing row contains" not in message
    assert message.endswith("A data error: not retried.")


def test_a_value_out_of_range_is_a_data_error(warehouse):
    error = raised(warehouse, ORDER.format(id=1, customer=7, amount=10**11))
    assert isinstance(error, psycopg2.DataError)
    assert is_data_error(error)
    assert "numeric field overflow" in data_error_message(error)


def test_a_merge_whose_source_repeats_a_key_fails_fast(warehouse):
    """Postgres refuses to update one row twice in one INSERT .. ON CONFLICT (SQLSTATE 21000): the
    same rows refuse it on every try, so the task fails at once instead of retrying for an hour."""
    twice = (
        "INSERT INTO gold.orders SELECT o.* FROM (VALUES"
        " (11, 7, 3, 'SKU-3', 'books', 1, 5.0, 'paid', 0, now(), now(), now()),"
        " (11, 7, 3, 'SKU-3', 'books', 2, 9.0, 'paid', 0, now(), now(), now())) AS o"
        " ON CONFLICT (order_id) DO UPDATE SET quantity = EXCLUDED.quantity"
    )
    error = raised(warehouse, twice)
    assert error.pgcode == "21000"
    assert is_data_error(error)
    with pytest.raises(AirflowFailException, match="cannot affect row a second time") as failed, data_errors_fail():
        raise error
    assert str(failed.value).endswith("A data error: not retried.")


def test_an_error_wrapped_by_sqlalchemy_is_recognised(warehouse):
    error = raised(warehouse, ORDER.format(id=1, customer=99, amount=5))
    wrapped = sqlalchemy.exc.IntegrityError("INSERT ...", {}, error)
    assert is_data_error(wrapped)
    try:
        raise RuntimeError("merge failed") from wrapped
    except RuntimeError as chained:
        assert is_data_error(chained)


def test_connection_lost_and_timeouts_are_not_data_errors(warehouse):
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(host="127.0.0.1", port=1, dbname="x", connect_timeout=2)
    assert not is_data_error(refused.value)
    timeout = raised(warehouse, "SET statement_timeout = 50; SELECT pg_sleep(2)")
    assert isinstance(timeout, psycopg2.OperationalError)  # QueryCanceled
    assert not is_data_error(timeout)
    with pg_terminated(warehouse) as lost:
        assert not is_data_error(lost)


class pg_terminated:  # noqa: N801
    """The error a session gets when the server ends it (a restart or a failover does that)."""

    def __init__(self, pg_server):
        self.pg_server = pg_server

    def __enter__(self):
        victim = self.pg_server.connect(DATABASE)
        with victim.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
        with self.pg_server.connect(DATABASE) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:
            with victim.cursor() as cur:
                cur.execute("SELECT 1")
        except psycopg2.Error as err:
            self.error = err
        finally:
            victim.close()
        assert isinstance(self.error, psycopg2.OperationalError)
        return self.error

    def __exit__(self, *exc):
        return False


def test_the_context_manager_fails_fast_on_data_errors_only(warehouse):
    with pytest.raises(AirflowFailException, match="orders_customer_known"), data_errors_fail():
        raise raised(warehouse, ORDER.format(id=1, customer=99, amount=5))
    with pytest.raises(psycopg2.OperationalError), data_errors_fail():
        raise raised(warehouse, "SET statement_timeout = 50; SELECT pg_sleep(2)")


def test_a_swap_that_breaks_a_constraint_names_the_offending_keys(warehouse, warehouse_connection):
    with warehouse.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS staging.reports_bad")
        cur.execute("CREATE TABLE staging.reports_bad (LIKE gold.daily_reports)")
        cur.execute("ALTER TABLE staging.reports_bad ALTER COLUMN category DROP NOT NULL")
        cur.execute(
            "INSERT INTO staging.reports_bad SELECT date '2026-11-01' + n,"
            " CASE WHEN n % 2 = 0 THEN NULL ELSE 'books' END, 1, 10, 10, 0, now() FROM generate_series(0, 19) n"
        )
    columns = ["day", "category", "orders", "revenue", "average_order_value", "refunds", "loaded_at"]
    with pytest.raises(AirflowFailException) as failed:
        replace_rows("gold.daily_reports", "staging.reports_bad", columns)
    message = str(failed.value)
    assert message.startswith("NotNullViolation on gold.daily_reports, constraint NOT NULL on category")
    # The key of gold.daily_reports is (day, category): the first five rows without a category.
    assert "offending keys in staging.reports_bad: (datetime.date(2026, 11, 1), None)" in message
    assert message.count("datetime.date(") == 5


def test_the_task_policy_fails_any_task_fast_on_a_data_error(warehouse):
    from include.shopstream.platform.compat import DAG, task

    def failing(statement):
        @task
        def write():
            with warehouse.connect(DATABASE) as conn, conn.cursor() as cur:
                cur.execute(statement)

        with DAG("data_error_policy", schedule=None):
            operator = write().operator
        fail_fast_on_data_errors(operator)
        running = operator.prepare_for_execution()
        running.execute({"task": running, "ti": None, "params": {}})

    with pytest.raises(AirflowFailException, match=r"CheckViolation on gold\.orders, constraint amount_not_negative"):
        failing(ORDER.format(id=1, customer=7, amount=-5))
    with pytest.raises(psycopg2.OperationalError):  # left to the retry policy
        failing("SET statement_timeout = 50; SELECT pg_sleep(2)")


# A person's data, which the warehouse's own error detail repeats ("Failing row contains (...)",
# "Key (email)=(...) already exists") and which no alert may carry.
EMAIL, NAME = "jane.roe@example.com", "Jane Roe"
PEOPLE = (
    "CREATE TABLE gold.test_people (person_id bigint PRIMARY KEY, email text NOT NULL"
    " CONSTRAINT test_people_one_email UNIQUE, full_name text CONSTRAINT test_people_named CHECK (full_name <> ''),"
    " born date)"
)


@pytest.fixture
def people(warehouse, warehouse_connection):
    with warehouse.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gold.test_people, staging.test_people_incoming")
        cur.execute(PEOPLE)
        cur.execute("INSERT INTO gold.test_people VALUES (1, %s, %s, '1990-01-01')", (EMAIL, NAME))
    yield
    with warehouse.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS gold.test_people, staging.test_people_incoming")


def alert_text(message: str) -> str:
    """What Slack and PagerDuty receive of a task that failed with ``message``."""
    return error_text(AirflowFailException(message))


@pytest.mark.parametrize(
    ("statement", "kept"),
    [
        pytest.param(
            f"INSERT INTO gold.test_people VALUES (2, NULL, '{NAME}', NULL)",
            "NotNullViolation on gold.test_people, constraint NOT NULL on email",
            id="not-null",
        ),
        pytest.param(
            f"INSERT INTO gold.test_people VALUES (3, '{EMAIL}x', '', NULL)",
            "CheckViolation on gold.test_people, constraint test_people_named",
            id="check",
        ),
        pytest.param(
            f"INSERT INTO gold.test_people VALUES (4, '{EMAIL}', 'Other', NULL)",
            "constraint test_people_one_email. duplicate key value violates unique constraint"
            ' "test_people_one_email". Key (email) (values withheld) already exists',
            id="unique-on-a-non-key-column",
        ),
        pytest.param(
            f"INSERT INTO gold.test_people VALUES (5, 'x@example.com', '{NAME}', '{NAME}')",
            "invalid input syntax for type date: (values withheld)",
            id="a-value-that-is-no-date",
        ),
    ],
)
def test_a_data_errors_alert_carries_no_row_values(warehouse, people, statement, kept):
    error = raised(warehouse, statement)
    text = alert_text(data_error_message(error))
    assert kept in text
    assert EMAIL not in text and NAME not in text and "Failing row" not in text, text


def test_a_data_errors_alert_keeps_primary_key_values(warehouse, people):
    duplicate = alert_text(data_error_message(raised(warehouse, "INSERT INTO gold.test_people VALUES (1, 'x', 'y')")))
    assert "Key (person_id)=(1) already exists" in duplicate
    unknown = alert_text(data_error_message(raised(warehouse, ORDER.format(id=1, customer=99, amount=5))))
    assert 'Key (customer_id)=(99) is not present in table "customers"' in unknown, "a key of gold.customers"


def test_a_swap_that_breaks_a_unique_constraint_names_keys_not_values(warehouse, people):
    with warehouse.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE staging.test_people_incoming (LIKE gold.test_people)")
        cur.execute(
            "INSERT INTO staging.test_people_incoming VALUES (1, %s, %s, NULL), (7, 'b@example.com', 'B', NULL),"
            " (8, %s, 'C', NULL), (9, %s, 'D', NULL)",
            (EMAIL, NAME, EMAIL, EMAIL),
        )
    with pytest.raises(AirflowFailException) as failed:
        replace_rows("gold.test_people", "staging.test_people_incoming", ["person_id", "email", "full_name"])
    text = alert_text(str(failed.value))
    assert text.startswith("AirflowFailException: UniqueViolation on gold.test_people, constraint test_people_one")
    assert "offending keys in staging.test_people_incoming: 1, 8, 9" in text
    assert EMAIL not in text and NAME not in text, text
