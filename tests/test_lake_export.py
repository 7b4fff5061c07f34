"""publish_orders' streamed export: the same Parquet as ``aql.export_to_file``, in bounded batches.

Against real Postgres (gold.orders from the warehouse schema) and an in-process moto S3.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from include.shopstream.platform.lake import export_query_to_parquet
from include.shopstream.platform.names import BUCKET, sql
from include.shopstream.platform.outputs import ORDERS

pytestmark = pytest.mark.services

QUERY = sql("orders_of_interval.sql").format(orders=ORDERS.table)
INTERVAL = {"start": "2026-11-10 02:00+00", "end": "2026-11-11 02:00+00"}
ORDERS_OF_THE_DAY = 24  # of 28 orders an hour apart; 4 are of other days


@pytest.fixture(scope="module")
def engine(pg_server):
    name = "shopstream_export"
    pg_server.ensure_database(name)
    with pg_server.connect(name) as conn, conn.cursor() as cur:
        cur.execute(sql("warehouse_schema.sql"))
        cur.execute("TRUNCATE gold.orders, gold.customers CASCADE")
        cur.execute("INSERT INTO gold.customers VALUES (7, 'a@example.com', 'A', 'DE', now(), now())")
        cur.execute(
            "INSERT INTO gold.orders SELECT 1000 - n, 7, n, 'SKU-' || n, 'books', 1 + mod(n, 3), n * 1.25, 'paid', 0,"
            " ts - interval '1 day', ts, now()"
            " FROM generate_series(1, %s) AS n,"
            " LATERAL (SELECT timestamptz '2026-11-10 02:00+00' + n * interval '1 hour' - interval '3 hours') AS t(ts)",
            (ORDERS_OF_THE_DAY + 4,),
        )
    engine = sa.create_engine(pg_server.url(name, driver="postgresql+psycopg2"))
    yield engine
    engine.dispose()


@pytest.fixture
def lake(monkeypatch):
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://testing:testing@/?region_name=us-east-1")
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def read(lake, key):
    return pq.read_table(io.BytesIO(lake.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def test_streamed_batches_write_what_one_read_sql_would(engine, lake):
    rows = export_query_to_parquet(engine, QUERY, INTERVAL, "gold/orders/ds=2026-11-10/orders.parquet", batch_rows=4)
    streamed = read(lake, "gold/orders/ds=2026-11-10/orders.parquet")

    with engine.connect() as conn:
        whole = pd.read_sql(sa.text(QUERY), conn, params=INTERVAL)  # what aql.export_to_file reads
    buffer = io.BytesIO()
    whole.to_parquet(buffer, index=False)
    expected = pq.read_table(buffer)

    assert rows == streamed.num_rows == ORDERS_OF_THE_DAY
    assert streamed.schema.remove_metadata() == expected.schema.remove_metadata()
    assert streamed.equals(expected.cast(streamed.schema))
    assert (
        pq.ParquetFile(
            io.BytesIO(lake.get_object(Bucket=BUCKET, Key="gold/orders/ds=2026-11-10/orders.parquet")["Body"].read())
        ).num_row_groups
        == 6
    )  # 24 rows in batches of 4: bounded, not one frame


def test_a_day_without_orders_publishes_an_empty_file_with_the_columns(engine, lake):
    rows = export_query_to_parquet(
        engine,
        QUERY,
        {"start": "2020-01-01 02:00+00", "end": "2020-01-02 02:00+00"},
        "gold/orders/ds=2020-01-01/orders.parquet",
    )
    empty = read(lake, "gold/orders/ds=2020-01-01/orders.parquet")
    assert rows == 0 and empty.num_rows == 0
    assert empty.column_names[:2] == ["order_id", "customer_id"] and len(empty.column_names) == 12


def test_a_failed_query_leaves_the_published_file_as_it_was(engine, lake):
    key = "gold/orders/ds=2026-11-10/orders.parquet"
    export_query_to_parquet(engine, QUERY, INTERVAL, key)
    before = lake.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with pytest.raises(sa.exc.DBAPIError):
        export_query_to_parquet(engine, QUERY, {"start": "not a time", "end": INTERVAL["end"]}, key)
    assert lake.get_object(Bucket=BUCKET, Key=key)["Body"].read() == before
