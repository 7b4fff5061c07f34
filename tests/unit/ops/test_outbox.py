"""The alert outbox (ops/outbox.py): what it keeps, sends again, reports and resolves, row by row.

The outbox is a real warehouse database on the test session's embedded Postgres; Slack and
PagerDuty are stand-ins for ``alerting.post_slack`` and ``alerting.send_pagerduty_event`` that
take or refuse each alert, and the outbox's clock is set by the test.
tests/alerting/test_alert_outbox.py plays the same over HTTP with the real callbacks.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from include.shopstream.ops import alerting, outbox
from include.shopstream.platform import run_states

pytestmark = pytest.mark.services

T0 = datetime(2030, 5, 6, 2, 13, 4, tzinfo=UTC)
KEY = "shopstream/sales_core_pipeline/orders_etl.extract_orders/2030-05-05T02:00:00+00:00"
DETAILS = {
    "dag": "sales_core_pipeline",
    "task": "orders_etl.extract_orders",
    "logical_date": "2030-05-05T02:00:00+00:00",
    "business_date": "2030-05-05T02:00:00+00:00",
    "try_number": 4,
    "max_tries": 4,
    "log_url": "http://localhost:8080/log",
    "error": "RuntimeError: boom",
}


def trigger(key: str = KEY) -> dict:
    return alerting.pagerduty_event("trigger", DETAILS, "sales_core_pipeline.orders_etl.extract_orders failed", key)


def resolve(key: str = KEY) -> dict:
    return alerting.pagerduty_event("resolve", DETAILS, "done", key)


class Clock:
    """The outbox's ``now``, moved by hand."""

    def __init__(self) -> None:
        self.moment = T0

    def __call__(self) -> datetime:
        return self.moment


class Receivers:
    """Slack and PagerDuty: each takes what it is sent unless it is refusing."""

    def __init__(self) -> None:
        self.refusing: set[str] = set()
        self.refused_texts: set[str] = set()  # Slack messages refused whatever the channel does
        self.sent: list[tuple[str, dict]] = []

    def post_slack(self, text: str) -> None:
        self.take("slack", {"text": text})

    def send_pagerduty_event(self, event: dict) -> None:
        self.take("pagerduty", event)

    def take(self, channel: str, body: dict) -> None:
        if channel in self.refusing or body.get("text", "").endswith(tuple(self.refused_texts)):
            raise RuntimeError(f"{channel} answered 503")
        self.sent.append((channel, body))


@pytest.fixture(scope="module")
def warehouse(pg_server) -> str:
    database = "unit_ops_outbox"
    pg_server.ensure_database(database)
    return database


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(outbox, "now", fake)
    return fake


@pytest.fixture
def receivers(monkeypatch) -> Receivers:
    fake = Receivers()
    monkeypatch.setattr(alerting, "post_slack", fake.post_slack)
    monkeypatch.setattr(alerting, "send_pagerduty_event", fake.send_pagerduty_event)
    return fake


@pytest.fixture
def rows(pg_server, warehouse, monkeypatch, clock, receivers):
    """The rows of a table of the outbox (emptied for each test), as dicts in id order."""
    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", pg_server.url(warehouse))
    monkeypatch.setattr(outbox, "_unreachable_until", 0.0)
    outbox.connect().close()  # the outbox makes its tables
    conn = pg_server.connect(warehouse)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("TRUNCATE ops.alert_outbox, ops.open_incident")

    def read(table: str = "ops.alert_outbox") -> list[dict]:
        with conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {table} ORDER BY 1")
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    read.execute = lambda statement, *args: conn.cursor().execute(statement, *args)
    yield read
    conn.close()


def pending(rows) -> list[dict]:
    return [r for r in rows() if r["delivered_at"] is None and r["superseded_at"] is None]


# -- delivering -----------------------------------------------------------------------------------


def test_an_alert_the_receiver_takes_is_not_kept(rows, receivers):
    assert outbox.deliver("slack", "k", {"text": "hello"}, "post hello") is True
    assert receivers.sent == [("slack", {"text": "hello"})]
    assert rows() == []


