"""The providers' back-end of the SQL steps: COPY loads and exports, transforms, merges and the
steps' operators, with the clear errors a bad input gets.

What needs no database runs as it is; the rest against the embedded Postgres (the warehouse
connection pointed at a database of its own) and an in-process moto S3 for the lake.
"""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, Text

from include.shopstream.platform import pg, sql_steps
from include.shopstream.platform.compat import AirflowFailException
from include.shopstream.platform.names import BUCKET, WAREHOUSE_CONN_ID
from include.shopstream.platform.sql_steps import providers

DATABASE = "shopstream_unit_providers"

# What a Postgres text can hold: any character but NUL (and no lone surrogates); "\r" included.
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# -- Without a database -------------------------------------------------------------------------


def test_a_transform_template_gets_tables_as_identifiers_and_other_values_bound():
    template = "SELECT * FROM {{ orders }} WHERE day = {{ day }} AND note LIKE '50%' AND t = {{ other }}"
    statement, values = providers.render_sql(
        template,
        {"orders": {"table": "staging.orders_valid__abc"}, "day": "2026-11-23", "other": sql_steps.Table("x", "gold")},
    )
    assert statement == (
        'SELECT * FROM "staging"."orders_valid__abc" WHERE day = %(day)s AND note LIKE \'50%%\' AND t = "gold"."x"'
    )
    assert values == {"day": "2026-11-23"}


def test_a_transform_template_naming_an_unknown_parameter_fails():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        providers.render_sql("SELECT * FROM {{ missing }}", {})


def test_a_hostile_table_name_stays_one_identifier():
    statement, _ = providers.render_sql(
        "SELECT 1 FROM {{ t }}", {"t": {"table": 'staging.x"; DROP TABLE gold.orders; --'}}
    )
    assert statement == 'SELECT 1 FROM "staging"."x""; DROP TABLE gold.orders; --"'


def test_a_steps_table_is_known_in_each_shape_it_arrives_in():
    assert providers.resolved_table(sql_steps.Table("orders", "gold")) == "gold.orders"
    assert providers.resolved_table({"table": "staging.orders_valid__abc"}) == "staging.orders_valid__abc"
    assert providers.resolved_table("2026-11-23") is None
    assert providers.resolved_table({"table": "x", "rows": 3}) is None


def test_a_merges_source_is_named_for_data_errors_once_rendered():
    source_table_name = providers.source_table_name
    assert source_table_name(SimpleNamespace(source_table={"table": "staging.orders_valid__abc"})) == (
        "staging.orders_valid__abc"
    )
    assert source_table_name(SimpleNamespace(source_table="staging.customers_valid__abc")) == (
        "staging.customers_valid__abc"
    )
    assert source_table_name(SimpleNamespace(source_table="staging.x__{{ run_id }}")) is None
    assert source_table_name(SimpleNamespace()) is None


def test_an_export_refuses_a_format_it_cannot_tell():
    with pytest.raises(ValueError, match=r"expected \.csv or \.parquet"):
        providers.export_to("gold.orders", "s3://shopstream/gold/orders/orders.json")


def test_a_local_folder_is_read_part_by_part_in_order(tmp_path):
    for name in ("part-00001.csv", "part-00000.csv"):
        (tmp_path / name).write_text("a\n1\n")
    assert providers.lake_objects(str(tmp_path)) == [
        str(tmp_path / "part-00000.csv"),
        str(tmp_path / "part-00001.csv"),
    ]
    assert providers.lake_objects(str(tmp_path / "part-00001.csv")) == [str(tmp_path / "part-00001.csv")]


def test_a_dataframe_step_keeps_column_names_as_they_are_or_refuses():
    with pytest.raises(ValueError, match="keeps column names as they are"):
        providers.dataframe(columns_names_capitalization="lower")


