"""The Dataset chain end to end: a real scheduler on LocalExecutor, Postgres and a mocked S3.

The scenarios run in file order on one platform (tests/e2e/conftest.py) and build on each
other: scenario 4 re-runs scenario 1's date. Expected data comes from the generator and plain
Python (tests/pipelines/expected.py); run states and Dataset events from Airflow's own tables.
"""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from include.shopstream.platform.compat import EVENT_TRIGGERED
from localdev.processes import free_port
from localdev.stack import SOURCE_DB
from tests.e2e.conftest import DATA, HISTORY_DAYS, business_day
from tests.pipelines import expected

# A scenario waits on up to three DAG runs in a row; with the other test group beside it on 2 cores that takes more
# than the suite's 15 minutes per test.
pytestmark = [pytest.mark.services, pytest.mark.e2e, pytest.mark.xdist_group("e2e"), pytest.mark.timeout(2400)]

SALES = "sales_core_pipeline"
INVENTORY = "inventory_mgmt_pipeline"
ANALYTICS = "analytics_and_reporting_pipeline"
OBSERVABILITY = "observability_pipeline"
DEADLINE = "ingest_deadline"
ORDERS_URI = "s3://shopstream/gold/orders"
CUSTOMER_360_URI = "s3://shopstream/gold/customer_360"
SALES_TIMEOUT = 900
# How long analytics must stay untriggered after a failed ingest (it starts within seconds of
# an event when one exists).
QUIET_WINDOW = 45


def expected_good_orders(chain, day) -> dict[int, dict]:
    """The day's good orders as the seeded source held them, by the contract's rules."""
    first = chain.seeded_until.date() - timedelta(days=HISTORY_DAYS)
    rows = expected.source_rows(DATA, first, chain.seeded_until)
    good, _ = expected.split(expected.extract(rows, day))
    return {row["order_id"]: row for row in good}


def gold_duplicates(chain) -> list[dict]:
    checks = {
        "gold.orders": "order_id",
        "gold.customer_360": "customer_id",
        "gold.daily_reports": "day, category",
        "gold.product_catalog": "product_id",
    }
    found = []
    for table, key in checks.items():
        found += chain.warehouse(
            f"SELECT '{table}' AS tbl, {key}, count(*) FROM {table} GROUP BY {key} HAVING count(*) > 1"
        )
    return found


def parquet_rows(chain, key: str) -> int:
    body = chain.stack.lake.client().get_object(Bucket="shopstream", Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body)).num_rows


def take_slot(chain, dag_id: str, run_id: str) -> str:
    """Trigger ``dag_id`` in the slot the scheduler would fill next, then let it schedule."""
    chain.trigger(dag_id, chain.slot(dag_id), run_id)
    chain.airflow("dags", "unpause", dag_id)
    return run_id


@pytest.fixture(scope="module")
def first_sales(chain):
    """Scenario 1's sales run, its analytics run and the observability runs that followed."""
    run_id = take_slot(chain, SALES, "e2e_sales_first")
    run = chain.wait_for_run(SALES, run_id, SALES_TIMEOUT)
    assert run["state"] == "success", chain.evidence(SALES, run_id)
    analytics = chain.wait_for_consumer(ANALYTICS, SALES, run_id, SALES_TIMEOUT)
    return {
        "run_id": run_id,
        "run": run,
        "logical_date": run["logical_date"].astimezone(UTC),
        "day": business_day(run),
        "analytics": analytics,
    }


def test_1_a_sales_run_fills_gold_and_starts_analytics_then_observability(chain, first_sales):
    day = first_sales["day"]
    gold = {r["order_id"]: r for r in chain.warehouse("SELECT * FROM gold.orders")}
    want = expected_good_orders(chain, day)
    assert want, f"the seeded source must hold good orders for {day}"
    assert set(gold) == set(want)
    assert all(gold[i]["status"] == want[i]["status"] and gold[i]["amount"] == want[i]["amount"] for i in want)

    customers = {r["customer_id"] for r in chain.warehouse("SELECT customer_id FROM gold.customer_360")}
    assert customers == {o["customer_id"] for o in want.values() if o["status"] != "cancelled"}

    events = chain.events_from(SALES, first_sales["run_id"])
    assert sorted(e["uri"] for e in events) == [CUSTOMER_360_URI, ORDERS_URI]
    assert all(e["extra"] == {"ds": day.isoformat()} for e in events)

    analytics = first_sales["analytics"]
    assert analytics["run_type"] == EVENT_TRIGGERED
    assert analytics["state"] == "success", chain.evidence(ANALYTICS, analytics["run_id"])
    reported = chain.warehouse("SELECT DISTINCT day FROM gold.daily_reports")
    assert reported, "analytics wrote no daily report"

    for source_dag, source_run in ((SALES, first_sales["run_id"]), (ANALYTICS, analytics["run_id"])):
        observed = chain.wait_for_consumer(OBSERVABILITY, source_dag, source_run)
        assert observed["run_type"] == EVENT_TRIGGERED
        assert observed["state"] == "success", chain.evidence(OBSERVABILITY, observed["run_id"])
        assert observed["start_date"] >= chain.run(source_dag, source_run)["start_date"]


