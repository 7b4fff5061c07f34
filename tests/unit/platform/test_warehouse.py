"""warehouse.py: the schema it ensures, the run's staging tables, whole-table swaps, and the
redaction of a data error's values; each safe to run again.

Against the embedded Postgres, in databases of this module's own (the warehouse connection
pointed at one); the redaction needs none.
"""

from __future__ import annotations

import re
import threading

import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.platform import warehouse
from include.shopstream.platform.compat import AirflowFailException
from include.shopstream.platform.warehouse import sql

DATABASE = "shopstream_unit_warehouse"


@pytest.mark.services
def test_two_concurrent_runs_on_an_empty_warehouse_both_succeed(pg_server):
    database = "shopstream_schema_race"
    pg_server.ensure_database(database)
    script = sql("warehouse_schema.sql")
    first, second = pg_server.connect(database), pg_server.connect(database)
    outcome: dict[str, object] = {}

    def run_second():
        try:
            with second, second.cursor() as cur:
                cur.execute(script)
            outcome["second"] = "committed"
        except psycopg2.Error as err:  # the assertion below reports it
            outcome["second"] = err

    try:
        with first.cursor() as cur:
            cur.execute(script)  # schemas and tables created, not yet committed
        racer = threading.Thread(target=run_second)
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive(), f"the second run must wait for the first; it ended with {outcome.get('second')!r}"
        first.commit()
        racer.join(timeout=30)
        assert outcome.get("second") == "committed"
        with first.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('staging', 'gold') ORDER BY 1")
            assert [row[0] for row in cur.fetchall()] == ["gold", "staging"]
    finally:
        first.close()
        second.close()


@pytest.fixture(scope="module")
def database(pg_server):
    pg_server.ensure_database(DATABASE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", pg_server.url(DATABASE))
        warehouse.ensure_warehouse()
        yield pg_server


def query(pg_server, statement: str, params=None) -> list[tuple]:
    with pg_server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


@pytest.mark.services
def test_the_engine_for_pandas_reads_the_warehouse_through_psycopg2_with_the_connections_settings(database):
    # Airflow 3's hook would hand pandas a psycopg 3 engine: 2.9 times slower reading gold orders.
    engine = warehouse.warehouse_engine()
    try:
        assert engine.dialect.driver == "psycopg2"
        assert engine.url.render_as_string(hide_password=False) == (
            warehouse.warehouse_hook().sqlalchemy_url.set(drivername="postgresql+psycopg2").render_as_string(False)
        )
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_database()").scalar() == DATABASE
    finally:
        engine.dispose()


@pytest.mark.services
def test_ensuring_the_warehouse_again_keeps_its_rows(database):
    query(database, "TRUNCATE gold.customers CASCADE")
    query(database, "INSERT INTO gold.customers VALUES (7, 'a@example.com', 'A', 'DE', now(), now())")
    warehouse.ensure_warehouse()
    warehouse.ensure_warehouse()
    assert query(database, "SELECT customer_id, email FROM gold.customers") == [(7, "a@example.com")]


# -- Whole-table swaps ---------------------------------------------------------------------------


def stage(pg_server, table: str, rows: list[tuple]) -> None:
    query(pg_server, f"DROP TABLE IF EXISTS {table}")
    query(pg_server, f"CREATE TABLE {table} (id int PRIMARY KEY, v text NOT NULL, extra text DEFAULT 'default')")
    for row in rows:
        query(pg_server, f"INSERT INTO {table} (id, v) VALUES (%s, %s)", row)


@pytest.mark.services
def test_a_swap_makes_the_targets_rows_the_sources_and_a_rerun_gives_the_same(database):
    stage(database, "gold.swapped", [(1, "old"), (2, "gone")])
    stage(database, "staging.swapped_build", [(1, "new"), (3, "added")])
    for _ in range(2):
        assert warehouse.replace_rows("gold.swapped", "staging.swapped_build", ["id", "v"]) == 2
        assert query(database, "SELECT id, v, extra FROM gold.swapped ORDER BY id") == [
            (1, "new", "default"),
            (3, "added", "default"),
        ]


@pytest.mark.services
def test_a_swap_that_fails_leaves_the_rows_in_place(database):
    stage(database, "gold.kept", [(1, "in place")])
    query(database, "DROP TABLE IF EXISTS staging.kept_build")
    query(database, "CREATE TABLE staging.kept_build (id int, v text)")
    query(database, "INSERT INTO staging.kept_build VALUES (1, 'fine'), (2, NULL)")
    with pytest.raises(AirflowFailException, match="NOT NULL on v"):
        warehouse.replace_rows("gold.kept", "staging.kept_build", ["id", "v"])
    assert query(database, "SELECT id, v FROM gold.kept") == [(1, "in place")]


@pytest.mark.services
def test_a_rerun_of_the_build_in_place_is_swapped_in_again_and_an_older_one_is_not(database):
    def writes() -> int:
        query(database, "UPDATE gold.customers SET email = email")  # one more write to gold
        with database.connect(DATABASE) as conn, conn.cursor() as cur:
            return warehouse.gold_writes(cur, ("gold.customers",))

    def swap(rows, built_after):
        stage(database, "staging.rebuilt_build", rows)
        return warehouse.replace_rows("gold.rebuilt", "staging.rebuilt_build", ["id", "v"], built_after=built_after)

    stage(database, "gold.rebuilt", [])
    query(database, "DELETE FROM staging.swaps WHERE target = 'gold.rebuilt'")
    older = writes()
    assert swap([(1, "a")], older) == 1
    assert swap([(1, "b"), (2, "c")], older) == 2, "the same build again"
    newer = writes()
    assert swap([(3, "newer")], newer) == 1
    assert swap([(1, "older")], older) is None
    assert query(database, "SELECT id, v FROM gold.rebuilt ORDER BY id") == [(3, "newer")]
    assert query(database, "SELECT built_after FROM staging.swaps WHERE target = 'gold.rebuilt'") == [(newer,)]


@pytest.mark.services
def test_gold_writes_count_the_statements_on_the_tables_asked_for(database):
    def writes(*tables):
        with database.connect(DATABASE) as conn, conn.cursor() as cur:
            return warehouse.gold_writes(cur, tables)

    before = (writes("gold.customers"), writes("gold.orders"), writes("gold.customers", "gold.orders"))
    query(
        database,
        "INSERT INTO gold.customers SELECT n, 'c' || n, 'C', 'DE', now(), now() FROM generate_series(100, 104) n",
    )
    query(database, "DELETE FROM gold.customers WHERE customer_id >= 100")
    after = (writes("gold.customers"), writes("gold.orders"), writes("gold.customers", "gold.orders"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 0, 2]
    assert writes("gold.no_such_table") == 0


# -- The run's staging tables -------------------------------------------------------------------

RUN = ("sales_core_pipeline", "manual__2026-11-24T02:00:00+00:00")


def test_a_staging_name_carries_the_run_key_template_that_the_pattern_finds():
    key = warehouse.run_key(*RUN)
    assert warehouse.staging_name("orders_raw") == f"staging.orders_raw__{warehouse.RUN_KEY_TEMPLATE}"
    assert re.search(warehouse.RUN_KEY_PATTERN, f"orders_raw__{key}")[1] == key
    assert re.search(warehouse.RUN_KEY_PATTERN, "orders_raw_test") is None
    assert re.search(warehouse.RUN_KEY_PATTERN, f"orders_raw__{key}_old") is None
    assert warehouse.run_key(*RUN) == key != warehouse.run_key(RUN[0], "manual__2026-11-25T02:00:00+00:00")


@pytest.mark.services
def test_a_run_claims_its_staging_once_however_often_it_claims(database):
    query(database, "DELETE FROM staging.runs")
    key = warehouse.claim_staging(*RUN)
    query(database, "UPDATE staging.runs SET seen_at = now() - interval '3 days'")
    assert warehouse.claim_staging(*RUN) == key == warehouse.run_key(*RUN)
    assert query(
        database, "SELECT run_key, dag_id, run_id, seen_at > now() - interval '1 minute' FROM staging.runs"
    ) == [(key, *RUN, True)]


@pytest.mark.services
def test_dropping_a_runs_staging_again_drops_nothing_more(database):
    key = warehouse.run_key(*RUN)
    warehouse.claim_staging(*RUN)
    query(database, f"CREATE TABLE IF NOT EXISTS staging.orders_raw__{key} (x int)")
    query(database, "CREATE TABLE IF NOT EXISTS staging.orders_raw_kept (x int)")
    assert warehouse.drop_staging(*RUN) == [f"orders_raw__{key}"]
    assert warehouse.drop_staging(*RUN) == []
    assert query(database, "SELECT count(*) FROM staging.runs WHERE run_key = %s", (key,)) == [(0,)]
    assert query(database, "SELECT to_regclass('staging.orders_raw_kept') IS NOT NULL") == [(True,)]


# -- What a data error may say -------------------------------------------------------------------

# Any value a row may hold, quotes, parentheses and newlines included.
VALUE = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=40)
EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)