def test_an_alert_the_receiver_refuses_is_kept_with_when_and_why(rows, receivers):
    receivers.refusing = {"slack", "pagerduty"}
    assert outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS) is False
    assert outbox.deliver("slack", "shopstream/slack/1/x", {"text": "hello"}, "post hello") is False
    page, message = rows()
    assert (page["channel"], page["dedup_key"], page["action"], page["body"]) == (
        "pagerduty",
        KEY,
        "trigger",
        trigger(),
    )
    assert (page["created_at"], page["last_attempt_at"], page["attempts"]) == (T0, T0, 1)
    assert page["last_error"] == "RuntimeError: pagerduty answered 503"
    assert (message["channel"], message["action"], message["body"]) == ("slack", "post", {"text": "hello"})
    assert all(r["delivered_at"] is None and r["superseded_at"] is None for r in (page, message))


def test_an_alert_not_to_be_queued_is_only_logged_whole(rows, receivers, caplog):
    receivers.refusing = {"pagerduty"}
    with caplog.at_level(logging.ERROR, logger=outbox.__name__):
        assert outbox.deliver("pagerduty", KEY, trigger(), "trigger", queue=False, details=DETAILS) is False
    assert rows() == [] and rows("ops.open_incident") == []
    [logged] = [r.getMessage() for r in caplog.records if "not queued" in r.getMessage()]
    assert KEY in logged and '"action": "trigger"' in logged and "failed" in logged


def test_the_latest_alert_for_a_key_replaces_the_pending_one(rows, receivers, clock):
    receivers.refusing = {"pagerduty"}
    outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS)
    clock.moment = T0 + timedelta(minutes=3)
    outbox.deliver("pagerduty", KEY, resolve(), "resolve")
    outbox.deliver("pagerduty", "shopstream/other", trigger("shopstream/other"), "trigger", details=DETAILS)
    first = rows()[0]
    assert first["superseded_at"] == clock.moment and first["action"] == "trigger"
    assert [(r["dedup_key"], r["action"]) for r in pending(rows)] == [(KEY, "resolve"), ("shopstream/other", "trigger")]
    receivers.refusing = set()
    clock.moment = T0 + timedelta(minutes=4)
    outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS)
    assert [r["dedup_key"] for r in pending(rows)] == ["shopstream/other"], "one taken now replaces the kept one"


def test_a_trigger_sent_or_kept_opens_the_incident_and_a_resolve_closes_it(rows, receivers, clock):
    outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS)
    [incident] = rows("ops.open_incident")
    assert (incident["dag_id"], incident["task_id"], incident["business_date"], incident["note"]) == (
        "sales_core_pipeline",
        "orders_etl.extract_orders",
        "2030-05-05T02:00:00+00:00",
        "http://localhost:8080/log",
    )
    assert (incident["opened_at"], incident["resolved_at"]) == (T0, None)
    assert outbox.is_open(KEY)

    clock.moment = T0 + timedelta(minutes=5)
    outbox.deliver("pagerduty", KEY, trigger(), "trigger again", details=DETAILS)
    assert rows("ops.open_incident")[0]["opened_at"] == T0, "a retried page keeps when it opened"

    receivers.refusing = {"pagerduty"}
    clock.moment = T0 + timedelta(minutes=10)
    outbox.deliver("pagerduty", KEY, resolve(), "resolve")
    assert rows("ops.open_incident")[0]["resolved_at"] == clock.moment, "a kept resolve closes it too"
    assert not outbox.is_open(KEY)

    clock.moment = T0 + timedelta(days=1)
    outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS)
    reopened = rows("ops.open_incident")[0]
    assert (reopened["opened_at"], reopened["resolved_at"]) == (clock.moment, None)


def test_a_slack_message_opens_no_incident(rows, receivers):
    receivers.refusing = {"slack"}
    outbox.deliver("slack", KEY, {"text": "x"}, "post", details=DETAILS)
    assert rows("ops.open_incident") == []


