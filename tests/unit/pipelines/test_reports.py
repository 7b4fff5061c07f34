"""reports: the week weekly_analytics reports on, the daily report's files, and the reports' columns.

``week_to_report`` is checked on generated dates; ``write_report_files`` runs as its task would
on a gold.daily_reports of known rows (the embedded Postgres), into a lake that records what it
writes; the report SQL is read against the warehouse schema's gold tables.
"""

from __future__ import annotations

import csv
import io
import re
from contextlib import closing
from datetime import date, timedelta

import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.pipelines.reports import (
    DAILY_COLUMNS,
    RETENTION_COLUMNS,
    TOP_PRODUCT_COLUMNS,
    week_to_report,
    write_report_files,
)
from include.shopstream.platform.names import sql
from include.shopstream.platform.outputs import WEEKLY_ANALYTICS

pytestmark = [pytest.mark.services, pytest.mark.devtools]

EXAMPLES = settings(max_examples=300, deadline=None, derandomize=True)
DATABASE = "shopstream_unit_reports"
DAY = date(2026, 11, 23)


@EXAMPLES
@given(day=st.dates(date(2000, 1, 10), date(2100, 12, 31)))
def test_on_a_monday_the_week_that_just_ended_is_reported_and_on_other_days_none(day):
    week = week_to_report.function(day.isoformat())
    if day.weekday() == 0:
        assert week == (day - timedelta(days=7)).isoformat()
        assert date.fromisoformat(week).weekday() == 0
    else:
        assert week is None


def test_the_monday_of_the_23rd_reports_the_week_of_the_16th():
    assert week_to_report.function("2026-11-23") == "2026-11-16"
    assert week_to_report.function("2026-11-24") is None


# -- on Postgres --------------------------------------------------------------------------------


def execute(url: str, statement: str, params=None) -> list[tuple]:
    with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def warehouse(pg_server):
    pg_server.ensure_database(DATABASE)
    url = pg_server.url(DATABASE)
    execute(url, sql("warehouse_schema.sql"))
    execute(url, "TRUNCATE gold.daily_reports")
    # Two categories on the report's day; one day each at and beyond the chart's edges.
    days = {DAY: ("books", "toys"), DAY - timedelta(days=29): ("books",), DAY - timedelta(days=30): ("games",)}
    days[DAY + timedelta(days=1)] = ("books",)
    for day, categories in days.items():
        for category in categories:
            execute(
                url,
                "INSERT INTO gold.daily_reports VALUES (%s, %s, 2, 30.00, 15.00, 0, now())",
                (day, category),
            )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", url)
        yield url


class Lake:
    def __init__(self):
        self.objects: dict[str, str | bytes] = {}

    def load_string(self, body, key, bucket_name, replace):
        assert (bucket_name, replace) == ("shopstream", True)
        self.objects[key] = body

    def load_bytes(self, body, key, bucket_name, replace):
        assert (bucket_name, replace) == ("shopstream", True)
        self.objects[key] = body


@pytest.fixture
def lake(monkeypatch, warehouse):
    """The lake the task writes to, and the frames it reads from the warehouse (``lake.read``)."""
    from include.shopstream.platform import lake as lake_module
    from include.shopstream.platform import warehouse as warehouse_module

    recorder, real = Lake(), warehouse_module.warehouse_hook
    recorder.read = []

    def reading_hook():
        hook = real()
        get_pandas_df = hook.get_pandas_df

        def read(*args, **kwargs):
            frame = get_pandas_df(*args, **kwargs)
            recorder.read.append(frame)
            return frame

        hook.get_pandas_df = read
        return hook

    monkeypatch.setattr(lake_module, "lake_hook", lambda: recorder)
    monkeypatch.setattr(warehouse_module, "warehouse_hook", reading_hook)
    return recorder


CSV_KEY = "reports/daily/ds=2026-11-23/daily_report.csv"
CHART_KEY = "reports/daily/ds=2026-11-23/revenue_30d.png"


def test_the_days_report_holds_that_days_categories_and_the_chart_the_30_days_up_to_it(lake):
    written = write_report_files.function("2026-11-23")
    assert written == {
        "csv": f"s3://shopstream/{CSV_KEY}",
        "chart": f"s3://shopstream/{CHART_KEY}",
        "categories": 2,
    }
    rows = list(csv.DictReader(io.StringIO(lake.objects[CSV_KEY])))
    assert [(row["day"], row["category"]) for row in rows] == [("2026-11-23", "books"), ("2026-11-23", "toys")]
    assert list(rows[0]) == [c for c in DAILY_COLUMNS if c != "loaded_at"]
    assert lake.objects[CHART_KEY].startswith(b"\x89PNG\r\n\x1a\n")
    (frame,) = lake.read
    assert sorted(set(frame["day"])) == [DAY - timedelta(days=29), DAY], "30 days, the report's day included"


@pytest.mark.filterwarnings("ignore:No artists with labels found:UserWarning")  # an empty chart has no legend
def test_a_day_without_rows_still_writes_its_files(lake):
    written = write_report_files.function("2026-12-31")
    assert written["categories"] == 0
    key = "reports/daily/ds=2026-12-31/daily_report.csv"
    assert lake.objects[key].splitlines() == [",".join(c for c in DAILY_COLUMNS if c != "loaded_at")]
    assert lake.objects["reports/daily/ds=2026-12-31/revenue_30d.png"].startswith(b"\x89PNG")


def columns_of(url: str, table: str) -> tuple[str, ...]:
    found = execute(
        url,
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " ORDER BY attnum",
        (table,),
    )
    return tuple(name for (name,) in found)


def primary_key(url: str, table: str) -> tuple[str, ...]:
    ((columns,),) = execute(
        url,
        "SELECT ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a"
        " ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) FROM pg_constraint c"
        " WHERE c.conrelid = %s::regclass AND c.contype = 'p'",
        (table,),
    )
    return tuple(columns)


def selected(url: str, sql_file: str) -> tuple[str, ...]:
    """The columns ``sql/<sql_file>`` writes, its tables being gold's and ``week_start`` a bound date."""
    statement = re.sub(r"\{\{\s*gold_orders\s*\}\}", "gold.orders", sql(sql_file))
    statement = re.sub(r"\{\{\s*week_start\s*\}\}", "%(week_start)s", statement)
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({statement}) AS q LIMIT 0", {"week_start": "2026-11-16"})
        return tuple(d[0] for d in cur.description)


@pytest.mark.parametrize(
    ("sql_file", "table", "columns", "key"),
    [
        ("daily_reports.sql", "gold.daily_reports", DAILY_COLUMNS, ("day", "category")),
        ("weekly_retention.sql", "gold.weekly_analytics", RETENTION_COLUMNS, WEEKLY_ANALYTICS.key),
        ("weekly_top_products.sql", "gold.weekly_top_products", TOP_PRODUCT_COLUMNS, ("week_start", "rank")),
    ],
)
def test_each_report_writes_its_gold_tables_columns_and_is_keyed_as_it_is_merged(
    warehouse, sql_file, table, columns, key
):
    assert selected(warehouse, sql_file) == columns == columns_of(warehouse, table)
    assert primary_key(warehouse, table) == tuple(key)
