"""The SQL steps' back-ends: which one runs, and the parts of each that need no database."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from include.shopstream.platform import pg, sql_steps
from include.shopstream.platform.compat import AIRFLOW_3
from include.shopstream.platform.sql_steps import BackendError, choose_backend


def test_the_sdk_is_the_default_where_it_runs_and_the_providers_elsewhere():
    assert choose_backend(None, airflow_3=False, sdk_installed=True) == "astro"
    assert choose_backend("", airflow_3=False, sdk_installed=True) == "astro"
    assert choose_backend(None, airflow_3=False, sdk_installed=False) == "providers"
    assert choose_backend(None, airflow_3=True, sdk_installed=True) == "providers"
    assert choose_backend(None, airflow_3=True, sdk_installed=False) == "providers"


def test_the_environment_variable_chooses_when_set():
    assert choose_backend("providers", airflow_3=False, sdk_installed=True) == "providers"
    assert choose_backend(" Providers ", airflow_3=True, sdk_installed=False) == "providers"
    assert choose_backend("astro", airflow_3=False, sdk_installed=True) == "astro"


@pytest.mark.parametrize(
    ("requested", "airflow_3", "installed", "message"),
    [
        ("astro", True, True, "does not run on Airflow 3"),
        ("astro", False, False, "is not installed"),
        ("sdk", False, True, "expected one of astro, providers"),
    ],
)
def test_a_back_end_that_cannot_run_here_is_refused_with_the_reason(requested, airflow_3, installed, message):
    with pytest.raises(BackendError, match=message):
        choose_backend(requested, airflow_3=airflow_3, sdk_installed=installed)


def test_this_process_runs_the_back_end_its_environment_chooses():
    assert choose_backend(os.environ.get(sql_steps.BACKEND_VARIABLE)) == sql_steps.BACKEND
    if AIRFLOW_3:
        assert sql_steps.BACKEND == "providers"


def test_a_staging_table_is_the_runs_own_and_a_gold_table_is_named_as_is():
    staged = sql_steps.table("orders_raw", "staging")
    gold = sql_steps.table("orders")
    names = {
        "astro": lambda t: (t.metadata.schema, t.name, t.conn_id),
        "providers": lambda t: (t.schema, t.name, t.conn_id),
    }[sql_steps.BACKEND]
    schema, name, conn_id = names(staged)
    assert (schema, conn_id) == ("staging", "shopstream_warehouse")
    assert name.startswith("orders_raw__{{ macros.uuid.uuid5(")
    assert names(gold) == ("gold", "orders", "shopstream_warehouse")


# The providers' back-end: what it does without a database.


def test_a_transform_template_gets_tables_as_identifiers_and_other_values_bound():
    from include.shopstream.platform.sql_steps.providers import render_sql

    template = "SELECT * FROM {{ orders }} WHERE day = {{ day }} AND note LIKE '50%' AND t = {{ other }}"
    statement, values = render_sql(
        template,
        {"orders": {"table": "staging.orders_valid__abc"}, "day": "2026-11-23", "other": sql_steps.Table("x", "gold")},
    )
    assert statement == (
        'SELECT * FROM "staging"."orders_valid__abc" WHERE day = %(day)s AND note LIKE \'50%%\' AND t = "gold"."x"'
    )
    assert values == {"day": "2026-11-23"}


def test_a_transform_template_naming_an_unknown_parameter_fails():
    import jinja2

    from include.shopstream.platform.sql_steps.providers import render_sql

    with pytest.raises(jinja2.UndefinedError):
        render_sql("SELECT * FROM {{ missing }}", {})


def test_a_hostile_table_name_stays_one_identifier():
    from include.shopstream.platform.sql_steps.providers import render_sql

    statement, _ = render_sql("SELECT 1 FROM {{ t }}", {"t": {"table": 'staging.x"; DROP TABLE gold.orders; --'}})
    assert statement == 'SELECT 1 FROM "staging"."x""; DROP TABLE gold.orders; --"'


def test_a_steps_table_is_known_in_each_shape_it_arrives_in():
    from include.shopstream.platform.sql_steps.providers import resolved_table

    assert resolved_table(sql_steps.Table("orders", "gold")) == "gold.orders"
    assert resolved_table({"table": "staging.orders_valid__abc"}) == "staging.orders_valid__abc"
    assert resolved_table("2026-11-23") is None
    assert resolved_table({"table": "x", "rows": 3}) is None


def test_a_merges_source_is_named_for_data_errors_once_rendered():
    from include.shopstream.platform.sql_steps.providers import source_table_name

    assert source_table_name(SimpleNamespace(source_table={"table": "staging.orders_valid__abc"})) == (
        "staging.orders_valid__abc"
    )
    assert source_table_name(SimpleNamespace(source_table="staging.customers_valid__abc")) == (
        "staging.customers_valid__abc"
    )
    assert source_table_name(SimpleNamespace(source_table="staging.x__{{ run_id }}")) is None
    assert source_table_name(SimpleNamespace()) is None


def test_an_export_refuses_a_format_it_cannot_tell():
    from include.shopstream.platform.sql_steps.providers import export_to

    with pytest.raises(ValueError, match=r"expected \.csv or \.parquet"):
        export_to("gold.orders", "s3://shopstream/gold/orders/orders.json")


def test_a_local_folder_is_read_part_by_part_in_order(tmp_path):
    from include.shopstream.platform.sql_steps.providers import lake_objects

    for name in ("part-00001.csv", "part-00000.csv"):
        (tmp_path / name).write_text("a\n1\n")
    assert lake_objects(str(tmp_path)) == [str(tmp_path / "part-00000.csv"), str(tmp_path / "part-00001.csv")]
    assert lake_objects(str(tmp_path / "part-00001.csv")) == [str(tmp_path / "part-00001.csv")]


# Data errors are told by SQLSTATE, so that psycopg2 and psycopg 3 errors are judged alike.


@pytest.mark.parametrize(
    ("state", "data_error", "constraint_or_data"),
    [("23502", False, True), ("23505", False, True), ("22P02", True, True), ("22003", True, True),
     ("08006", False, False), ("57014", False, False), (None, False, False)],
)  # fmt: skip
def test_constraint_and_data_errors_are_told_by_their_sqlstate_class(state, data_error, constraint_or_data):
    error = SimpleNamespace(diag=SimpleNamespace(sqlstate=state))
    assert pg.is_data_exception(error) is data_error
    assert pg.is_constraint_or_data_error(error) is constraint_or_data


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


# Both back-ends on a real warehouse (embedded Postgres): the same tables from the same files.

CUSTOMERS_CSV = (
    "customer_id,email,full_name,country,created_at,updated_at\n"
    '1,a@example.com,"Smith, ""J""",NA,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z\n'
    '2,,007,"",2026-11-01T00:00:00Z,2026-11-01T00:00:00Z\n'
    '3,c@example.com,"two\nlines",null,2026-11-01T00:00:00Z,2026-11-01T00:00:00Z\n'
)
PRODUCTS_CSV = "sku,product_id,name,category,unit_price\nA1,1,Widget,toys,9.99\nB2,2,Gadget,tools,1.5\n"
STOCK_NDJSON = (
    '{"sku": "A1", "warehouse": "w1", "on_hand": 5, "reserved": 1, "as_of": "2026-11-23T02:00:00Z"}\n'
    '{"sku": "B2", "warehouse": "w1", "on_hand": 0, "reserved": 0, "as_of": "2026-11-23T02:00:00Z"}\n'
)