def test_an_unreachable_outbox_still_sends_and_logs_what_it_could_not_keep(monkeypatch, receivers, caplog):
    def unreachable():
        raise ConnectionError("the warehouse was unreachable moments ago; not trying again yet")

    monkeypatch.setattr(outbox, "connect", unreachable)
    assert outbox.deliver("slack", "k", {"text": "hello"}, "post") is True
    receivers.refusing = {"pagerduty"}
    with caplog.at_level(logging.ERROR, logger=outbox.__name__):
        assert outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS) is False
    [logged] = [r.getMessage() for r in caplog.records if "neither delivered nor queued" in r.getMessage()]
    assert KEY in logged and '"channel": "pagerduty"' in logged


def test_the_incident_book_remembers_and_forgets(rows, clock):
    assert not outbox.is_open(KEY)
    outbox.remember(KEY, "by hand")
    assert outbox.is_open(KEY) and rows("ops.open_incident")[0]["note"] == "by hand"
    clock.moment = T0 + timedelta(hours=1)
    outbox.forget(KEY)
    assert not outbox.is_open(KEY) and rows("ops.open_incident")[0]["resolved_at"] == clock.moment
    outbox.remember(KEY, "again")
    assert outbox.is_open(KEY)


# -- sending again --------------------------------------------------------------------------------


def test_kept_alerts_are_sent_again_least_recently_tried_first_and_say_they_are_late(rows, receivers, clock):
    receivers.refusing = {"slack", "pagerduty"}
    outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS)
    clock.moment = T0 + timedelta(minutes=1)
    outbox.deliver("slack", "shopstream/slack/4/x", {"text": "hello"}, "post")
    receivers.refusing = set()
    clock.moment = T0 + timedelta(days=1, hours=2, minutes=11)
    assert outbox.redeliver() == {"delivered": 2}
    (_, page), (_, message) = receivers.sent
    assert page["custom_details"]["first_sent_at"] == T0.isoformat()
    assert page["dedup_key"] == KEY and page["summary"] == trigger()["summary"]
    assert message == {"text": ":hourglass: *LATE*: meant for 2030-05-06 02:14:04 UTC, 1 d 2 h 10 min ago\nhello"}
    assert [(r["attempts"], r["last_attempt_at"], r["delivered_at"], r["last_error"]) for r in rows()] == [
        (2, clock.moment, clock.moment, None)
    ] * 2
    assert outbox.redeliver() == {}, "nothing is sent twice"


def test_a_kept_resolve_is_sent_again_as_it_was(rows, receivers, clock):
    receivers.refusing = {"pagerduty"}
    outbox.deliver("pagerduty", KEY, resolve(), "resolve")
    receivers.refusing = set()
    clock.moment = T0 + timedelta(minutes=5)
    outbox.redeliver()
    assert receivers.sent == [("pagerduty", resolve())]


def test_a_channel_that_fails_three_times_in_a_row_is_left_for_the_next_run(rows, receivers, clock):
    receivers.refusing = {"slack", "pagerduty"}
    for n in range(5):
        outbox.deliver("slack", f"shopstream/slack/{n}", {"text": f"message {n}"}, "post")
    outbox.deliver("pagerduty", KEY, trigger(), "trigger", details=DETAILS)
    receivers.refusing = {"slack"}
    clock.moment = T0 + timedelta(minutes=5)
    assert outbox.redeliver() == {"failed": 3, "not tried": 2, "delivered": 1}
    assert [r["attempts"] for r in rows()] == [2, 2, 2, 1, 1, 2]
    assert all(r["last_error"] == "RuntimeError: slack answered 503" for r in pending(rows))
    clock.moment = T0 + timedelta(minutes=10)
    receivers.refusing = set()
    assert outbox.redeliver() == {"delivered": 5}
    assert [m["text"] for _, m in receivers.sent[1:3]] == [
        ":hourglass: *LATE*: meant for 2030-05-06 02:13:04 UTC, 10 min ago\nmessage 3",
        ":hourglass: *LATE*: meant for 2030-05-06 02:13:04 UTC, 10 min ago\nmessage 4",
    ], "those not tried last run go first"


