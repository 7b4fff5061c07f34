"""orders: the extracts of a data interval, the batches' tables and columns, and the bad-row threshold.

The extracts run as their tasks would on a source database of known rows (the embedded Postgres),
into a lake that records what they write; the batches' valid rows are read against the
warehouse schema's gold tables. The threshold task runs on row counts its hook is given.
"""

from __future__ import annotations

import csv
import io
import re
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.pipelines import orders
from include.shopstream.pipelines.orders import BATCHES, CUSTOMER_COLUMNS, RAW_ORDER_COLUMNS, batch_tables
from include.shopstream.platform.compat import AirflowFailException
from include.shopstream.platform.names import STAGING, sql
from tests.conftest import PROJECT

pytestmark = [pytest.mark.services, pytest.mark.devtools]

EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)
SOURCE, WAREHOUSE = "shopstream_unit_orders_source", "shopstream_unit_orders_warehouse"
START = datetime(2026, 11, 13, 2, tzinfo=UTC)
END = START + timedelta(days=1)
THRESHOLD_VARIABLE = "AIRFLOW_VAR_SHOPSTREAM_BAD_ROW_THRESHOLD"


def execute(url: str, statement: str, params=None) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


class Lake:
    """The lake as the extracts use it, objects by key."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}

    def list_keys(self, bucket_name, prefix):
        return [key for key in self.objects if key.startswith(prefix)]

    def delete_objects(self, bucket, keys):
        for key in keys:
            del self.objects[key]

    def load_file(self, filename, key, bucket_name, replace):
        assert (bucket_name, replace) == ("shopstream", True)
        self.objects[key] = Path(filename).read_bytes()

    def rows(self, key: str) -> list[dict]:
        return list(csv.DictReader(io.StringIO(self.objects[key].decode())))


@pytest.fixture(scope="module")
def source(pg_server):
    """A source database: three customers, one product, and orders updated around the interval's edges."""
    pg_server.ensure_database(SOURCE)
    url = pg_server.url(SOURCE)
    execute(url, (PROJECT / "localdev" / "sql" / "source_schema.sql").read_text())
    execute(url, "TRUNCATE orders, products, customers RESTART IDENTITY")
    execute(url, "INSERT INTO products VALUES (1, 'SKU-1', 'Book', 'books', 9.99, %s)", (START,))
    for customer_id in (3, 1, 2):
        execute(
            url,
            "INSERT INTO customers VALUES (%s, %s, 'Name', 'DE', %s, %s)",
            (customer_id, f"c{customer_id}@example.com", START, START),
        )
    updated = [
        START - timedelta(microseconds=1),
        START,
        START + timedelta(hours=12),
        END - timedelta(microseconds=1),
        END,
    ]
    for order_id, moment in enumerate(updated, start=100):
        execute(
            url,
            "INSERT INTO orders (order_id, customer_id, product_id, quantity, amount, status, created_at, updated_at)"
            " VALUES (%s, 1, 1, 1, 9.99, 'paid', %s, %s)",
            (order_id, moment, moment),
        )
    return url


@pytest.fixture
def lake(monkeypatch, source):
    from include.shopstream.platform import lake as lake_module

    recorder = Lake()
    monkeypatch.setattr(lake_module, "lake_hook", lambda: recorder)
    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_SOURCE", source)
    return recorder


def test_the_orders_extract_holds_the_orders_updated_in_the_data_interval_end_excluded(lake):
    extracted = orders.extract_orders.function(data_interval_start=START, data_interval_end=END)
    assert extracted == {"rows": 3, "parts": 1, "uri": "s3://shopstream/raw/orders/ds=2026-11-13/"}
    rows = lake.rows("raw/orders/ds=2026-11-13/part-00000.csv")
    assert [int(row["order_id"]) for row in rows] == [101, 102, 103]
    assert [(row["sku"], row["category"]) for row in rows] == [("SKU-1", "books")] * 3


def test_the_extracts_columns_are_those_of_their_staging_tables(lake):
    orders.extract_orders.function(data_interval_start=START, data_interval_end=END)
    orders.extract_customers.function(data_interval_start=START)
    assert tuple(lake.rows("raw/orders/ds=2026-11-13/part-00000.csv")[0]) == RAW_ORDER_COLUMNS
    customers = lake.rows("raw/customers/ds=2026-11-13/part-00000.csv")
    assert tuple(customers[0]) == CUSTOMER_COLUMNS
    assert [row["customer_id"] for row in customers] == ["1", "2", "3"], "every customer, every day"


