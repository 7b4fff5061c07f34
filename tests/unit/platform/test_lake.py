"""lake.py: the lake's prefixes replaced whole, COPY extracts landed in parts under their prefix,
and publish_orders' streamed export (the same Parquet as ``aql.export_to_file``, in bounded batches).

Against real Postgres (gold.orders from the warehouse schema, and a source table of its own) and
an in-process moto S3.
"""

from __future__ import annotations

import csv
import io

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import example, given, settings
from hypothesis import strategies as st

from include.shopstream.platform import lake as lake_module
from include.shopstream.platform.lake import Extract, copy_query_to_lake, export_query_to_parquet, replace_prefix
from include.shopstream.platform.names import BUCKET, sql
from include.shopstream.platform.outputs import ORDERS

pytestmark = pytest.mark.services

QUERY = sql("orders_of_interval.sql").format(orders=ORDERS.table)
INTERVAL = {"start": "2026-11-10 02:00+00", "end": "2026-11-11 02:00+00"}
ORDERS_OF_THE_DAY = 24  # of 28 orders an hour apart; 4 are of other days
DATABASE = "shopstream_export"


@pytest.fixture(scope="module")
def engine(pg_server):
    name = DATABASE
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


# -- Extracts: COPY into CSV parts under a prefix, replacing what was there ------------------------


def keys(lake, prefix: str) -> list[str]:
    listed = lake.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def put(lake, key: str) -> None:
    lake.put_object(Bucket=BUCKET, Key=key, Body=b"stale")


def part_rows(lake, key: str) -> list[list[str]]:
    body = lake.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
    return list(csv.reader(io.StringIO(body, newline="")))


def test_replacing_a_prefix_deletes_what_is_under_it_and_nothing_beside_it(lake):
    for key in (
        "raw/orders/ds=2026-11-23/part-00000.csv",
        "raw/orders/ds=2026-11-23/part-00001.csv",
        "raw/orders/ds=2026-11-230/part-00000.csv",
        "raw/orders/ds=2026-11-2",
    ):
        put(lake, key)  # fmt: skip
    replace_prefix("raw/orders/ds=2026-11-23")
    assert keys(lake, "raw/") == ["raw/orders/ds=2026-11-2", "raw/orders/ds=2026-11-230/part-00000.csv"]
    replace_prefix("raw/orders/ds=2026-11-23/")  # nothing left under it: no error
    assert len(keys(lake, "raw/")) == 2


def test_an_extracts_uri_is_its_folder_in_the_lake():
    assert Extract("raw/orders/ds=2026-11-23", rows=3, parts=1).uri == "s3://shopstream/raw/orders/ds=2026-11-23/"


@pytest.fixture(scope="module")
def source(pg_server, engine):
    """A source table of ``ROWS`` rows, keyed by an increasing row id, with texts CSV must quote."""
    conn = pg_server.connect(DATABASE)
    with conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS source_rows")
        cur.execute("CREATE TABLE source_rows (row_id bigint PRIMARY KEY, note text, memo text, day date)")
        cur.execute(
            "INSERT INTO source_rows SELECT n * 10, 'note ' || n || ', \"quoted\"', 'two' || chr(10) || 'lines',"
            " date '2026-11-23'"
            " FROM generate_series(1, %s) AS n",
            (ROWS,),
        )
    yield conn
    conn.close()


ROWS = 12
PAGED = (
    "SELECT row_id, note FROM source_rows WHERE day = %(day)s AND row_id > %(after)s ORDER BY row_id LIMIT %(limit)s"
)
WHOLE = "SELECT row_id, note, memo FROM source_rows WHERE day = %(day)s ORDER BY row_id"
EXPECTED = [[str(n * 10), f'note {n}, "quoted"'] for n in range(1, ROWS + 1)]


def test_an_extract_lands_its_rows_in_one_part_with_a_header_replacing_the_old_parts(source, lake):
    put(lake, "raw/src/ds=2026-11-23/part-00007.csv")
    extract = copy_query_to_lake(source, WHOLE, {"day": "2026-11-23"}, "raw/src/ds=2026-11-23")
    assert extract == Extract("raw/src/ds=2026-11-23", rows=ROWS, parts=1)
    assert keys(lake, "raw/src/") == ["raw/src/ds=2026-11-23/part-00000.csv"]
    landed = part_rows(lake, "raw/src/ds=2026-11-23/part-00000.csv")
    assert landed == [["row_id", "note", "memo"], *([*row, "two\nlines"] for row in EXPECTED)]