def test_a_load_and_an_export_step_name_their_lake_path_and_a_merge_none():
    load = providers.LoadFileOperator(
        task_id="load", path="s3://shopstream/raw/orders/", output_table=sql_steps.Table("o", "staging"),
        filetype="csv", text_as_is=True,
    )  # fmt: skip
    export = providers.ExportFileOperator(task_id="publish", source=sql_steps.Table("o"), path="s3://shopstream/o.csv")
    merge = providers.MergeOperator(
        task_id="merge", target_table=sql_steps.Table("o"), source_table=sql_steps.Table("o", "staging"),
        columns=["id"], key=["id"],
    )  # fmt: skip
    assert providers.lake_path(load) == "s3://shopstream/raw/orders/"
    assert providers.lake_path(export) == "s3://shopstream/o.csv"
    assert providers.lake_path(merge) is None
    assert (load.output_table, export.source, merge.source_table) == ("staging.o", "gold.o", "staging.o")


# -- On the embedded Postgres and moto's S3 ------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(pg_server):
    from include.shopstream.platform.names import sql

    pg_server.ensure_database(DATABASE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", pg_server.url(DATABASE))
        from include.shopstream.platform.warehouse import warehouse_hook

        warehouse_hook().run(sql("warehouse_schema.sql"))
        yield warehouse_hook()


def rows_of(hook, table: str) -> list[tuple]:
    return [tuple(r) for r in hook.get_records(f"SELECT * FROM {table} ORDER BY 1")]


def column_types(hook, table: str) -> list[str]:
    schema, name = table.split(".")
    return [
        r[0]
        for r in hook.get_records(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            parameters=(schema, name),
        )
    ]


CUSTOMERS_CSV = (
    "customer_id,email,full_name,country,created_at,updated_at\n"
    '1,a@example.com,"Smith, ""J""",NA,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z\n'
    '2,,007,"",2026-11-01T00:00:00Z,2026-11-01T00:00:00Z\n'
    '3,c@example.com,"two\nlines",null,2026-11-01T00:00:00Z,2026-11-01T00:00:00Z\n'
)
CUSTOMER_COLUMNS = ("customer_id", "email", "full_name", "country", "created_at", "updated_at")
PRODUCTS_CSV = "sku,product_id,name,category,unit_price\nA1,1,Widget,toys,9.99\nB2,2,Gadget,tools,1.5\n"
STOCK_NDJSON = (
    '{"sku": "A1", "warehouse": "w1", "on_hand": 5, "reserved": 1, "as_of": "2026-11-23T02:00:00Z"}\n'
    '{"sku": "B2", "warehouse": "w1", "on_hand": 0, "reserved": 0, "as_of": "2026-11-23T02:00:00Z"}\n'
)


def stock_columns() -> list[Column]:
    columns = [Column("sku", Text), Column("warehouse", Text), Column("on_hand", Integer), Column("reserved", Integer)]
    return [*columns, Column("as_of", DateTime(timezone=True))]


def write_sources(folder: Path) -> None:
    """The three files each back-end loads: a folder of CSV parts, one CSV, one NDJSON."""
    (folder / "customers").mkdir()
    (folder / "customers" / "part-00000.csv").write_text(CUSTOMERS_CSV)
    (folder / "products.csv").write_text(PRODUCTS_CSV)
    (folder / "stock.ndjson").write_text(STOCK_NDJSON)


@pytest.mark.services
def test_a_load_reads_text_as_is_infers_types_or_takes_the_declared_ones(warehouse, tmp_path):
    write_sources(tmp_path)
    text = [Column(c, Text) for c in CUSTOMER_COLUMNS]
    assert providers.load_into(str(tmp_path / "customers"), "staging.customers_in", text, text_as_is=True) == 3
    assert providers.load_into(str(tmp_path / "products.csv"), "staging.products_in") == 2
    assert providers.load_into(str(tmp_path / "stock.ndjson"), "staging.stock_in", stock_columns(), filetype="ndjson")
    # Every value as the text it is ("NA", "null", "007", a quoted newline); an empty field, quoted or not, NULL.
    assert [row[1:4] for row in rows_of(warehouse, "staging.customers_in")] == [
        ("a@example.com", 'Smith, "J"', "NA"),
        (None, "007", None),
        ("c@example.com", "two\nlines", "null"),
    ]
    assert column_types(warehouse, "staging.products_in") == ["text", "bigint", "text", "text", "double precision"]
    assert column_types(warehouse, "staging.stock_in") == [
        "text",
        "text",
        "integer",
        "integer",
        "timestamp with time zone",
    ]
    assert [row[:3] for row in rows_of(warehouse, "staging.stock_in")] == [("A1", "w1", 5), ("B2", "w1", 0)]


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.mark.services
@EXAMPLES
@given(values=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=6))
def test_any_text_is_loaded_and_exported_as_it_is(warehouse, values):
    rows = [(str(n), *pair) for n, pair in enumerate(values)]
    with tempfile.TemporaryDirectory() as folder:
        source, exported = Path(folder) / "in.csv", Path(folder) / "out.csv"
        write_csv(source, ["id", "name", "note"], rows)
        columns = [Column("id", Text), Column("name", Text), Column("note", Text)]
        assert providers.load_into(str(source), "staging.hostile", columns, text_as_is=True) == len(rows)
        loaded = warehouse.get_records("SELECT id, name, note FROM staging.hostile ORDER BY id::int")
        assert [tuple(r) for r in loaded] == [tuple(v or None for v in row) for row in rows]

        assert providers.export_to("staging.hostile", str(exported)) == len(rows)
        with open(exported, newline="", encoding="utf-8") as file:
            assert [tuple(r) for r in csv.reader(file)] == [("id", "name", "note"), *rows]