@pytest.fixture
def source_unreachable(chain):
    """Point the `shopstream_source` connection at a closed port; restore airflow_settings.yaml after."""
    chain.airflow("connections", "delete", "shopstream_source")
    chain.airflow(
        "connections", "add", "shopstream_source",
        "--conn-uri", f"postgres://postgres:postgres@127.0.0.1:{free_port()}/shopstream_source",
    )  # fmt: skip
    yield
    chain.apply_settings()


def test_2_a_failed_ingest_publishes_nothing_and_pages(chain, first_sales, source_unreachable):
    logical = first_sales["logical_date"] - timedelta(days=1)
    analytics_before = chain.metadata("SELECT coalesce(max(id), 0) AS id FROM dag_run WHERE dag_id = %s", (ANALYTICS,))
    alerts_before = len(chain.alerts())
    run_id = chain.trigger(SALES, logical, "e2e_sales_source_down")

    run = chain.wait_for_run(SALES, run_id, SALES_TIMEOUT)
    states = chain.task_states(SALES, run_id)
    assert run["state"] == "failed"
    assert states["orders_etl.extract_orders"] == "failed"
    assert states["orders_etl.announce_orders"] == "upstream_failed"
    assert ORDERS_URI not in {e["uri"] for e in chain.events_from(SALES, run_id)}

    time.sleep(QUIET_WINDOW)
    new_analytics = chain.metadata(
        "SELECT run_id FROM dag_run WHERE dag_id = %s AND id > %s", (ANALYTICS, analytics_before[0]["id"])
    )
    assert new_analytics == [], "analytics must not start without a new orders event"

    alerts = chain.alerts()[alerts_before:]
    slack = [a["body"]["text"] for a in alerts if a["path"].startswith("/slack")]
    critical = [t for t in slack if t.startswith(":rotating_light: *CRITICAL*") and "orders_etl.extract_orders" in t]
    assert len(critical) == 1, slack
    assert logical.isoformat() in critical[0] and "try 4 of 4" in critical[0]
    pages = [a["body"] for a in alerts if a["path"].startswith("/pagerduty")]
    business = run["data_interval_start"].astimezone(UTC)  # one incident per business date
    assert ("trigger", f"shopstream/{SALES}/orders_etl.extract_orders/{business.isoformat()}") in {
        (p["event_action"], p["dedup_key"]) for p in pages
    }


def test_3_inventory_runs_through_api_failures_and_triggers_observability(chain):
    alerts_before = len(chain.alerts())
    run_id = take_slot(chain, INVENTORY, "e2e_inventory")
    run = chain.wait_for_run(INVENTORY, run_id, SALES_TIMEOUT)
    assert run["state"] == "success", chain.evidence(INVENTORY, run_id)

    tries = chain.metadata(
        "SELECT task_id, try_number, start_date, end_date FROM task_instance WHERE dag_id = %s AND run_id = %s",
        (INVENTORY, run_id),
    )
    by_task = {t["task_id"]: t for t in tries}
    # The simulator's seeded fault plan fails the first stock call: the task succeeds on a retry.
    assert by_task["inventory_sync.fetch_stock"]["try_number"] >= 2
    calls = [line for line in (chain.logs / "inventory_api.log").read_text().splitlines() if "/v1/stock" in line]
    assert any('" 503 ' in line or '" 504 ' in line for line in calls), calls
    assert any('" 200 ' in line for line in calls), calls
    last_sync = max(t["end_date"] for name, t in by_task.items() if name.startswith("inventory_sync."))
    first_catalog = min(t["start_date"] for name, t in by_task.items() if name.startswith("product_catalog."))
    assert first_catalog >= last_sync, "product_catalog must run after inventory_sync"

    skus = chain.warehouse("SELECT count(*) AS n, count(DISTINCT sku) AS distinct_skus FROM gold.inventory")[0]
    assert skus["n"] == skus["distinct_skus"] == chain.simulator_skus
    assert chain.warehouse("SELECT count(*) AS n FROM gold.product_catalog")[0]["n"] > 0

    slack = [a["body"]["text"] for a in chain.alerts()[alerts_before:] if a["path"].startswith("/slack")]
    assert any(t.startswith(":warning: *WARNING*") and "inventory_sync.fetch_stock" in t for t in slack), slack

    observed = chain.wait_for_consumer(OBSERVABILITY, INVENTORY, run_id)
    assert observed["state"] == "success", chain.evidence(OBSERVABILITY, observed["run_id"])