def test_only_failures_in_a_row_pause_a_channel(rows, receivers, clock):
    receivers.refusing = {"slack"}
    for n in range(6):
        outbox.deliver("slack", f"shopstream/slack/{n}", {"text": f"message {n}"}, "post")
    receivers.refusing, receivers.refused_texts = set(), {"message 0", "message 1", "message 3", "message 4"}
    clock.moment = T0 + timedelta(minutes=5)
    assert outbox.redeliver() == {"failed": 4, "delivered": 2}, "a message taken in between starts the count again"


def test_an_entry_replaced_while_the_run_goes_is_not_sent(rows, receivers, clock, monkeypatch):
    receivers.refusing = {"slack"}
    outbox.deliver("slack", "a", {"text": "a"}, "post")
    outbox.deliver("slack", "b", {"text": "b, first"}, "post")
    receivers.refusing = set()
    clock.moment = T0 + timedelta(minutes=5)

    def post_and_replace(text: str) -> None:
        receivers.post_slack(text)
        if text.endswith("\na"):  # b's retried check sends it again while the run is on a
            outbox.deliver("slack", "b", {"text": "b, again"}, "post")

    monkeypatch.setattr(alerting, "post_slack", post_and_replace)
    assert outbox.redeliver() == {"delivered": 1, "replaced": 1}
    assert [body["text"].rsplit("\n", 1)[-1] for _, body in receivers.sent] == ["a", "b, again"]


def test_a_run_past_its_budget_tries_nothing_more(rows, receivers):
    receivers.refusing = {"slack"}
    outbox.deliver("slack", "a", {"text": "a"}, "post")
    outbox.deliver("slack", "b", {"text": "b"}, "post")
    receivers.refusing = set()
    assert outbox.redeliver(budget_seconds=-1) == {"not tried": 2}
    assert receivers.sent == [] and len(pending(rows)) == 2


# -- stuck alerts, incidents whose task succeeded, old rows -----------------------------------


def test_an_alert_stuck_for_a_day_is_reported_straight_once_and_kept(rows, receivers, clock, caplog):
    receivers.refusing = {"slack"}
    outbox.deliver("slack", "a", {"text": "a"}, "post")
    clock.moment = T0 + outbox.STUCK_AFTER - timedelta(seconds=1)
    assert outbox.report_stuck() == []
    clock.moment = T0 + outbox.STUCK_AFTER
    with caplog.at_level(logging.ERROR, logger=outbox.__name__):
        stuck = outbox.report_stuck()
        assert outbox.report_stuck() == stuck
    assert stuck == [r["id"] for r in rows()]
    [(channel, page)] = receivers.sent
    assert (channel, page["action"], page["dedup_key"]) == ("pagerduty", "trigger", outbox.OUTBOX_INCIDENT)
    assert page["summary"].startswith("1 alert(s) to slack not accepted for over 1 d; still retried every 5 minutes")
    assert page["custom_details"]["error"] == "RuntimeError: slack answered 503"
    assert (
        sum("not accepted since 2030-05-06 02:13 UTC after 1 attempts" in r.getMessage() for r in caplog.records) == 2
    )
    [entry] = rows()
    assert entry["reported_at"] == clock.moment and entry["delivered_at"] is None, "reported once, never dropped"
    assert len(rows()) == 1, "the report itself is never queued"
    assert outbox.is_open(outbox.OUTBOX_INCIDENT)


def test_a_stuck_alert_nobody_could_be_told_about_is_reported_again_next_run(rows, receivers, clock):
    receivers.refusing = {"slack", "pagerduty"}
    outbox.deliver("slack", "a", {"text": "a"}, "post")
    clock.moment = T0 + timedelta(days=2)
    outbox.report_stuck()
    assert rows()[0]["reported_at"] is None and len(rows()) == 1
    receivers.refusing = {"slack"}
    outbox.report_stuck()
    assert rows()[0]["reported_at"] == clock.moment