@pytest.mark.services
def test_a_load_that_fails_leaves_the_table_as_it_was(warehouse, tmp_path):
    columns = [Column("id", Text), Column("name", Text)]
    write_csv(tmp_path / "good.csv", ["id", "name"], [("1", "kept")])
    providers.load_into(str(tmp_path / "good.csv"), "staging.nul_in", columns, text_as_is=True)
    (tmp_path / "nul.csv").write_bytes(b"id,name\n2,a\x00b\n")
    with pytest.raises(Exception) as failed:  # the DataError class of whichever driver the hook hands out
        providers.load_into(str(tmp_path / "nul.csv"), "staging.nul_in", columns, text_as_is=True)
    assert pg.is_data_exception(pg.database_error(failed.value))
    assert rows_of(warehouse, "staging.nul_in") == [("1", "kept")]


@pytest.mark.services
@pytest.mark.parametrize("text_as_is", [True, False])
def test_a_file_without_rows_is_refused_by_name(warehouse, tmp_path, text_as_is):
    (tmp_path / "empty.csv").write_text("id,name\n")
    with pytest.raises(ValueError, match=f"Can't load empty dataframe: {tmp_path / 'empty.csv'} has no rows"):
        providers.load_into(
            str(tmp_path / "empty.csv"), "staging.empty_in", [Column("id", Text), Column("name", Text)],
            text_as_is=text_as_is,
        )  # fmt: skip


@pytest.mark.services
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/tmp/orders.parquet", "goes to the lake, not to /tmp/orders.parquet"),
        ("s3://elsewhere/gold/orders.parquet", "goes to s3://shopstream/, not to s3://elsewhere/"),
    ],
)
def test_a_tables_parquet_export_outside_the_lake_is_refused(warehouse, path, message):
    with pytest.raises(ValueError, match=message):
        providers.export_to("gold.orders", path)


def test_a_parquet_export_outside_the_lake_is_refused_before_the_warehouse_is_asked(monkeypatch):
    """The error names the path, the caller's mistake, even where no warehouse connection is defined."""
    monkeypatch.delenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", raising=False)  # no such connection here
    with pytest.raises(ValueError, match=r"goes to the lake, not to /tmp/orders\.parquet"):
        providers.export_to("gold.orders", "/tmp/orders.parquet")


def put(lake, key: str, body: str) -> None:
    lake.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


@pytest.mark.services
def test_a_lake_folder_is_loaded_part_by_part_and_nothing_beside_it(warehouse, lake):
    put(lake, "raw/orders/ds=2026-11-23/", "")  # a folder marker, as consoles create
    put(lake, "raw/orders/ds=2026-11-23/part-00001.csv", "id,name\n3,c\n")
    put(lake, "raw/orders/ds=2026-11-23/part-00000.csv", "id,name\n1,a\n2,b\n")
    put(lake, "raw/orders/ds=2026-11-230/part-00000.csv", "id,name\n9,not this day\n")
    folder = "s3://shopstream/raw/orders/ds=2026-11-23/"
    assert providers.lake_objects(folder) == [folder + "part-00000.csv", folder + "part-00001.csv"]
    columns = [Column("id", Text), Column("name", Text)]
    assert providers.load_into(folder, "staging.orders_in", columns, text_as_is=True) == 3
    assert rows_of(warehouse, "staging.orders_in") == [("1", "a"), ("2", "b"), ("3", "c")]