def snapshot(chain, day) -> dict:
    return {
        "orders": chain.warehouse("SELECT count(*) AS n, count(DISTINCT order_id) AS ids FROM gold.orders")[0],
        "customer_360": chain.warehouse("SELECT count(*) AS n FROM gold.customer_360")[0]["n"],
        "lake": sorted(chain.lake_objects(f"raw/orders/ds={day}/"))
        + sorted(chain.lake_objects(f"gold/orders/ds={day}/"))
        + sorted(chain.lake_objects(f"quarantine/orders/ds={day}/")),
        "published_rows": parquet_rows(chain, f"gold/orders/ds={day}/orders.parquet"),
    }


def test_4_re_running_a_date_duplicates_nothing(chain, first_sales):
    run_id, day = first_sales["run_id"], first_sales["day"]
    logical = first_sales["logical_date"]
    before = snapshot(chain, day)
    events_before = len(chain.events_from(SALES, run_id))
    assert before["orders"]["n"] == before["orders"]["ids"] > 0

    chain.airflow(
        "tasks", "clear", SALES, "--start-date", logical.isoformat(), "--end-date", logical.isoformat(), "--yes"
    )
    run = chain.wait_for_run(SALES, run_id, SALES_TIMEOUT)
    assert run["state"] == "success", chain.evidence(SALES, run_id)
    # The re-run's events start analytics again; scenario 5 checks that it succeeded and that
    # its tables hold no duplicates.

    after = snapshot(chain, day)
    assert after == before
    assert len(chain.events_from(SALES, run_id)) == 2 * events_before, "the re-run announces its datasets again"
    assert gold_duplicates(chain) == []


def test_5_a_scheduler_killed_mid_run_finishes_it_after_a_restart(chain, first_sales):
    logical = first_sales["logical_date"] - timedelta(days=2)
    run_id = chain.trigger(SALES, logical, "e2e_sales_scheduler_killed")

    deadline = time.monotonic() + SALES_TIMEOUT
    while time.monotonic() < deadline:
        states = chain.task_states(SALES, run_id)
        if "success" in states.values() and "running" in states.values():
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the run never had tasks both done and running: {chain.evidence(SALES, run_id)}")
    killed = chain.kill_airflow()
    interrupted = [task for task, state in chain.task_states(SALES, run_id).items() if state == "running"]
    assert killed and interrupted
    assert chain.run(SALES, run_id)["state"] == "running"

    chain.start_scheduler()
    run = chain.wait_for_run(SALES, run_id, SALES_TIMEOUT)
    assert run["state"] == "success", chain.evidence(SALES, run_id)
    day = business_day(run)

    gold = {r["order_id"] for r in chain.warehouse("SELECT order_id FROM gold.orders")}
    assert set(expected_good_orders(chain, day)) <= gold, "orders of the interrupted day are missing"
    assert gold_duplicates(chain) == []
    published = (
        pq.read_table(
            io.BytesIO(
                chain.stack.lake.client()
                .get_object(Bucket="shopstream", Key=f"gold/orders/ds={day}/orders.parquet")["Body"]
                .read()
            )
        )
        .column("order_id")
        .to_pylist()
    )
    assert published and len(published) == len(set(published)), "the published partition holds duplicates"
    analytics = chain.wait_for_consumer(ANALYTICS, SALES, run_id, SALES_TIMEOUT)
    assert analytics["state"] == "success", chain.evidence(ANALYTICS, analytics["run_id"])
    rerun_analytics = chain.wait_for_consumer(
        ANALYTICS, SALES, first_sales["run_id"], SALES_TIMEOUT, after_id=first_sales["analytics"]["id"]
    )
    assert rerun_analytics["state"] == "success", "the analytics run started by scenario 4's re-run"
    assert gold_duplicates(chain) == []
    chain.notes.append(f"killed {len(killed)} processes with {len(interrupted)} task(s) running: {interrupted}")


