"""No alert is lost: what Slack or PagerDuty did not accept is kept and sent again, in order.

The failure and success callbacks run in this process against a real TaskInstance; the outbox
is a real warehouse database on the test Postgres; alerts travel over HTTP to the local alert
sink, to a port where nothing listens (down), or to a server that answers 500 (hostile). The
clock is moved with time-machine and the housekeeping of the ``alert_redelivery`` DAG runs as
its task does (``outbox.housekeeping``). Every PagerDuty event is checked against PagerDuty's
schema on the way (``Sink.since``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from include.shopstream.ops import alerting
from tests.alerting.conftest import connections
from tests.alerting.test_alert_delivery import Receiver, failure_context

pytestmark = [pytest.mark.services, pytest.mark.devtools]

T0 = datetime(2030, 5, 6, 2, 13, 4, tzinfo=UTC)
KEY = "shopstream/sales_core_pipeline/orders_etl.extract_orders/2026-11-25T02:00:00+00:00"


@pytest.fixture(scope="module")
def warehouse(pg_server):
    database = "alert_outbox_tests"
    pg_server.ensure_database(database)
    # A warehouse whose sessions speak another time zone: the late notes must still say UTC.
    conn = pg_server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"ALTER DATABASE {database} SET timezone TO 'America/New_York'")
    conn.close()
    return database


@pytest.fixture
def outbox_rows(pg_server, warehouse, monkeypatch):
    """The outbox's and incidents' rows, emptied for each test; the warehouse connection set.

    This process has no metadata database: the housekeeping's one read of it finds no task that
    succeeded since (outbox_probe.py plays that part against a real one).
    """
    from include.shopstream.ops import outbox

    monkeypatch.setattr(outbox, "succeeded_since", lambda incidents: {})
    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", pg_server.url(warehouse))
    conn = pg_server.connect(warehouse)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('ops.alert_outbox')")
        if cur.fetchone()[0] is not None:
            cur.execute("TRUNCATE ops.alert_outbox, ops.open_incident")

    def rows(table: str = "ops.alert_outbox") -> list[dict]:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY 1")
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    yield rows
    conn.close()


@pytest.fixture
def route(sink, monkeypatch):
    """Point Slack and PagerDuty at the sink (``"up"``), a dead port (``"down"``) or a Receiver."""
    from localdev.processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"

    def to(slack, pagerduty) -> None:
        urls = [sink.url if r == "up" else dead if r == "down" else r.url for r in (slack, pagerduty)]
        for name, value in connections(slack=urls[0] + "/slack", pagerduty=urls[1] + "/pagerduty").items():
            monkeypatch.setenv(name, value)

    return to


def housekeeping_at(moment: datetime) -> dict:
    from include.shopstream.ops import outbox

    with time_machine.travel(moment, tick=False):
        return outbox.housekeeping()


def test_pagerduty_down_during_a_final_failure_pages_once_when_it_is_back(sink, route, outbox_rows):
    before = len(sink.messages())
    route("up", "down")
    with time_machine.travel(T0, tick=False):
        alerting.critical_failure(failure_context(RuntimeError("boom")))
    slack, pager = sink.since(before)
    assert len(slack) == 1 and pager == [], "Slack took its alert; PagerDuty was down"
    [entry] = outbox_rows()
    assert (entry["channel"], entry["dedup_key"], entry["action"], entry["attempts"]) == (
        "pagerduty",
        KEY,
        "trigger",
        1,
    )
    assert entry["created_at"] == T0, "when it was first meant to go"
    assert [r["dedup_key"] for r in outbox_rows("ops.open_incident")] == [KEY], "a queued trigger opens the incident"

    housekeeping_at(T0 + timedelta(minutes=5))  # still down
    assert outbox_rows()[0]["attempts"] == 2 and outbox_rows()[0]["delivered_at"] is None

    route("up", "up")
    result = housekeeping_at(T0 + timedelta(minutes=10))
    housekeeping_at(T0 + timedelta(minutes=15))
    slack, pager = sink.since(before)
    assert result["redelivered"] == {"delivered": 1}
    assert len(slack) == 1, "the Slack alert went once, at the time"
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [("trigger", KEY)], "exactly one trigger"
    assert pager[0]["payload"]["custom_details"]["first_sent_at"].startswith("2030-05-06T02:13")
    assert outbox_rows()[0]["delivered_at"] is not None and outbox_rows()[0]["attempts"] == 3


def test_slack_down_then_up_the_message_arrives_once_and_says_it_is_late(sink, route, outbox_rows):
    before = len(sink.messages())
    route("down", "up")
    with time_machine.travel(T0, tick=False):
        alerting.critical_failure_slack_only(
            failure_context(TimeoutError("stock API"), dag_id="inventory_mgmt_pipeline")
        )
    assert sink.since(before) == ([], [])
    route("up", "up")
    housekeeping_at(T0 + timedelta(minutes=10))
    housekeeping_at(T0 + timedelta(minutes=15))
    slack, pager = sink.since(before)
    assert len(slack) == 1, slack
    late, original = slack[0].split("\n", 1)
    assert late.startswith(":hourglass: *LATE*: meant for 2030-05-06 02:13:04 UTC, 10 min ago"), late
    assert original.startswith(":rotating_light: *CRITICAL*: inventory_mgmt_pipeline.orders_etl.extract_orders")
    assert "Error: TimeoutError: stock API" in original
    assert pager == []


@pytest.mark.parametrize("pagerduty_at_resolve", ["up", "down"])
def test_a_queued_trigger_is_never_sent_after_its_resolve(sink, route, outbox_rows, pagerduty_at_resolve):
    before = len(sink.messages())
    route("up", "down")
    with time_machine.travel(T0, tick=False):
        alerting.critical_failure(failure_context(RuntimeError("boom")))
    route("up", pagerduty_at_resolve)
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):  # the retry succeeded
        alerting.resolve_incident(failure_context(None))
    route("up", "up")
    housekeeping_at(T0 + timedelta(minutes=10))
    housekeeping_at(T0 + timedelta(minutes=15))
    _, pager = sink.since(before)
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [("resolve", KEY)], "never re-triggered"
    assert [(r["action"], r["delivered_at"] is not None, r["superseded_at"] is not None) for r in outbox_rows()] == [
        ("trigger", False, True),
        *([("resolve", True, False)] if pagerduty_at_resolve == "down" else []),
    ]
    assert outbox_rows("ops.open_incident")[0]["resolved_at"] is not None


def test_a_receiver_answering_500_forever_keeps_every_alert_and_pages_no_loop(route, outbox_rows, caplog):
    failing = Receiver(500)
    try:
        route(failing, failing)
        with time_machine.travel(T0, tick=False):
            alerting.critical_failure(failure_context(RuntimeError("boom")))
        assert [(r["channel"], r["attempts"]) for r in outbox_rows()] == [("slack", 1), ("pagerduty", 1)]
        for minutes in (5, 10, 15):
            result = housekeeping_at(T0 + timedelta(minutes=minutes))
            assert result["redelivered"] == {"failed": 2}, "a receiver that is down is no failure of the run"
        assert [(r["attempts"], r["delivered_at"]) for r in outbox_rows()] == [(4, None), (4, None)]
        assert all("500" in r["last_error"] or "error" in r["last_error"].lower() for r in outbox_rows())

        # A day later they are reported (straight, never queued) and kept, still retried.
        with caplog.at_level("ERROR"):
            result = housekeeping_at(T0 + timedelta(hours=25))
            again = housekeeping_at(T0 + timedelta(hours=25, minutes=5))
        assert result["stuck"] == again["stuck"] == [r["id"] for r in outbox_rows()]
        assert sum("not accepted since 2030-05-06 02:13 UTC after" in r.getMessage() for r in caplog.records) == 4
        rows = outbox_rows()
        assert len(rows) == 2 and all(r["delivered_at"] is None and r["attempts"] == 6 for r in rows), "nothing lost"
        assert all(r["reported_at"] is None for r in rows), "neither channel took the report: it is tried again"

        # The redelivery DAG's own failure alerts never land in the outbox it keeps.
        alerting.alerts_not_getting_through(
            failure_context(RuntimeError("warehouse gone"), dag_id="alert_redelivery", task_id="redeliver_alerts")
        )
        assert len(outbox_rows()) == 2
        print(f"500 forever: {len(failing.hits)} requests over 4 runs and 2 reports, outbox still {len(rows)} rows")
    finally:
        failing.close()


def test_a_stuck_alert_is_reported_once_to_the_other_channel_and_resolved_when_through(sink, route, outbox_rows):
    before = len(sink.messages())
    route("down", "up")
    with time_machine.travel(T0, tick=False):
        alerting.critical_failure_slack_only(failure_context(RuntimeError("boom"), dag_id="inventory_mgmt_pipeline"))
    housekeeping_at(T0 + timedelta(hours=25))
    housekeeping_at(T0 + timedelta(hours=25, minutes=5))
    _, pager = sink.since(before)
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [
        ("trigger", "shopstream/alert_redelivery/alerts-not-getting-through")
    ], "one page for the stuck Slack alert, not one per run"
    assert "1 alert(s) to slack not accepted for over 1 d" in pager[0]["payload"]["summary"]
    route("up", "up")
    housekeeping_at(T0 + timedelta(hours=25, minutes=10))
    slack, pager = sink.since(before)
    assert len(slack) == 1 and "meant for 2030-05-06 02:13:04 UTC, 1 d 1 h 10 min ago" in slack[0]
    assert [e["event_action"] for e in pager] == ["trigger", "resolve"]


@pytest.mark.xdist_group("platform")  # the probes' metadata database (conftest.py)
def test_incidents_whose_success_no_callback_saw_are_resolved_by_the_housekeeping(probe_airflow, airflow_stack, sink):
    from tests.alerting.conftest import run_probe

    warehouse = "outbox_probe_warehouse"
    airflow_stack.pg.ensure_database(warehouse)
    before = len(sink.messages())
    lines = run_probe(
        probe_airflow,
        "outbox_probe",
        env={**sink.connections(), "AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE": airflow_stack.pg.url(warehouse)},
    )
    out = json.loads(lines[-1])
    _, pager = sink.since(before)
    sales = "shopstream/sales_core_pipeline/orders_etl.extract_orders/{}T02:00:00+00:00"
    marked, failed = sales.format("2031-02-01"), sales.format("2031-02-02")
    analytics = (
        "shopstream/analytics_and_reporting_pipeline/daily_reports.build_daily_reports/2031-02-03T02:41:00+00:00"
    )
    assert out["state"] == "success"
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [
        ("trigger", marked),
        ("trigger", failed),
        ("trigger", analytics),
        ("resolve", marked),  # marked success in the UI: no callback ran
        ("resolve", analytics),  # its DAG re-run by hand succeeded, under another interval's key
    ]
    assert out["incidents"] == {marked: True, failed: False, analytics: True}, (
        "the next day's success resolves no other"
    )
    assert out["queued"] == 0


def test_an_unreachable_warehouse_costs_no_alert_and_little_time(sink, route, monkeypatch, caplog):
    import time

    from include.shopstream.ops import outbox
    from localdev.processes import free_port

    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", f"postgresql://u:p@127.0.0.1:{free_port()}/warehouse")
    monkeypatch.setattr(outbox, "_unreachable_until", 0.0)
    before = len(sink.messages())
    route("up", "down")
    started = time.monotonic()
    with caplog.at_level("ERROR"):
        alerting.critical_failure(failure_context(RuntimeError("boom")))
    elapsed = time.monotonic() - started
    slack, _ = sink.since(before)
    assert len(slack) == 1, "the alert goes out without its safety net"
    kept = [r.getMessage() for r in caplog.records if "neither delivered nor queued" in r.getMessage()]
    assert len(kept) == 1 and KEY in kept[0] and '"action": "trigger"' in kept[0], "the page is in the log, whole"
    print(f"warehouse refusing connections: the callback returned after {elapsed:.1f} s")
    assert elapsed < alerting.DELIVERY_BOUND_SECONDS


def test_a_resolve_during_the_redelivery_of_its_trigger_waits_for_it(sink, route, outbox_rows, monkeypatch):
    import threading
    import time

    from include.shopstream.ops import outbox

    before = len(sink.messages())
    route("up", "down")
    alerting.critical_failure(failure_context(RuntimeError("boom")))
    route("up", "up")
    # The redelivery has read the kept trigger and is about to send it when the task succeeds.
    late = outbox._late
    monkeypatch.setattr(outbox, "_late", lambda *args: (time.sleep(2), late(*args))[1])
    redelivery = threading.Thread(target=outbox.housekeeping)
    redelivery.start()
    time.sleep(0.5)
    alerting.resolve_incident(failure_context(None))
    redelivery.join(timeout=60)
    _, pager = sink.since(before)
    assert [(e["event_action"], e["dedup_key"]) for e in pager] == [("trigger", KEY), ("resolve", KEY)], (
        "the resolve goes after the trigger that was already on its way, never before it"
    )
