"""The Astro SDK's back-end of the SQL steps: each step is the SDK call with the project's
arguments, and the SDK's own load, merge and read give the providers' back-end's tables.

The steps are built in a DAG and read back, with no scheduler; the SDK's code paths run
against the embedded Postgres. The Astro SDK installs on the Airflow 2 profile only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

pytest.importorskip("astro", reason="the Astro SDK is not installed in this profile (it does not run on Airflow 3)")
pytest.importorskip(
    "hypothesis", reason="its sources come from test_providers.py, which uses hypothesis (a development tool)"
)

from astro.constants import FileType
from sqlalchemy import Column, Integer, Text

from include.shopstream.platform.compat import DAG
from include.shopstream.platform.names import LAKE_CONN_ID, WAREHOUSE_CONN_ID
from include.shopstream.platform.sql_steps import Table, astro_sdk, providers
from tests.unit.platform.sql_steps.test_providers import (
    CUSTOMER_COLUMNS,
    column_types,
    make_stock,
    rows_of,
    stock_columns,
    write_sources,
)

DATABASE = "shopstream_unit_astro_sdk"


def test_a_table_becomes_the_sdks_table_on_the_warehouse():
    sdk = astro_sdk.as_table(Table("orders_raw", "staging", columns=(Column("order_id", Integer),)))
    assert (sdk.name, sdk.metadata.schema, sdk.conn_id) == ("orders_raw", "staging", WAREHOUSE_CONN_ID)
    assert [c.name for c in sdk.columns] == ["order_id"]
    assert not sdk.temp, "a named table, never one of the SDK's tmp_astro tables"


def steps():
    """One step of each kind, built in a DAG as the pipelines build them."""
    with DAG("sdk_steps", start_date=datetime(2026, 11, 1, tzinfo=UTC), schedule=None):
        raw = astro_sdk.as_table(Table("orders_raw", "staging"))
        valid = astro_sdk.as_table(Table("orders_valid", "staging"))
        gold = astro_sdk.as_table(Table("orders"))
        load = astro_sdk.load_file("load", "s3://shopstream/raw/orders/", raw, filetype="csv", text_as_is=True)
        stock = astro_sdk.load_file("stock", "s3://shopstream/raw/s.ndjson", raw, filetype="ndjson", text_as_is=False)
        transform = astro_sdk.transform_file(
            "valid", "orders_valid.sql", valid, orders=load, day="2026-11-23", trigger_rule="all_done"
        )
        merge = astro_sdk.merge("merge", gold, transform, ["order_id", "status"], ["order_id"])
        export = astro_sdk.export_file("publish", gold, "s3://shopstream/gold/orders/orders.parquet")
    return SimpleNamespace(**{k: v.operator for k, v in locals().items() if hasattr(v, "operator")})


def test_a_load_reads_the_lake_file_replacing_its_table_text_as_is_only_when_asked():
    built = steps()
    assert (built.load.input_file.path, built.load.input_file.conn_id) == ("s3://shopstream/raw/orders/", LAKE_CONN_ID)
    assert (built.load.input_file.filetype, built.stock.input_file.filetype) == (FileType.CSV, FileType.NDJSON)
    assert (built.load.if_exists, built.load.use_native_support) == ("replace", False)
    options = built.load.load_options_list.get_by_class_name("PandasLoadOptions")
    assert (options.dtype, options.kwargs) == (str, {"keep_default_na": False, "na_values": [""]})
    assert built.stock.load_options_list._load_options is None, "other loads keep the SDK's own reading"


def test_a_transform_binds_its_parameters_and_the_trigger_rule_is_the_tasks():
    built = steps()
    assert built.transform.sql == "orders_valid.sql"
    assert set(built.transform.parameters) == {"orders", "day"}
    assert built.transform.parameters["day"] == "2026-11-23"
    assert built.transform.trigger_rule == "all_done"
    assert (built.transform.output_table.metadata.schema, built.transform.output_table.name) == (
        "staging",
        "orders_valid",
    )
    assert "load" in built.transform.upstream_task_ids


def test_a_merge_updates_on_conflict_with_the_key():
    built = steps()
    assert built.merge.target_conflict_columns == ["order_id"]
    assert built.merge.if_conflicts == "update"
    assert built.merge.columns == {"order_id": "order_id", "status": "status"}


def test_the_lake_path_is_the_load_or_export_steps_file():
    built = steps()
    assert astro_sdk.lake_path(built.load) == "s3://shopstream/raw/orders/"
    assert astro_sdk.lake_path(built.export) == "s3://shopstream/gold/orders/orders.parquet"
    assert built.export.if_exists == "replace"
    assert astro_sdk.lake_path(built.merge) is None


def test_a_merges_source_is_named_by_its_schema_and_name():
    named = SimpleNamespace(source_table=astro_sdk.as_table(Table("orders_valid__abc", "staging")))
    assert astro_sdk.source_table_name(named) == "staging.orders_valid__abc"
    unnamed = SimpleNamespace(source_table=SimpleNamespace(name="t", metadata=SimpleNamespace(schema=None)))
    assert astro_sdk.source_table_name(unnamed) is None
    assert astro_sdk.source_table_name(SimpleNamespace()) is None


# -- The SDK's code paths on the embedded Postgres, beside the providers' back-end --------------


@pytest.fixture(scope="module")
def warehouse(pg_server):
    from include.shopstream.platform.names import sql

    pg_server.ensure_database(DATABASE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", pg_server.url(DATABASE))
        from include.shopstream.platform.warehouse import warehouse_hook

        warehouse_hook().run(sql("warehouse_schema.sql"))
        yield warehouse_hook()


@pytest.mark.services
def test_the_sdk_loads_the_same_rows_and_types_as_the_providers(warehouse, tmp_path):
    write_sources(tmp_path)
    text = [Column(c, Text) for c in CUSTOMER_COLUMNS]
    tables = {}
    for backend in (providers, astro_sdk):
        name = backend.__name__.rsplit(".", 1)[-1]
        backend.load_into(str(tmp_path / "customers"), f"staging.customers_{name}", text, text_as_is=True)
        backend.load_into(str(tmp_path / "products.csv"), f"staging.products_{name}")
        backend.load_into(str(tmp_path / "stock.ndjson"), f"staging.stock_{name}", stock_columns(), filetype="ndjson")
        tables[name] = [
            (column_types(warehouse, f"staging.{t}_{name}"), rows_of(warehouse, f"staging.{t}_{name}"))
            for t in ("customers", "products", "stock")
        ]
    assert tables["astro_sdk"] == tables["providers"]
    customers = tables["astro_sdk"][0][1]
    assert [row[3] for row in customers] == ["NA", None, "null"], "'NA' and 'null' are texts, an empty field NULL"


def sdk_export(qualified: str, path: str) -> None:
    """What ``aql.export_to_file`` does with a table: the SDK's own export, here to a local file."""
    from astro.databases import create_database
    from astro.files import File

    database = create_database(WAREHOUSE_CONN_ID)
    try:
        database.export_table_to_file(astro_sdk._named(qualified), File(path), if_exists="replace")
    finally:
        database.sqlalchemy_engine.dispose()