def test_a_second_extract_of_the_day_replaces_the_first(lake):
    lake.objects["raw/orders/ds=2026-11-13/part-00007.csv"] = b"left over from an earlier try"
    orders.extract_orders.function(data_interval_start=START, data_interval_end=END)
    assert list(lake.objects) == ["raw/orders/ds=2026-11-13/part-00000.csv"]


def test_a_day_without_new_or_changed_orders_skips_loading():
    assert orders.has_orders.function({"rows": 0, "parts": 1}) is False
    assert orders.has_orders.function({"rows": 1, "parts": 1}) is True


def qualified(table) -> str:
    """``schema.name`` of a step's table (an SDK ``Table``, or the SQL steps' own)."""
    metadata = getattr(table, "metadata", None)
    return f"{metadata.schema}.{table.name}" if metadata is not None else table.qualified


@pytest.mark.parametrize("rows", sorted(BATCHES))
def test_a_batchs_tables_are_the_runs_staging_tables_its_sql_steps_use(rows):
    from include.shopstream.platform.sql_steps import table
    from include.shopstream.platform.warehouse import RUN_KEY_TEMPLATE

    tables = batch_tables(rows)
    assert list(tables) == ["raw", "checked", "valid", "rejected"]
    for part, name in tables.items():
        assert name == qualified(table(f"{rows}_{part}", STAGING))
        assert name == f"staging.{rows}_{part}__{RUN_KEY_TEMPLATE}"


@pytest.fixture(scope="module")
def warehouse(pg_server):
    pg_server.ensure_database(WAREHOUSE)
    url = pg_server.url(WAREHOUSE)
    execute(url, sql("warehouse_schema.sql"))
    return url


def columns_of(url: str, table: str) -> tuple[str, ...]:
    found = execute(
        url,
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        (table,),
    )
    return tuple(name for (name,) in found)