@pytest.mark.services
def test_an_empty_lake_folder_is_refused_by_name(lake):
    with pytest.raises(FileNotFoundError, match="no file under s3://shopstream/raw/orders/ds=2026-01-01/"):
        providers.lake_objects("s3://shopstream/raw/orders/ds=2026-01-01/")


def make_stock(hook, table: str, rows: list[tuple]) -> None:
    hook.run(f'DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (sku text PRIMARY KEY, "order" int, note text)')
    for row in rows:
        hook.run(f"INSERT INTO {table} VALUES (%s, %s, %s)", parameters=row)


@pytest.mark.services
def test_a_merge_updates_and_inserts_on_the_key_and_a_rerun_changes_nothing(warehouse):
    make_stock(warehouse, "gold.stock_merged", [("A1", 1, "old"), ("B2", 2, "untouched")])
    make_stock(warehouse, "staging.stock_new", [("A1", 10, "new"), ("C3", 30, "added")])
    columns = ["sku", "order", "note"]
    assert providers.merge_into("gold.stock_merged", "staging.stock_new", columns, ["sku"]) == 2
    merged = rows_of(warehouse, "gold.stock_merged")
    assert merged == [("A1", 10, "new"), ("B2", 2, "untouched"), ("C3", 30, "added")]
    assert providers.merge_into("gold.stock_merged", "staging.stock_new", columns, ["sku"]) == 2
    assert rows_of(warehouse, "gold.stock_merged") == merged, "no lost or doubled rows on a re-run"


@pytest.mark.services
def test_a_merge_that_breaks_a_constraint_fails_at_once_naming_keys_and_writes_nothing(warehouse):
    warehouse.run(
        "DROP TABLE IF EXISTS gold.stock_checked;"
        " CREATE TABLE gold.stock_checked (sku text PRIMARY KEY, on_hand int NOT NULL CHECK (on_hand >= 0))"
    )
    warehouse.run("INSERT INTO gold.stock_checked VALUES ('A1', 1)")
    warehouse.run(
        "DROP TABLE IF EXISTS staging.stock_checked_in; CREATE TABLE staging.stock_checked_in (sku text, on_hand int);"
        " INSERT INTO staging.stock_checked_in VALUES ('A1', 5), ('B2', -1), ('C3', -4), ('D4', 2)"
    )
    with pytest.raises(AirflowFailException) as failed:
        providers.merge_into("gold.stock_checked", "staging.stock_checked_in", ["sku", "on_hand"], ["sku"])
    message = str(failed.value)
    assert "CheckViolation on gold.stock_checked, constraint stock_checked_on_hand_check" in message
    assert "offending keys in staging.stock_checked_in: B2, C3" in message
    assert rows_of(warehouse, "gold.stock_checked") == [("A1", 1)]


@pytest.mark.services
def test_a_transform_replaces_its_table_with_values_bound_not_spliced(warehouse, monkeypatch, tmp_path):
    from include.shopstream.platform import names

    monkeypatch.setattr(names, "SQL_DIR", tmp_path)
    (tmp_path / "noted.sql").write_text("SELECT sku, note FROM {{ stock }} WHERE note <> {{ note }} ORDER BY sku")
    make_stock(warehouse, "staging.stock_src", [("A1", 1, "keep"), ("B2", 2, "x'; DROP TABLE gold.orders; --")])
    parameters = {"stock": {"table": "staging.stock_src"}, "note": "x'; DROP TABLE gold.orders; --"}
    for _ in range(2):
        assert providers.transform_into("noted.sql", "staging.stock_noted", parameters) == 1
        assert rows_of(warehouse, "staging.stock_noted") == [("A1", "keep")]
    assert warehouse.get_first("SELECT to_regclass('gold.orders') IS NOT NULL")[0]


