"""Two DAG runs at once: each stages in tables of its own, and gold ends as one run after the other
would leave it, whatever the order of their merges and swaps.

The names are rendered by Airflow's own template code, as a task would render them; the gold
rules run on real Postgres (the embedded server) through the SDK's merge.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.shopstream.platform import sql_steps
from include.shopstream.platform.names import STAGING
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.warehouse import RUN_KEY_TEMPLATE, run_key, sql, staging_name

DATABASE = "shopstream_concurrent_runs"
T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)


def render(template: str, dag_id: str, run_id: str) -> str:
    from airflow import macros

    from include.shopstream.platform.compat import DAG

    dag = DAG(dag_id, start_date=T0, schedule=None)
    return dag.get_template_env().from_string(template).render(dag=dag, run_id=run_id, macros=macros)


def test_a_run_key_renders_as_python_computes_it_and_differs_between_runs():
    runs = [
        ("sales_core_pipeline", "scheduled__2026-11-24T02:00:00+00:00"),
        ("sales_core_pipeline", "backfill__2026-11-24T02:00:00+00:00"),
        ("sales_core_pipeline", "manual__2026-11-24T02:00:00+00:00"),
        ("inventory_mgmt_pipeline", "manual__2026-11-24T02:00:00+00:00"),
    ]
    keys = [render(RUN_KEY_TEMPLATE, *run) for run in runs]
    assert keys == [run_key(*run) for run in runs]
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 12 and set(k) <= set("0123456789abcdef") for k in keys)
    longest = staging_name("weekly_top_products_build").replace(RUN_KEY_TEMPLATE, keys[0])
    assert len(longest.split(".")[1]) <= 63, "Postgres cuts names at 63 bytes"


def qualified(table) -> str:
    """``schema.name`` of a step's table as its operator holds it (an SDK ``Table``, or the name)."""
    metadata = getattr(table, "metadata", None)
    return f"{metadata.schema}.{table.name}" if metadata is not None else table


def test_a_steps_staging_table_is_rendered_for_the_run_and_gold_is_left_as_it_is():
    """Airflow renders a staging table's name in the SQL step's template fields (what the task
    runner does before ``execute``); a gold table's name has nothing to render."""
    from airflow import macros

    from include.shopstream.platform.compat import DAG

    with DAG("sales_core_pipeline", start_date=T0, schedule=None) as dag:
        load = sql_steps.load_file(
            "load_orders", "s3://shopstream/raw/orders/", table("orders_raw", STAGING), text_as_is=True
        ).operator
        merge = sql_steps.merge(
            "merge_orders", table("orders"), table("orders_valid", STAGING), ["order_id"], ["order_id"]
        ).operator
    run_id = "backfill__2026-11-24T02:00:00+00:00"
    for operator in (load, merge):
        operator.render_template_fields({"dag": dag, "run_id": run_id, "macros": macros})
    key = run_key("sales_core_pipeline", run_id)
    assert qualified(load.output_table) == f"{STAGING}.orders_raw__{key}"
    assert qualified(merge.source_table) == f"{STAGING}.orders_valid__{key}"
    assert qualified(merge.target_table) == "gold.orders"


# -- on Postgres --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(pg_server):
    pg_server.ensure_database(DATABASE)
    with pg_server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(sql("warehouse_schema.sql"))
        cur.execute("TRUNCATE gold.orders, gold.customers, gold.customer_360")
    return pg_server