def deadline_alerts(chain, before: int, business_date) -> tuple[list[dict], list[dict]]:
    """(Slack messages, PagerDuty events) about ``business_date``'s ingest deadline since ``before``."""
    from include.shopstream.ops import deadlines

    key = deadlines.INGEST.incident_key(business_date)
    alerts = chain.alerts()[before:]
    slack = [a for a in alerts if a["path"].startswith("/slack") and f"ingest of {business_date} " in a["body"]["text"]]
    pages = [a for a in alerts if a["path"].startswith("/pagerduty") and a["body"].get("dedup_key") == key]
    return slack, pages


def test_6_the_scheduler_runs_the_four_oclock_check_and_pages_for_an_ingest_that_never_ran(chain):
    from include.shopstream.ops import deadlines

    alerts_before = len(chain.alerts())
    # A check triggered by hand for a deadline before the seeded history: it judges the date it
    # names, whatever the platform's age, and no sales run exists for that date, as when the
    # ingest never started. The real scheduler queues the check and LocalExecutor runs it.
    due = deadlines.INGEST.latest_due(datetime.now(UTC)) - timedelta(days=HISTORY_DAYS + 5)
    business_date = deadlines.INGEST.business_date(due)
    run_id = chain.trigger(DEADLINE, due, "e2e_deadline_never_ran")
    chain.airflow("dags", "unpause", DEADLINE)
    run = chain.wait_for_run(DEADLINE, run_id, 300)
    assert run["state"] == "success", chain.evidence(DEADLINE, run_id)
    slack, pages = deadline_alerts(chain, alerts_before, business_date)
    assert len(slack) == 1 and slack[0]["body"]["text"].startswith(":rotating_light: *CRITICAL*"), slack
    assert "no run of sales_core_pipeline has started" in slack[0]["body"]["text"]
    assert [p["body"]["event_action"] for p in pages] == ["trigger"]
    paged_after = datetime.fromisoformat(pages[0]["received_at"]) - run["queued_at"]
    print(f"ingest_deadline: queued to PagerDuty page in {paged_after.total_seconds():.1f} s")

    # Unpaused, the scheduler itself creates the latest 04:00 check (catchup=False takes the
    # latest slot). It pages only when that date's ingest is not done and the sales DAG had a run
    # before that 04:00: a platform younger than the deadline is no missed ingest.
    latest = deadlines.INGEST.latest_due(datetime.now(UTC))
    deadline = time.monotonic() + 300
    while not (scheduled := chain.metadata(
        "SELECT run_id FROM dag_run WHERE dag_id = %s AND run_type = 'scheduled' AND execution_date = %s",
        (DEADLINE, latest),
    )):  # fmt: skip
        assert time.monotonic() < deadline, f"no scheduled {DEADLINE} run for {latest}: {chain.scheduler_log_tail()}"
        time.sleep(2)
    run = chain.wait_for_run(DEADLINE, scheduled[0]["run_id"], 300)
    assert run["state"] == "success", chain.evidence(DEADLINE, scheduled[0]["run_id"])
    start, end = deadlines.INGEST.interval(latest)
    done_at = chain.metadata(
        "SELECT min(ti.end_date) AS at FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
        " WHERE dr.dag_id = %s AND dr.data_interval_end = %s AND ti.task_id = %s AND ti.state = 'success'",
        (SALES, end, deadlines.INGEST.task_id),
    )[0]["at"]
    since = chain.metadata(
        "SELECT min(coalesce(queued_at, start_date)) AS at FROM dag_run WHERE dag_id = %s", (SALES,)
    )[0]["at"]
    if (done_at is not None and done_at <= latest) or since is None or since > latest:
        expected = (0, 0)
    else:
        expected = (1, 0) if done_at is not None else (1, 1)  # done late: a Slack warning, no page
    slack, pages = deadline_alerts(chain, alerts_before, start.date())
    assert (len(slack), len(pages)) == expected, (done_at, since, slack, pages)
    print(f"ingest_deadline at {latest:%Y-%m-%d %H:%M}: ingest of {start.date()} done at {done_at}, first run {since}")