def test_the_stuck_incident_is_resolved_once_alerts_get_through(rows, receivers, clock):
    outbox.remember(outbox.OUTBOX_INCIDENT, "stuck")
    assert outbox.report_stuck() == []
    assert [(c, e["action"], e["dedup_key"]) for c, e in receivers.sent] == [
        ("pagerduty", "resolve", outbox.OUTBOX_INCIDENT)
    ]
    assert not outbox.is_open(outbox.OUTBOX_INCIDENT)
    outbox.report_stuck()
    assert len(receivers.sent) == 1, "nothing open, nothing resolved"


def test_only_a_failed_tasks_own_incident_is_resolved_when_its_task_succeeded(rows, receivers, monkeypatch):
    deadline_key = "shopstream/sales_core_pipeline/ingest-deadline/2030-05-05"
    other_key = alerting.incident_key("sales_core_pipeline", "orders_etl.load_orders", "2030-05-05T02:00:00+00:00")
    rows.execute(
        "INSERT INTO ops.open_incident (dedup_key, dag_id, task_id, business_date, opened_at) VALUES"
        " (%s, %s, %s, %s, %s), (%s, %s, %s, %s, %s), (%s, %s, %s, %s, %s), (%s, NULL, NULL, '', %s)",
        (
            KEY, "sales_core_pipeline", "orders_etl.extract_orders", DETAILS["business_date"], T0,
            other_key, "sales_core_pipeline", "orders_etl.load_orders", DETAILS["business_date"], T0,
            deadline_key, "sales_core_pipeline", "orders_etl.announce_orders", "2030-05-05", T0,
            "shopstream/by-hand", T0,
        ),
    )  # fmt: skip
    asked = []

    def succeeded_since(incidents):
        asked.extend(incidents)
        return {KEY: "manual__2030-05-06"}

    monkeypatch.setattr(outbox, "succeeded_since", succeeded_since)
    assert outbox.reconcile() == [KEY]
    assert sorted(i.key for i in asked) == sorted([KEY, other_key]), "the deadline's and others follow their rules"
    assert [(e["action"], e["dedup_key"]) for _, e in receivers.sent] == [("resolve", KEY)]
    assert {r["dedup_key"]: r["resolved_at"] is not None for r in rows("ops.open_incident")} == {
        KEY: True,
        other_key: False,
        deadline_key: False,
        "shopstream/by-hand": False,
    }


def test_an_incident_has_succeeded_when_its_task_succeeded_since_it_opened(monkeypatch):
    asked = []

    def succeeded_in(dag_id, task_id, business_date, *, ended_after):
        asked.append((dag_id, task_id, business_date, ended_after))
        return "manual__x" if task_id == "done" else None

    monkeypatch.setattr(run_states, "succeeded_in", succeeded_in)
    incidents = [outbox.Incident(f"k/{task}", "d", task, "2030-05-05", T0) for task in ("done", "failing")]
    assert outbox.succeeded_since(incidents) == {"k/done": "manual__x"}
    assert asked == [("d", "done", "2030-05-05", T0), ("d", "failing", "2030-05-05", T0)]


def test_finished_rows_age_out_after_two_weeks_and_pending_ones_never(rows, receivers, clock):
    old, recent = T0 - outbox.KEEP_FINISHED - timedelta(minutes=1), T0 - outbox.KEEP_FINISHED + timedelta(minutes=1)
    rows.execute(
        "INSERT INTO ops.alert_outbox (channel, dedup_key, action, body, created_at, last_attempt_at,"
        " delivered_at, superseded_at) VALUES"
        " ('slack', 'delivered-old', 'post', '{}', %(old)s, %(old)s, %(old)s, NULL),"
        " ('slack', 'replaced-old', 'post', '{}', %(old)s, %(old)s, NULL, %(old)s),"
        " ('slack', 'delivered-recent', 'post', '{}', %(old)s, %(old)s, %(recent)s, NULL),"
        " ('slack', 'pending-old', 'post', '{}', %(old)s, %(old)s, NULL, NULL);"
        "INSERT INTO ops.open_incident (dedup_key, opened_at, resolved_at) VALUES"
        " ('resolved-old', %(old)s, %(old)s), ('resolved-recent', %(old)s, %(recent)s), ('open-old', %(old)s, NULL)",
        {"old": old, "recent": recent},
    )
    assert outbox.prune() == {"alerts": 2, "incidents": 1}
    assert [r["dedup_key"] for r in rows()] == ["delivered-recent", "pending-old"]
    assert sorted(r["dedup_key"] for r in rows("ops.open_incident")) == ["open-old", "resolved-recent"]