@pytest.fixture
def connected(warehouse, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", warehouse.url(DATABASE))
    return warehouse


def query(pg_server, statement: str, params=None) -> list[tuple]:
    with pg_server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def stage_orders(pg_server, name: str, rows: list[tuple]) -> None:
    query(pg_server, f"DROP TABLE IF EXISTS staging.{name}")
    query(pg_server, f"CREATE TABLE staging.{name} (LIKE gold.orders)")
    for order_id, status, updated_at in rows:
        query(
            pg_server,
            f"INSERT INTO staging.{name} VALUES (%s, 1, 3, 'SKU-3', 'books', 1, 10, %s, 0, %s, %s, now())",
            (order_id, status, T0, updated_at),
        )


def merge_orders(source: str) -> None:
    """merge_orders' statement on the chosen SQL back-end."""
    from include.shopstream.pipelines.orders import GOLD_ORDER_COLUMNS

    sql_steps.merge_into("gold.orders", f"{STAGING}.{source}", GOLD_ORDER_COLUMNS, ["order_id"])


@pytest.mark.services
@pytest.mark.parametrize("order", ["newer day first", "older day first"])
def test_an_order_changed_on_two_days_keeps_the_newer_version_in_either_order(connected, order):
    query(connected, "TRUNCATE gold.orders, gold.customers CASCADE")
    query(connected, "INSERT INTO gold.customers VALUES (1, 'a@example.com', 'A', 'DE', now(), now())")
    older = [(1, "placed", T0), (2, "placed", T0)]
    newer = [(1, "delivered", T0 + timedelta(days=1)), (3, "paid", T0 + timedelta(days=1))]
    stage_orders(connected, "valid_older", older)
    stage_orders(connected, "valid_newer", newer)
    for source in ["valid_newer", "valid_older"] if order == "newer day first" else ["valid_older", "valid_newer"]:
        merge_orders(source)
    assert query(connected, "SELECT order_id, status FROM gold.orders ORDER BY order_id") == [
        (1, "delivered"),
        (2, "placed"),
        (3, "paid"),
    ]
    merge_orders("valid_older")  # re-running the older day changes nothing
    assert query(connected, "SELECT status FROM gold.orders WHERE order_id = 1") == [("delivered",)]


@pytest.mark.services
def test_a_merge_waiting_on_a_newer_uncommitted_version_leaves_the_newer_one(connected):
    """The check is made on the row as it is when the update takes it, not when the merge began:
    no window between reading gold and writing it."""
    import threading

    query(connected, "TRUNCATE gold.orders, gold.customers CASCADE")
    query(connected, "INSERT INTO gold.customers VALUES (1, 'a@example.com', 'A', 'DE', now(), now())")
    stage_orders(connected, "valid_older", [(1, "placed", T0)])
    merge_orders("valid_older")
    with connected.connect(DATABASE) as newer, newer.cursor() as cur:
        cur.execute(
            "UPDATE gold.orders SET status = 'delivered', updated_at = %s WHERE order_id = 1", (T0 + timedelta(1),)
        )
        merging = threading.Thread(target=merge_orders, args=("valid_older",))
        merging.start()
        merging.join(timeout=2)
        assert merging.is_alive(), "the older day's merge waits for the row"
        newer.commit()
    merging.join(timeout=30)
    assert query(connected, "SELECT status FROM gold.orders WHERE order_id = 1") == [("delivered",)]


@pytest.mark.services
def test_an_older_customer_360_build_is_not_swapped_in_after_a_newer_one(connected):
    from contextlib import closing

    from include.shopstream.platform.warehouse import gold_writes, replace_rows, warehouse_hook

    def writes() -> int:
        with closing(warehouse_hook().get_conn()) as conn, conn.cursor() as cur:
            return gold_writes(cur, ("gold.orders", "gold.customers"))

    def build(name: str, customer_ids: list[int]) -> None:
        query(connected, f"DROP TABLE IF EXISTS staging.{name}")
        query(connected, f"CREATE TABLE staging.{name} (LIKE gold.customer_360)")
        for customer_id in customer_ids:
            query(
                connected,
                f"INSERT INTO staging.{name} VALUES (%s, 'DE', 1, 1, now(), now(), 'books', now())",
                (customer_id,),
            )

    from include.shopstream.pipelines.customers import COLUMNS

    query(connected, "TRUNCATE gold.customer_360")
    query(connected, "DELETE FROM staging.swaps")
    first = writes()  # run A noted gold's writes, then built from gold
    build("c360_a", [1])
    query(connected, "INSERT INTO gold.customers VALUES (2, 'b@example.com', 'B', 'FR', now(), now())")
    second = writes()  # run B merged after A's build began, noted, built
    assert second > first
    build("c360_b", [1, 2])
    assert replace_rows("gold.customer_360", "staging.c360_b", list(COLUMNS), built_after=second) == 2
    assert replace_rows("gold.customer_360", "staging.c360_a", list(COLUMNS), built_after=first) is None
    assert query(connected, "SELECT customer_id FROM gold.customer_360 ORDER BY 1") == [(1,), (2,)]
    # A later build of the same gold (a re-run) is swapped in.
    assert replace_rows("gold.customer_360", "staging.c360_b", list(COLUMNS), built_after=writes()) == 2
    # Counts reset (a restored warehouse): the count of the rows in place is above every count
    # now, and would keep every build out; it is not compared.
    query(connected, "DELETE FROM staging.gold_writes")
    assert replace_rows("gold.customer_360", "staging.c360_a", list(COLUMNS), built_after=writes()) == 1


@pytest.mark.services
def test_a_run_drops_its_staging_tables_and_those_of_runs_gone_for_days(connected):
    from include.shopstream.platform.warehouse import claim_staging, drop_staging

    mine = ("sales_core_pipeline", "manual__2026-11-24T02:00:00+00:00")
    running = ("sales_core_pipeline", "backfill__2026-11-23T02:00:00+00:00")
    failed_long_ago = ("inventory_mgmt_pipeline", "scheduled__2026-11-01T00:00:00+00:00")
    unclaimed = run_key("analytics_and_reporting_pipeline", "dataset_triggered__2026-11-24T03:00:00+00:00")
    query(connected, "DELETE FROM staging.runs")
    for run in (mine, running, failed_long_ago):
        claim_staging(*run)
    query(
        connected,
        "UPDATE staging.runs SET seen_at = now() - interval '3 days' WHERE dag_id = %s",
        (failed_long_ago[0],),
    )
    names = {
        "mine": [f"orders_raw__{run_key(*mine)}", f"orders_valid__{run_key(*mine)}"],
        "running": [f"orders_raw__{run_key(*running)}"],
        "failed": [f"inventory_raw__{run_key(*failed_long_ago)}"],
        "unclaimed": [f"daily_reports_build__{unclaimed}"],
        "other": ["orders_raw", "orders_raw_test"],
    }
    for name in [n for group in names.values() for n in group]:
        query(connected, f"CREATE TABLE IF NOT EXISTS staging.{name} (x int)")

    dropped = drop_staging(*mine)

    assert dropped == sorted(names["mine"] + names["failed"])
    left = {r[0] for r in query(connected, "SELECT tablename FROM pg_tables WHERE schemaname = 'staging'")}
    assert set(names["running"] + names["unclaimed"] + names["other"]) <= left
    assert not set(dropped) & left
    seen = dict(query(connected, "SELECT run_key, seen_at > now() - interval '1 minute' FROM staging.runs"))
    assert seen == {run_key(*running): True, unclaimed: True}, "a key found without a claim is noted as seen now"