@pytest.mark.services
def test_a_table_is_exported_to_the_lake_as_csv_or_parquet(warehouse, lake):
    make_stock(warehouse, "staging.stock_out", [("A1", 1, 'a, "quoted"\nnote'), ("B2", None, None)])
    assert providers.export_to("staging.stock_out", "s3://shopstream/gold/stock/stock.csv") == 2
    body = lake.get_object(Bucket=BUCKET, Key="gold/stock/stock.csv")["Body"].read().decode()
    assert list(csv.reader(io.StringIO(body, newline=""))) == [
        ["sku", "order", "note"],
        ["A1", "1", 'a, "quoted"\nnote'],
        ["B2", "", ""],
    ]
    assert providers.export_to({"table": "staging.stock_out"}, "s3://shopstream/gold/stock/stock.parquet") == 2
    table = pq.read_table(io.BytesIO(lake.get_object(Bucket=BUCKET, Key="gold/stock/stock.parquet")["Body"].read()))
    assert table.to_pydict() == {"sku": ["A1", "B2"], "order": [1, None], "note": ['a, "quoted"\nnote', None]}


@pytest.mark.services
def test_an_empty_tables_parquet_export_still_has_its_columns(warehouse, lake):
    make_stock(warehouse, "staging.stock_none", [])
    assert providers.export_to("staging.stock_none", "s3://shopstream/gold/stock/none.parquet") == 0
    empty = pq.read_table(io.BytesIO(lake.get_object(Bucket=BUCKET, Key="gold/stock/none.parquet")["Body"].read()))
    assert (empty.num_rows, empty.column_names) == (0, ["sku", "order", "note"])


def test_a_dataframe_is_exported_to_a_local_file_in_either_format(tmp_path):
    frame = pd.DataFrame({"sku": ["A1", "B2"], "on_hand": [1, 2]})
    assert providers.export_to(frame, str(tmp_path / "f.csv")) == 2
    assert (tmp_path / "f.csv").read_text() == "sku,on_hand\nA1,1\nB2,2\n"
    assert providers.export_to(frame, str(tmp_path / "f.parquet")) == 2
    assert pd.read_parquet(tmp_path / "f.parquet").equals(frame)


@pytest.mark.services
def test_a_dataframe_step_gets_its_tables_as_frames_and_other_arguments_as_they_are(warehouse):
    make_stock(warehouse, "staging.stock_frame", [("A1", 3, "n")])

    @providers.dataframe(task_id="frame")
    def doubled(stock, factor):
        return stock.assign(order=stock["order"] * factor)

    frame = doubled.function({"table": "staging.stock_frame"}, factor=2)
    assert frame.to_dict("records") == [{"sku": "A1", "order": 6, "note": "n"}]


@pytest.mark.services
def test_each_steps_xcom_is_its_table_which_the_next_step_takes(warehouse, tmp_path, monkeypatch):
    from include.shopstream.platform import names

    monkeypatch.setattr(names, "SQL_DIR", tmp_path)
    (tmp_path / "stock_valid.sql").write_text('SELECT sku, "order", note FROM {{ raw }} WHERE note IS NOT NULL')
    write_csv(tmp_path / "stock.csv", ["sku", "order", "note"], [("A1", "7", "x"), ("B2", "8", "")])
    make_stock(warehouse, "gold.stock_steps", [("A1", 1, "old")])
    raw = providers.LoadFileOperator(
        task_id="load", path=str(tmp_path / "stock.csv"), output_table=sql_steps.Table("stock_raw", "staging"),
        filetype="csv", text_as_is=False,
    ).execute({})  # fmt: skip
    assert raw == {"table": "staging.stock_raw"}
    valid = providers.TransformFileOperator(
        task_id="valid", sql_file="stock_valid.sql", output_table=sql_steps.Table("stock_valid", "staging"),
        parameters={"raw": raw},
    ).execute({})  # fmt: skip
    assert valid == {"table": "staging.stock_valid"}
    merged = providers.MergeOperator(
        task_id="merge", target_table=sql_steps.Table("stock_steps"), source_table=valid,
        columns=["sku", "order", "note"], key=["sku"],
    ).execute({})  # fmt: skip
    assert merged == {"table": "gold.stock_steps"}
    assert rows_of(warehouse, "gold.stock_steps") == [("A1", 7, "x")]
    path = str(tmp_path / "stock_steps.csv")
    assert providers.ExportFileOperator(task_id="publish", source=merged, path=path).execute({}) == path
    assert Path(path).read_text() == "sku,order,note\nA1,7,x\n"