def test_7_a_task_process_killed_mid_merge_is_retried_and_writes_each_order_once(chain, first_sales):

    day, logical = first_sales["day"], first_sales["logical_date"]
    held = min(expected_good_orders(chain, day))  # one of the orders the merge upserts
    # Hold one gold row so the merge's upsert stops on it mid-statement; kill the task process that
    # runs it (what an OOM kill or a lost worker does); then let the row go.
    with chain.stack.pg.connect("shopstream_warehouse") as lock:
        with lock.cursor() as cur:
            cur.execute("SELECT 1 FROM gold.orders WHERE order_id = %s FOR UPDATE", (held,))
        chain.airflow(
            "tasks", "clear", SALES, "--start-date", logical.isoformat(), "--end-date", logical.isoformat(), "--yes"
        )
        deadline = time.monotonic() + SALES_TIMEOUT
        while not (
            runners := chain.task_processes(SALES, first_sales["run_id"], "orders_etl.merge_orders")
        ) or not chain.warehouse(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%%ON CONFLICT%%'"
        ):
            assert time.monotonic() < deadline, chain.evidence(SALES, first_sales["run_id"])
            merge_state = chain.task_states(SALES, first_sales["run_id"]).get("orders_etl.merge_orders")
            assert merge_state != "success", f"the merge did not stop on order {held}"
            time.sleep(0.5)
        for process in runners:
            process.kill()
        lock.rollback()

    run = chain.wait_for_run(SALES, first_sales["run_id"], SALES_TIMEOUT)
    assert run["state"] == "success", chain.evidence(SALES, first_sales["run_id"])
    (merge,) = chain.metadata(
        "SELECT try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
        (SALES, first_sales["run_id"], "orders_etl.merge_orders"),
    )
    assert merge["try_number"] >= 2, "the killed try failed and a retry finished the merge"
    assert set(expected_good_orders(chain, day)) <= {
        r["order_id"] for r in chain.warehouse("SELECT order_id FROM gold.orders")
    }
    assert gold_duplicates(chain) == []


