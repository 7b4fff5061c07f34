"""quality: what data_quality_checks checks, and how its freshness and file checks judge.

The coverage is read from the registry and the SQL that reads gold.orders; ``freshness`` and
``check_file`` run as their tasks would, on the newest row time a warehouse hook gives and on
Parquet files in a lake that holds them by key.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pandas as pd
import pytest

from include.shopstream.pipelines.orders import GOLD_ORDER_COLUMNS
from include.shopstream.pipelines.quality import (
    CHOOSER,
    FILES,
    GROUP,
    TABLES,
    check_file,
    data_quality_checks,
    freshness,
)
from include.shopstream.platform.compat import EVENT_TRIGGERED, TRIGGERING_EVENTS, AirflowFailException
from include.shopstream.platform.names import SQL_DIR
from include.shopstream.platform.outputs import CUSTOMER_FEATURES, ORDERS
from tests.conftest import PROJECT

# What reads gold.orders after orders_etl: the reports, customer_360 and the features.
READERS = [
    *(SQL_DIR / name for name in ("customer_360.sql", "daily_reports.sql", "weekly_retention.sql")),
    SQL_DIR / "weekly_top_products.sql",
    PROJECT / "include" / "shopstream" / "pipelines" / "features.py",
]


def columns_read() -> set[str]:
    # "now() AS loaded_at" writes a column of the report, it reads none of gold.orders.
    text = re.sub(r"\bAS\s+\w+", "", "\n".join(path.read_text() for path in READERS))
    return {column for column in GOLD_ORDER_COLUMNS if re.search(rf"\b{column}\b", text)}


def test_every_orders_column_read_downstream_has_a_null_check():
    orders = next(spec for spec in TABLES if spec.table == "gold.orders")
    read = columns_read()
    assert {"customer_id", "category", "sku", "amount", "created_at", "status"} <= read
    unchecked = sorted(c for c in read if "null_check" not in orders.columns.get(c, {}))
    assert unchecked == []


def test_orders_are_checked_against_customers_and_the_catalogue():
    orders = next(spec for spec in TABLES if spec.table == "gold.orders")
    statements = " ".join(orders.checks.values())
    assert "gold.customers" in statements and "gold.product_catalog" in statements


def check_tasks() -> dict[str, object]:
    """task_id -> operator of data_quality_checks, built in a DAG of its own."""
    from include.shopstream.platform.compat import DAG

    with DAG("quality_checks_unit", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=UTC)) as dag:
        data_quality_checks()
    return {t.task_id: t for t in dag.tasks}


def test_each_table_gets_its_registered_column_table_and_freshness_checks():
    tasks = check_tasks()
    for output in TABLES:
        columns = tasks[f"{GROUP}.{output.name}_columns"]
        assert (columns.table, columns.column_mapping) == (output.table, output.columns)
        table = tasks[f"{GROUP}.{output.name}_table"]
        assert table.table == output.table
        assert table.checks == {
            "has_rows": {"check_statement": "COUNT(*) > 0"},
            **{name: {"check_statement": statement} for name, statement in output.checks.items()},
        }
        assert list(tasks[f"{GROUP}.{output.name}_freshness"].op_args) == [output.table, output.uri]
    assert [list(tasks[f"{GROUP}.{output.name}_file"].op_args) for output in FILES] == [[CUSTOMER_FEATURES.uri]]


def test_the_chooser_picks_among_every_check_and_runs_before_them():
    tasks = check_tasks()
    chooser = tasks[f"{GROUP}.{CHOOSER}"]
    (picks,) = chooser.op_args
    assert set(picks) == {output.uri for output in (*TABLES, *FILES)}
    checks = {task_id for task_id in tasks if task_id != chooser.task_id}
    assert {task_id for task_ids in picks.values() for task_id in task_ids} == checks
    assert chooser.downstream_task_ids == checks


# -- freshness ----------------------------------------------------------------------------------


def fresh(monkeypatch, newest, context) -> str:
    from include.shopstream.platform import warehouse

    hook = SimpleNamespace(get_first=lambda statement: (newest,) if statement.endswith("FROM gold.orders") else None)
    monkeypatch.setattr(warehouse, "warehouse_hook", lambda: hook)
    return freshness.function("gold.orders", ORDERS.uri, **context)


EVENT_AT = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
TRIGGERED = {
    "dag_run": SimpleNamespace(run_type=EVENT_TRIGGERED),
    TRIGGERING_EVENTS: {ORDERS.uri: [SimpleNamespace(timestamp=EVENT_AT, extra={"ds": "2026-11-23"})]},
}
BY_HAND = {"dag_run": SimpleNamespace(run_type="manual")}


def test_a_table_written_within_the_hour_before_its_event_is_fresh(monkeypatch):
    loaded = EVENT_AT - timedelta(minutes=59)
    assert fresh(monkeypatch, loaded, TRIGGERED) == "gold.orders loaded at 2026-11-24 01:31:00"


def test_a_table_older_than_the_hour_before_its_event_is_stale(monkeypatch):
    loaded = EVENT_AT - timedelta(minutes=61)
    with pytest.raises(AirflowFailException) as stale:
        fresh(monkeypatch, loaded, TRIGGERED)
    assert str(stale.value) == (
        f"gold.orders is stale: its newest row was loaded at {loaded}, not within its Dataset event at 2026-11-24 02:30"
    )


def test_by_hand_a_table_must_have_been_written_in_the_last_36_hours(monkeypatch):
    now = datetime.now(UTC)
    assert fresh(monkeypatch, now - timedelta(hours=35), BY_HAND).startswith("gold.orders loaded at ")
    with pytest.raises(AirflowFailException, match="not within the last 36 hours"):
        fresh(monkeypatch, now - timedelta(hours=37), BY_HAND)


def test_an_empty_table_is_stale(monkeypatch):
    with pytest.raises(AirflowFailException, match="its newest row was loaded at None"):
        fresh(monkeypatch, None, BY_HAND)


# -- the features file --------------------------------------------------------------------------


class Lake:
    """Parquet files by key, read as check_file reads them."""

    def __init__(self, files: dict[str, pd.DataFrame]):
        self.objects = {}
        for key, frame in files.items():
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            self.objects[key] = buffer.getvalue()

    def list_keys(self, bucket_name, prefix):
        assert bucket_name == "shopstream"
        return [key for key in self.objects if key.startswith(prefix)]

    def get_key(self, key, bucket_name):
        body = io.BytesIO(self.objects[key])
        return SimpleNamespace(get=lambda: {"Body": body})


def features(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "as_of", "recency_days", "frequency", "monetary"])


def checked(monkeypatch, files: dict[str, pd.DataFrame]) -> dict:
    from include.shopstream.platform import lake

    monkeypatch.setattr(lake, "lake_hook", lambda: Lake(files))
    return check_file.function(CUSTOMER_FEATURES.uri)


def day(ds: str) -> str:
    return f"features/customer/ds={ds}/features.parquet"


def test_the_newest_features_file_is_checked(monkeypatch):
    files = {day("2026-11-22"): features(), day("2026-11-23"): features((1, "2026-11-23", 3, 2, 10.5))}
    assert checked(monkeypatch, files) == {"file": f"s3://shopstream/{day('2026-11-23')}", "rows": 1}


def test_no_features_file_fails_naming_where_it_looked(monkeypatch):
    with pytest.raises(AirflowFailException) as failed:
        checked(monkeypatch, {})
    assert str(failed.value) == "no customer_features file under s3://shopstream/features/customer/"


def test_an_empty_file_a_customer_twice_and_null_features_are_each_named(monkeypatch):
    with pytest.raises(AirflowFailException) as empty:
        checked(monkeypatch, {day("2026-11-23"): features()})
    assert str(empty.value) == f"s3://shopstream/{day('2026-11-23')} fails its checks: it has no rows"
    rows = [(1, "2026-11-23", 3, 2, 10.5), (1, "2026-11-23", None, 2, None), (2, "2026-11-23", 1, 1, None)]
    with pytest.raises(AirflowFailException) as broken:
        checked(monkeypatch, {day("2026-11-23"): features(*rows)})
    assert str(broken.value) == (
        f"s3://shopstream/{day('2026-11-23')} fails its checks: 1 customer_id values appear twice;"
        " null features: {'recency_days': 1, 'monetary': 2}"
    )


def test_a_features_row_without_its_customer_is_named(monkeypatch):
    rows = [(1, "2026-11-23", 3, 2, 10.5), (None, "2026-11-23", 1, 1, 2.0)]
    with pytest.raises(AirflowFailException) as broken:
        checked(monkeypatch, {day("2026-11-23"): features(*rows)})
    assert str(broken.value) == (
        f"s3://shopstream/{day('2026-11-23')} fails its checks: null features: {{'customer_id': 1}}"
    )