@pytest.mark.services
def test_the_sdk_merges_reads_and_exports_a_table_as_the_providers_do(warehouse, tmp_path):
    import pandas as pd

    exports = {providers: providers.export_to, astro_sdk: sdk_export}
    results = {}
    for backend in (providers, astro_sdk):
        make_stock(warehouse, "gold.stock_merged", [("A1", 1, "old"), ("B2", 2, "untouched")])
        make_stock(warehouse, "staging.stock_new", [("A1", 10, "new"), ("C3", 30, "added")])
        for _ in range(2):  # a re-run changes nothing
            backend.merge_into("gold.stock_merged", "staging.stock_new", ["sku", "order", "note"], ["sku"])
        frame = backend.table_frame("gold.stock_merged").sort_values("sku").reset_index(drop=True)
        exported = tmp_path / f"{backend.__name__}.csv"
        exports[backend]("staging.stock_new", str(exported))
        results[backend.__name__] = (
            rows_of(warehouse, "gold.stock_merged"),
            frame.to_dict("records"),
            pd.read_csv(exported).to_dict("records"),
        )
    assert results[astro_sdk.__name__] == results[providers.__name__]
    merged, _, exported = results[astro_sdk.__name__]
    assert merged == [("A1", 10, "new"), ("B2", 2, "untouched"), ("C3", 30, "added")]
    assert exported == [{"sku": "A1", "order": 10, "note": "new"}, {"sku": "C3", "order": 30, "note": "added"}]