def test_8_two_sales_runs_at_once_leave_gold_as_one_after_the_other(chain, first_sales):
    """A manual run on the scheduler and a backfill of another day, started as `make run` starts
    its history: both load their day while their customer merges wait on a lock held here, then
    go on together. Gold must then hold both days, as if they had run in turn.

    While it waits, the backfilled merge's task process is killed, as a metadata-database
    deadlock on its last write ends it: its LocalTaskJob ends, the task still says running, and
    Airflow 2's backfill would wait for it forever. The platform sets it up for retry.
    """
    import os
    import signal

    # A manual run covers the day before its logical date, a backfilled one the day of it: these
    # are the fourth and fifth days before scenario 1's, which no other scenario runs.
    manual_logical = first_sales["logical_date"] - timedelta(days=3)
    backfill_logical = first_sales["logical_date"] - timedelta(days=5)
    manual_id = "e2e_sales_beside_a_backfill"
    log = chain.stack.logs / "backfill.log"
    kills_a_task = chain.stack.profile.backfill_is_a_process  # Airflow 3's scheduler runs backfills
    followed: list[str] = []
    killed = False
    with chain.stack.pg.connect("shopstream_warehouse") as lock:
        with lock.cursor() as cur:
            cur.execute("LOCK TABLE gold.customers IN ACCESS EXCLUSIVE MODE")
        chain.trigger(SALES, manual_logical, manual_id)
        history = chain.stack.backfill([backfill_logical], env=chain.env)
        try:
            deadline = time.monotonic() + SALES_TIMEOUT
            while True:
                followed += filter(None, [chain.stack.resume_backfill(history)])
                backfill_runs = chain.metadata(
                    "SELECT run_id FROM dag_run WHERE dag_id = %s AND execution_date = %s", (SALES, backfill_logical)
                )
                loaded = [
                    chain.task_states(SALES, run_id).get("orders_etl.load_orders")
                    for run_id in [manual_id, *(r["run_id"] for r in backfill_runs)]
                ]
                waiting = chain.warehouse(
                    "SELECT count(*) AS n FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND query ILIKE '%%INSERT INTO%%gold%%customers%%'"
                )[0]["n"]
                if loaded == ["success", "success"] and waiting == 2 and not killed:
                    if not kills_a_task:
                        break
                    (merge,) = chain.metadata(
                        "SELECT pid FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
                        (SALES, backfill_runs[0]["run_id"], "orders_etl.merge_customers"),
                    )
                    os.kill(merge["pid"], signal.SIGKILL)
                    killed = True
                # The killed merge's session stays in Postgres' lock queue until it gets the lock.
                if killed and any("merge_customers" in line and "set up for retry" in line for line in followed):
                    break
                assert chain.stack.backfill_running(), f"the backfill ended early: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, (
                    f"both runs never loaded their orders and waited on the customers' merge (or the killed"
                    f" merge was not set up for retry): loaded={loaded}, waiting={waiting}, followed={followed};"
                    f" {chain.evidence(SALES, manual_id)}\nbackfill log: {log.read_text()[-3000:]}"
                )
                time.sleep(1)
        finally:
            lock.rollback()
    backfill_id = backfill_runs[0]["run_id"]
    deadline = time.monotonic() + SALES_TIMEOUT
    while chain.stack.backfill_running():
        followed += filter(None, [chain.stack.resume_backfill(history)])
        if time.monotonic() >= deadline:
            lines = [line for line in log.read_text().splitlines() if "backfill progress" not in line]
            pytest.fail(
                f"the backfill did not end: {followed}\n{chain.evidence(SALES, backfill_id)}\n"
                f"backfill log, but its progress lines: {chr(10).join(lines[-60:])}"
            )
        time.sleep(1)
    assert chain.stack.backfill_process is None or chain.stack.backfill_process.process.returncode == 0, (
        log.read_text()[-3000:]
    )
    manual = chain.wait_for_run(SALES, manual_id, SALES_TIMEOUT)
    backfilled = chain.run(SALES, backfill_id)
    assert manual["state"] == "success", chain.evidence(SALES, manual_id)
    assert backfilled["state"] == "success", chain.evidence(SALES, backfill_id)
    assert manual["start_date"] < backfilled["end_date"] and backfilled["start_date"] < manual["end_date"], (
        "the two runs must have run at the same time"
    )
    assert business_day(manual) != business_day(backfilled)
    if chain.stack.profile.backfill_is_a_process:
        (merge,) = chain.metadata(
            "SELECT try_number, state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
            (SALES, backfill_id, "orders_etl.merge_customers"),
        )
        assert merge == {"try_number": 2, "state": "success"}, "the killed merge's retry finished it"

    # Gold as the two days one after the other leave it: every good order of each day, as the
    # source holds it; customer_360 rebuilt from the whole of gold; customers the source's.
    gold = {r["order_id"]: r for r in chain.warehouse("SELECT * FROM gold.orders")}
    for run in (manual, backfilled):
        day = business_day(run)
        want = expected_good_orders(chain, day)
        missing = sorted(set(want) - set(gold))
        assert not missing, f"{len(missing)} of the {len(want)} good orders of {day} are not in gold.orders"
        changed = [i for i in want if (gold[i]["status"], gold[i]["amount"]) != (want[i]["status"], want[i]["amount"])]
        assert not changed, f"orders of {day} differ from the source: {changed[:5]}"
    categories = {p["product_id"]: p["category"] for p in DATA.products()}
    countries = {c["customer_id"]: c["country"] for c in DATA.customers()}
    want_360 = expected.customer_360(gold, categories, countries)
    got_360 = {r["customer_id"]: r for r in chain.warehouse("SELECT * FROM gold.customer_360")}
    assert set(got_360) == set(want_360), "gold.customer_360 is not the build of the whole of gold.orders"
    fields = ("country", "lifetime_value", "order_count", "first_order_at", "last_order_at", "preferred_category")
    assert [c for c in want_360 if any(got_360[c][f] != want_360[c][f] for f in fields)] == []
    source = chain.stack.query(SOURCE_DB, "SELECT customer_id, email, country, updated_at FROM customers")
    customers = chain.warehouse("SELECT customer_id, email, country, updated_at FROM gold.customers")
    assert sorted(map(tuple, map(dict.values, customers))) == sorted(map(tuple, map(dict.values, source)))
    assert gold_duplicates(chain) == []

    from include.shopstream.platform.warehouse import run_key

    keys = [run_key(SALES, manual_id), run_key(SALES, backfill_id)]
    left = chain.warehouse(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'staging' AND right(tablename, 12) = ANY(%s)", (keys,)
    )
    assert left == [], "each run drops its staging tables at its end"
    chain.notes.append(
        f"overlapping sales runs: {manual['start_date']:%H:%M:%S}-{manual['end_date']:%H:%M:%S} (manual) and"
        f" {backfilled['start_date']:%H:%M:%S}-{backfilled['end_date']:%H:%M:%S} (backfill)"
    )