@pytest.fixture(scope="module")
def warehouse_db(pg_server):
    from include.shopstream.platform.names import WAREHOUSE_CONN_ID, sql

    pg_server.ensure_database("sql_steps")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", pg_server.url("sql_steps"))
        from include.shopstream.platform.warehouse import warehouse_hook

        warehouse_hook().run(sql("warehouse_schema.sql"))
        yield warehouse_hook()


def back_ends():
    """The back-end modules this profile can run: the providers', and the SDK's where it installs."""
    import importlib

    modules = [importlib.import_module("include.shopstream.platform.sql_steps.providers")]
    if not AIRFLOW_3 and importlib.util.find_spec("astro") is not None:
        modules.append(importlib.import_module("include.shopstream.platform.sql_steps.astro_sdk"))
    return modules


def table_state(hook, table: str) -> tuple[list, list]:
    schema, name = table.split(".")
    types = hook.get_records(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        parameters=(schema, name),
    )
    return [tuple(t) for t in types], [tuple(r) for r in hook.get_records(f"SELECT * FROM {table} ORDER BY 1")]


@pytest.mark.services
def test_each_back_end_loads_the_same_rows_and_types(warehouse_db, tmp_path):
    from sqlalchemy import Column, DateTime, Integer, Text

    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "part-00000.csv").write_text(CUSTOMERS_CSV)
    (tmp_path / "products.csv").write_text(PRODUCTS_CSV)
    (tmp_path / "stock.ndjson").write_text(STOCK_NDJSON)
    text = [Column(c, Text) for c in ("customer_id", "email", "full_name", "country", "created_at", "updated_at")]
    stock = [Column("sku", Text), Column("warehouse", Text), Column("on_hand", Integer), Column("reserved", Integer)]
    stock.append(Column("as_of", DateTime(timezone=True)))
    states = {}
    for backend in back_ends():
        name = backend.__name__.rsplit(".", 1)[-1]
        backend.load_into(str(tmp_path / "customers"), f"staging.customers_{name}", text, text_as_is=True)
        backend.load_into(str(tmp_path / "products.csv"), f"staging.products_{name}")
        backend.load_into(str(tmp_path / "stock.ndjson"), f"staging.stock_{name}", stock, filetype="ndjson")
        states[name] = [table_state(warehouse_db, f"staging.{t}_{name}") for t in ("customers", "products", "stock")]
    customers, products, stock_rows = states["providers"]
    # Every value as the text it is ("NA", "null", "007", a quoted newline); an empty field, quoted or not, NULL.
    assert [row[1:4] for row in customers[1]] == [
        ("a@example.com", 'Smith, "J"', "NA"),
        (None, "007", None),
        ("c@example.com", "two\nlines", "null"),
    ]
    assert [t for _, t in products[0]] == ["text", "bigint", "text", "text", "double precision"]
    assert [t for _, t in stock_rows[0]] == ["text", "text", "integer", "integer", "timestamp with time zone"]
    if "astro_sdk" in states:
        assert states["astro_sdk"] == states["providers"]


