"""No alert is lost: whatever the exception, the failure callbacks reach Slack and PagerDuty.

The callbacks run in this process against a real TaskInstance; the alerts travel over HTTP to
the local alert sink (or to small servers that fail on purpose), through the Slack and
PagerDuty providers' hooks, and every PagerDuty event is checked against PagerDuty's schema.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pendulum
import pytest

from include.shopstream.ops import alerting
from tests.alerting import pagerduty_schema
from tests.alerting.conftest import connections

pytestmark = pytest.mark.devtools

BUSINESS_DAY = pendulum.datetime(2026, 11, 25, 2, tz="UTC")


def failure_context(
    exception, dag_id="sales_core_pipeline", task_id="orders_etl.extract_orders", try_number=4, **extra
):
    """What Airflow hands a failure callback: a real TaskInstance of a real operator."""
    from include.shopstream.platform.compat import DAG, EmptyOperator
    from tests.airflow_objects import task_instance

    with DAG(dag_id, start_date=BUSINESS_DAY, schedule=None):
        task = EmptyOperator(task_id=task_id, retries=3)
    ti = task_instance(task, run_id=f"scheduled__{BUSINESS_DAY.isoformat()}")
    ti.try_number = try_number
    context = {
        "ti": ti,
        "task_instance": ti,
        "logical_date": BUSINESS_DAY,
        "data_interval_start": BUSINESS_DAY,
        "exception": exception,
    }
    context.update(extra)
    return context


class BrokenStrError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ itself fails")


class BrokenStrAndReprError(BrokenStrError):
    def __repr__(self) -> str:
        raise RuntimeError("__repr__ fails too")


EMOJI = "ünïcødé «quotes» \"double\" 'single', commas, and emoji 😀🚨"
CASES = {
    "bare assert": (AssertionError(), "AssertionError"),
    "TimeoutError()": (TimeoutError(), "TimeoutError"),
    "ConnectionError()": (ConnectionError(), "ConnectionError"),
    "empty first line": (ValueError("\n\n  the real message\nmore"), "ValueError: the real message"),
    "10,000 characters": (RuntimeError("x" * 10_000), "RuntimeError: " + "x" * 100),
    "unicode": (ValueError(EMOJI), f"ValueError: {EMOJI}"),
    "non-string args": (KeyError(42, None, {"a": 1}), "KeyError: (42, None, {'a': 1})"),
    "__str__ raises": (BrokenStrError(), "BrokenStrError"),
    "__str__ and __repr__ raise": (BrokenStrAndReprError(), "BrokenStrAndReprError"),
    "a string, as Airflow passes for zombies": ("Detected zombie job", "Detected zombie job"),
    "no exception at all": (None, None),
}


@pytest.fixture
def to_sink(sink, monkeypatch):
    for name, value in sink.connections().items():
        monkeypatch.setenv(name, value)
    return sink


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_every_failure_reaches_slack_and_pagerduty(to_sink, case):
    exception, shown = CASES[case]
    before = len(to_sink.messages())
    alerting.critical_failure(failure_context(exception))
    slack, pager = to_sink.since(before)  # validates the PagerDuty events against the schema
    assert len(slack) == 1 and slack[0].startswith(":rotating_light: *CRITICAL*"), slack
    assert [e["event_action"] for e in pager] == ["trigger"]
    if shown is None:
        assert "Error:" not in slack[0]
    else:
        assert f"Error: {shown}" in slack[0]
        assert pager[0]["payload"]["summary"].startswith("sales_core_pipeline.orders_etl.extract_orders failed: ")
    slack_error = next((line[len("Error: ") :] for line in slack[0].splitlines() if line.startswith("Error: ")), None)
    assert pager[0]["payload"]["custom_details"]["error"] == slack_error
    assert len(slack_error or "") <= alerting.ERROR_LIMIT


def test_the_longest_ids_airflow_allows_still_fit_pagerduty(to_sink):
    # Airflow allows 250 characters for a DAG id and for a task id.
    dag_id, task_id = "d" * 250, "g" * 120 + "." + "t" * 129
    before = len(to_sink.messages())
    alerting.critical_failure(failure_context(RuntimeError("é" * 5000), dag_id=dag_id, task_id=task_id))
    slack, pager = to_sink.since(before)
    assert len(slack) == 1 and len(pager) == 1
    assert len(pager[0]["dedup_key"]) <= alerting.KEY_LIMIT < pagerduty_schema.DEDUP_KEY_LIMIT
    assert 1000 < len(pager[0]["payload"]["summary"]) <= pagerduty_schema.SUMMARY_LIMIT


def test_a_resolve_carries_only_the_key(to_sink):
    details = alerting.describe(failure_context(None))
    before = len(to_sink.messages())
    assert alerting.pagerduty("resolve", details, summary="done")
    _, pager = to_sink.since(before)
    assert pager == [
        {"event_action": "resolve", "dedup_key": alerting.dedup_key(details), "routing_key": "local-dev-routing-key"}
    ]


# -- faulty receivers -----------------------------------------------------------------------


class Receiver:
    """A local HTTP server that answers every POST with ``status`` after ``delay`` seconds."""

    def __init__(self, status: int, delay: float = 0.0) -> None:
        self.hits: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.hits.append(self.path)
                time.sleep(delay)
                body = b'{"status": "error"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers(monkeypatch):
    opened = []

    def open_(slack: Receiver | str, pagerduty: Receiver | str) -> None:
        opened.extend(r for r in (slack, pagerduty) if isinstance(r, Receiver))
        urls = [r.url if isinstance(r, Receiver) else r for r in (slack, pagerduty)]
        for name, value in connections(slack=urls[0] + "/slack", pagerduty=urls[1] + "/pagerduty").items():
            monkeypatch.setenv(name, value)

    yield open_
    for receiver in opened:
        receiver.close()


def test_slack_is_retried_once_on_a_server_error_and_never_on_a_bad_request(receivers):
    failing, refusing, pager = Receiver(503), Receiver(400), Receiver(202)
    receivers(failing, pager)
    assert alerting.slack("critical", "x", alerting.describe(failure_context(None))) is False
    assert len(failing.hits) == 2
    receivers(refusing, pager)
    assert alerting.slack("critical", "x", alerting.describe(failure_context(None))) is False
    assert len(refusing.hits) == 1


def test_both_receivers_down_costs_little_and_says_why(receivers, caplog):
    from localdev.processes import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    receivers(dead, dead)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger=alerting.__name__):
        alerting.critical_failure(failure_context(TimeoutError()))
    elapsed = time.monotonic() - started
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not deliver the critical Slack alert" in m for m in messages), messages
    assert any("could not trigger the PagerDuty incident" in m for m in messages), messages
    assert all(r.exc_info for r in caplog.records if "could not" in r.getMessage()), "the cause is logged"
    print(f"both receivers refusing connections: the callback returned after {elapsed:.1f} s")
    assert elapsed < alerting.DELIVERY_BOUND_SECONDS


def test_stalled_receivers_hold_the_callback_no_longer_than_its_bound(receivers, caplog):
    stalled_slack, stalled_pager = Receiver(200, delay=120), Receiver(202, delay=120)
    receivers(stalled_slack, stalled_pager)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger=alerting.__name__):
        alerting.critical_failure(failure_context(RuntimeError("boom")))
    elapsed = time.monotonic() - started
    print(f"Slack and PagerDuty both stalled: the callback returned after {elapsed:.1f} s")
    assert len(stalled_slack.hits) == 2 and len(stalled_pager.hits) == 2, "each was tried twice"
    assert elapsed < alerting.DELIVERY_BOUND_SECONDS