@pytest.mark.parametrize(("part_rows_max", "parts"), [(5, 3), (4, 3), (ROWS, 1), (100, 1)])
def test_a_paged_extract_holds_at_most_part_rows_a_part_and_every_row_once(
    source, lake, monkeypatch, part_rows_max, parts
):
    monkeypatch.setattr(lake_module, "PART_ROWS", part_rows_max)
    extract = copy_query_to_lake(source, PAGED, {"day": "2026-11-23"}, "raw/paged", paged=True)
    assert (extract.rows, extract.parts) == (ROWS, parts)
    assert keys(lake, "raw/paged/") == [f"raw/paged/part-{n:05d}.csv" for n in range(parts)]
    landed = []
    for key in keys(lake, "raw/paged/"):
        header, *rows = part_rows(lake, key)
        assert header == ["row_id", "note"] and 0 < len(rows) <= part_rows_max
        landed += rows
    assert landed == EXPECTED


PAGED_TWO_LINES = PAGED.replace("row_id, note", "row_id, note, memo", 1)


@pytest.mark.parametrize("part_rows_max", [5, ROWS])
def test_a_paged_extract_whose_last_row_holds_a_newline_pages_on(source, lake, monkeypatch, part_rows_max):
    # Every memo is "two\nlines": a part's last physical line is then the end of a quoted value.
    monkeypatch.setattr(lake_module, "PART_ROWS", part_rows_max)
    extract = copy_query_to_lake(source, PAGED_TWO_LINES, {"day": "2026-11-23"}, "raw/two_lines", paged=True)
    assert extract.rows == ROWS
    landed = [row for key in keys(lake, "raw/two_lines/") for row in part_rows(lake, key)[1:]]
    assert landed == [[*row, "two\nlines"] for row in EXPECTED]


texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)


def copy_csv_value(value) -> str:
    """A value as COPY .. (FORMAT csv) writes it: quoted when it holds a comma, a quote, a carriage
    return or a newline, or is empty. Python's csv writer leaves a lone carriage return unquoted."""
    text = str(value)
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 2**63 - 1), texts, texts), min_size=1, max_size=30))
@example(rows=[(0, "\r", '"')])
def test_a_parts_last_key_is_its_last_rows_whatever_its_texts_hold(rows):
    lines = [["order_id", "sku", "status"], *rows]  # as COPY .. (FORMAT csv, HEADER true) writes them
    part = io.BytesIO("".join(",".join(map(copy_csv_value, line)) + "\n" for line in lines).encode())
    assert lake_module._last_key(part) == rows[-1][0]
    assert not part.closed


def test_a_parts_last_key_is_found_past_the_tail_read_from_its_end():
    part = io.BytesIO(b'order_id,sku\n7,a\n9,"' + b"x" * (lake_module.TAIL_BYTES + 10) + b'"\n')
    assert lake_module._last_key(part) == 9


@pytest.mark.parametrize("paged", [False, True])
def test_an_extract_of_no_rows_lands_one_part_with_only_the_header(source, lake, paged):
    extract = copy_query_to_lake(source, PAGED if paged else WHOLE, {"day": "2020-01-01"}, "raw/none", paged=paged)
    assert extract == Extract("raw/none", rows=0, parts=1)
    assert part_rows(lake, "raw/none/part-00000.csv") == [["row_id", "note", "memo"][: 2 if paged else 3]]


def test_extracting_from_the_source_runs_its_sql_file_on_the_source_connection(
    source, lake, pg_server, monkeypatch, tmp_path
):
    from include.shopstream.platform import names
    from include.shopstream.platform.lake import extract_from_source

    monkeypatch.setattr(names, "SQL_DIR", tmp_path)
    (tmp_path / "source_rows.sql").write_text(PAGED)
    monkeypatch.setenv(f"AIRFLOW_CONN_{names.SOURCE_CONN_ID.upper()}", pg_server.url(DATABASE))
    monkeypatch.setattr(lake_module, "PART_ROWS", 8)
    extract = extract_from_source("source_rows.sql", "raw/from_source", {"day": "2026-11-23"}, paged=True)
    assert extract == Extract("raw/from_source", rows=ROWS, parts=2)
    assert part_rows(lake, "raw/from_source/part-00001.csv")[1:] == EXPECTED[8:]