@pytest.mark.services
def test_each_back_end_merges_and_exports_alike(warehouse_db, tmp_path):
    import pandas as pd

    columns = ["sku", "warehouse", "on_hand", "reserved", "available", "as_of", "loaded_at"]
    warehouse_db.run(
        "DROP TABLE IF EXISTS staging.stock_in; CREATE TABLE staging.stock_in AS SELECT * FROM (VALUES"
        " ('A1', 'w1', 5, 1, 4, '2026-11-23T02:00:00Z'::timestamptz, now()),"
        " ('C3', 'w2', 7, 0, 7, '2026-11-23T02:00:00Z'::timestamptz, now())) AS v(" + ", ".join(columns) + ")"
    )
    results = {}
    for backend in back_ends():
        name = backend.__name__.rsplit(".", 1)[-1]
        warehouse_db.run(
            "TRUNCATE gold.inventory; INSERT INTO gold.inventory VALUES"
            " ('A1', 'w0', 1, 0, 1, '2026-11-22T02:00:00Z', now()),"
            " ('B2', 'w0', 2, 0, 2, '2026-11-22T02:00:00Z', now())"
        )
        backend.merge_into("gold.inventory", "staging.stock_in", columns, ["sku"])
        merged = warehouse_db.get_records("SELECT sku, warehouse, on_hand FROM gold.inventory ORDER BY sku")
        if name == "providers":
            backend.export_to("staging.stock_in", str(tmp_path / f"{name}.csv"))
        else:  # the SDK writes a table's CSV through pandas, to a local file as to the lake
            from astro.files import File

            from include.shopstream.platform.sql_steps.astro_sdk import _named

            backend.table_frame("staging.stock_in")  # the same read the SDK's export makes
            from astro.databases import create_database

            database = create_database(warehouse_db.postgres_conn_id)
            try:
                database.export_table_to_file(
                    _named("staging.stock_in"), File(str(tmp_path / f"{name}.csv")), if_exists="replace"
                )
            finally:
                database.sqlalchemy_engine.dispose()
        exported = pd.read_csv(tmp_path / f"{name}.csv")
        results[name] = (merged, exported[["sku", "warehouse", "on_hand"]].to_dict("records"))
    merged, exported = results["providers"]
    assert [tuple(r) for r in merged] == [("A1", "w1", 5), ("B2", "w0", 2), ("C3", "w2", 7)]
    assert exported == [
        {"sku": "A1", "warehouse": "w1", "on_hand": 5},
        {"sku": "C3", "warehouse": "w2", "on_hand": 7},
    ]
    if "astro_sdk" in results:
        assert results["astro_sdk"] == results["providers"]


def test_an_error_raised_by_hand_is_judged_by_its_class():
    """No server, no SQLSTATE: psycopg2's class says what the SQLSTATE would have."""
    import psycopg2

    assert pg.is_constraint_or_data_error(psycopg2.errors.UniqueViolation("duplicate key"))
    assert pg.is_data_exception(psycopg2.errors.InvalidTextRepresentation("invalid input"))
    assert not pg.is_constraint_or_data_error(psycopg2.OperationalError("connection lost"))