@pytest.mark.parametrize("rows", sorted(BATCHES))
def test_a_batchs_valid_rows_carry_its_gold_tables_columns_and_merge_on_its_key(warehouse, rows):
    batch = BATCHES[rows]
    checked = f"staging.{rows}_checked_test"
    raw = RAW_ORDER_COLUMNS if rows == "orders" else CUSTOMER_COLUMNS
    execute(warehouse, f"DROP TABLE IF EXISTS {checked}")
    execute(warehouse, f"CREATE TABLE {checked} ({', '.join(f'{c} text' for c in (*raw, 'problem'))})")
    valid = re.sub(r"\{\{\s*\w+\s*\}\}", checked, sql(f"{rows}_valid.sql"))
    with closing(psycopg2.connect(warehouse)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({valid}) AS v LIMIT 0")
        selected = tuple(d[0] for d in cur.description)
    assert selected == batch.columns == columns_of(warehouse, batch.target)
    (primary,) = execute(
        warehouse,
        "SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) k(n) JOIN pg_attribute a"
        " ON a.attrelid = c.conrelid AND a.attnum = k.n) FROM pg_constraint c"
        " WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
        (batch.target,),
    )
    assert tuple(primary[0]) == batch.key


# -- the bad-row threshold ----------------------------------------------------------------------


class Counts:
    """A warehouse hook whose tables hold ``rejected`` and ``valid`` rows, of ``raw`` staged
    (every staged row, unless told otherwise)."""

    def __init__(self, rejected: int, valid: int, raw: int | None = None):
        self.counts = {"rejected": rejected, "valid": valid, "raw": rejected + valid if raw is None else raw}
        self.asked: list[str] = []

    def get_first(self, statement: str):
        self.asked.append(statement)
        (table,) = re.fullmatch(r"SELECT count\(\*\) FROM (\S+)", statement).groups()
        return (self.counts[table.removeprefix("staging.t_")],)


TABLES = {part: f"staging.t_{part}" for part in ("raw", "checked", "valid", "rejected")}


def judge(monkeypatch, rejected: int, valid: int, rows: str = "orders", raw: int | None = None) -> dict:
    from include.shopstream.platform import warehouse

    hook = Counts(rejected, valid, raw)
    monkeypatch.setattr(warehouse, "warehouse_hook", lambda: hook)
    return orders.enforce_bad_row_threshold.function(TABLES, rows, data_interval_start=START)


@EXAMPLES
@given(
    rejected=st.integers(0, 1_000), valid=st.integers(0, 1_000), threshold=st.sampled_from(["0", "0.05", "0.5", "1"])
)
def test_the_run_fails_exactly_when_the_bad_share_passes_the_threshold(rejected, valid, threshold):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(THRESHOLD_VARIABLE, threshold)
        total = rejected + valid
        share = rejected / total if total else 0.0
        if share > float(threshold):
            with pytest.raises(AirflowFailException, match=f"^{rejected} of {total} orders"):
                judge(patch, rejected, valid)
        else:
            assert judge(patch, rejected, valid) == {
                "rows": total,
                "rejected": rejected,
                "share": round(share, 6),
                "quarantine": "s3://shopstream/quarantine/orders/ds=2026-11-13/rejected.csv",
            }


def test_the_failure_names_counts_share_threshold_and_the_batchs_quarantine(monkeypatch):
    monkeypatch.setenv(THRESHOLD_VARIABLE, "0.1")
    with pytest.raises(AirflowFailException) as failed:
        judge(monkeypatch, 3, 7, rows="customers")
    assert str(failed.value) == (
        "3 of 10 customers (30.0%) broke the contract, above the 10.0% threshold (Variable"
        " shopstream_bad_row_threshold); nothing was merged. The rows and reasons are in"
        " s3://shopstream/quarantine/customers/ds=2026-11-13/rejected.csv"
    )


def test_the_threshold_counts_the_batchs_own_rejected_and_valid_tables(monkeypatch):
    from include.shopstream.platform import warehouse

    monkeypatch.setenv(THRESHOLD_VARIABLE, "1")
    hook = Counts(1, 2)
    monkeypatch.setattr(warehouse, "warehouse_hook", lambda: hook)
    orders.enforce_bad_row_threshold.function(TABLES, "orders", data_interval_start=START)
    assert sorted(hook.asked) == [
        "SELECT count(*) FROM staging.t_raw",
        "SELECT count(*) FROM staging.t_rejected",
        "SELECT count(*) FROM staging.t_valid",
    ]


@pytest.mark.parametrize(("rejected", "valid", "raw"), [(0, 0, 500), (3, 400, 500), (3, 600, 500)])
def test_a_batch_whose_checked_rows_do_not_add_up_to_its_staged_rows_merges_nothing(monkeypatch, rejected, valid, raw):
    """Every staged row is valid or rejected; a check table that lost rows (or made some) must not
    pass as a clean day with fewer orders."""
    monkeypatch.setenv(THRESHOLD_VARIABLE, "1")
    with pytest.raises(AirflowFailException) as failed:
        judge(monkeypatch, rejected, valid, raw=raw)
    assert str(failed.value) == (
        f"{raw} orders were staged in staging.t_raw, but {valid} valid and {rejected} rejected were counted;"
        " nothing was merged. Clear check_orders and the tasks after it to check the staged rows again"
    )


def test_without_the_variable_the_default_share_applies(monkeypatch):
    from include.shopstream.platform import compat

    class Unset:
        @staticmethod
        def get(key, default=None):
            return default

    monkeypatch.setattr(compat, "Variable", Unset)
    assert judge(monkeypatch, 5, 95)["share"] == 0.05
    with pytest.raises(AirflowFailException, match=r"above the 5\.0% threshold"):
        judge(monkeypatch, 6, 94)


@pytest.mark.parametrize("value", ["five percent", "5", "-0.1", "1.5", "nan", "inf"])
def test_a_threshold_that_is_not_a_share_fails_with_what_it_must_be(monkeypatch, value):
    # "5" meant as 5% would be 500%: every batch, however bad, would be merged.
    monkeypatch.setenv(THRESHOLD_VARIABLE, value)
    with pytest.raises(AirflowFailException) as failed:
        judge(monkeypatch, 90, 10)
    assert str(failed.value) == (
        f"Variable shopstream_bad_row_threshold must be a share between 0 and 1, got {value!r}"
    )


# -- publishing ---------------------------------------------------------------------------------


def test_published_orders_are_those_the_interval_touched_written_under_its_business_date(monkeypatch):
    from include.shopstream.platform import lake, warehouse

    exported = {}

    def export(engine, query, params, key):
        exported.update(engine=engine, query=query, params=params, key=key)
        return 42

    class Engine:
        disposed = False

        def dispose(self):
            self.disposed = True

    engine = Engine()
    monkeypatch.setattr(lake, "export_query_to_parquet", export)
    monkeypatch.setattr(warehouse, "warehouse_engine", lambda: engine)
    published = orders.publish_orders.function(data_interval_start=START, data_interval_end=END)
    assert published == {"rows": 42, "uri": "s3://shopstream/gold/orders/ds=2026-11-13/orders.parquet"}
    assert exported["key"] == "gold/orders/ds=2026-11-13/orders.parquet"
    assert exported["engine"] is engine
    assert engine.disposed
    assert exported["params"] == {"start": START, "end": END}
    assert "SELECT * FROM gold.orders" in exported["query"]
    assert "updated_at >= CAST(:start AS timestamptz) AND updated_at < CAST(:end AS timestamptz)" in exported["query"]