def test_one_housekeeping_run_redelivers_reports_reconciles_and_prunes(rows, receivers, monkeypatch):
    monkeypatch.setattr(outbox, "succeeded_since", lambda incidents: {})
    receivers.refusing = {"slack"}
    outbox.deliver("slack", "a", {"text": "a"}, "post")
    receivers.refusing = set()
    assert outbox.housekeeping() == {
        "redelivered": {"delivered": 1},
        "stuck": [],
        "resolved": [],
        "pruned": {"alerts": 0, "incidents": 0},
    }


# -- the warehouse connection ---------------------------------------------------------------------


def test_an_unreachable_warehouse_is_not_tried_again_for_a_minute(monkeypatch):
    import psycopg2

    from localdev.processes import free_port

    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", f"postgresql://u:p@127.0.0.1:{free_port()}/warehouse")
    monkeypatch.setattr(outbox, "_unreachable_until", 0.0)
    tries = []
    real = outbox._connect
    monkeypatch.setattr(outbox, "_connect", lambda *args: tries.append(1) or real(*args))
    with pytest.raises(psycopg2.OperationalError):
        outbox.connect()
    with pytest.raises(ConnectionError, match="unreachable moments ago; not trying again yet"):
        outbox.connect()
    assert len(tries) == 1
    waited = outbox._unreachable_until - time.monotonic()
    assert outbox.RECONNECT_AFTER_SECONDS - 5 < waited <= outbox.RECONNECT_AFTER_SECONDS


def test_the_connection_is_bounded_in_time_and_passes_only_the_tls_settings():
    received = {}
    psycopg2 = SimpleNamespace(connect=lambda **kwargs: received.update(kwargs))
    extra = {"sslmode": "verify-full", "sslrootcert": "/ca.pem", "application_name": "x", "options": "-c x=1"}
    conn_info = SimpleNamespace(
        host="warehouse", port=None, login="u", password="p", schema="shopstream", extra_dejson=extra
    )
    outbox._connect(psycopg2, conn_info)
    assert received == {
        "host": "warehouse",
        "port": 5432,
        "user": "u",
        "password": "p",
        "dbname": "shopstream",
        "connect_timeout": outbox.CONNECT_TIMEOUT_SECONDS,
        "options": f"-c statement_timeout={outbox.STATEMENT_TIMEOUT_MS} -c lock_timeout={outbox.LOCK_TIMEOUT_MS}",
        "application_name": "shopstream-alert-outbox",
        "sslmode": "verify-full",
        "sslrootcert": "/ca.pem",
    }


# -- how a late alert reads -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "age"),
    [
        (timedelta(seconds=59), "under a minute"),
        (timedelta(minutes=10), "10 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(days=1), "1 d"),
        (timedelta(days=2, minutes=5), "2 d 5 min"),
        (timedelta(days=1, hours=1, minutes=10, seconds=59), "1 d 1 h 10 min"),
    ],
)
def test_an_age_reads_in_days_hours_and_minutes(delta, age):
    assert outbox._age(delta) == age


def test_a_late_alert_says_when_it_was_meant_for_in_utc_whatever_the_sessions_zone():
    new_york = timezone(timedelta(hours=-4))
    created = T0.astimezone(new_york)
    slack = outbox._late("slack", {"text": "hello"}, created, T0 + timedelta(minutes=10))
    assert slack == {"text": ":hourglass: *LATE*: meant for 2030-05-06 02:13:04 UTC, 10 min ago\nhello"}
    page = outbox._late("pagerduty", trigger(), created, T0 + timedelta(minutes=10))
    assert page == {**trigger(), "custom_details": {**trigger()["custom_details"], "first_sent_at": T0.isoformat()}}
    assert outbox._late("pagerduty", resolve(), created, T0) == resolve()