@EXAMPLES
@given(value=VALUE, columns=st.sampled_from(["email", "email, full_name", "sku, warehouse"]))
def test_a_key_detail_of_an_unknown_table_shows_its_columns_not_its_values(value, columns):
    detail = f"Key ({columns})=({value}) already exists."
    assert warehouse.redacted_detail(detail, None, None) == f"Key ({columns}) (values withheld) already exists."


@EXAMPLES
@given(value=VALUE)
def test_a_failing_rows_detail_is_left_out_and_a_quoted_value_withheld(value):
    assert warehouse.redacted_detail(f"Failing row contains (1, {value}).", "gold.orders", "x") is None
    quoted = '"' + value.replace('"', '""') + '"'
    assert warehouse.redacted_detail(f"Column {quoted} of relation {quoted} is bad.", None, None) == (
        "Column (values withheld) of relation (values withheld) is bad."
    )


def test_a_key_detail_is_withheld_when_its_constraint_cannot_be_looked_up(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", raising=False)
    detail = 'Key (customer_id)=(99) is not present in table "customers".'
    assert warehouse.redacted_detail(detail, "gold.orders", "orders_customer_id_fkey") == (
        'Key (customer_id) (values withheld) is not present in table "customers".'
    )
    assert warehouse.redacted_detail("  ", "gold.orders", None) is None


@EXAMPLES
@given(value=VALUE)
def test_a_data_exceptions_message_withholds_the_input_it_quotes_and_a_constraints_keeps_its_names(value):
    quoted = '"' + value.replace('"', '""') + '"'
    data_error = psycopg2.errors.InvalidTextRepresentation("invalid input")
    constraint_error = psycopg2.errors.UniqueViolation("duplicate key")
    assert warehouse.redacted_primary(f"invalid input syntax for type integer: {quoted}", data_error) == (
        "invalid input syntax for type integer: (values withheld)"
    )
    message = f"duplicate key value violates unique constraint {quoted}"
    assert warehouse.redacted_primary(message, constraint_error) == message
