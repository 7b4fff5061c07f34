"""How one alert reaches Slack or PagerDuty (ops/alert_transport.py): retries and the wire format.

The Slack retry rule is asked directly through slack_sdk's ``RetryHandler`` interface; the
PagerDuty hook sends to a small HTTP server in this process, and what it receives is checked
against PagerDuty's published Events API v2 schema (tests/alerting/pagerduty_schema.py).
"""

from __future__ import annotations

import json
import threading
from http.client import RemoteDisconnected
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.error import URLError

import pytest
from slack_sdk.http_retry import HttpRequest, HttpResponse, RetryState

from include.shopstream.ops import alert_transport, alerting
from tests.alerting import pagerduty_schema

# The schema check reads PagerDuty's OpenAPI document with openapi-schema-validator, a development tool.
pytestmark = pytest.mark.devtools

ROUTING_KEY = "unit-routing-key"


def can_retry(*, attempt: int = 0, status: int | None = None, error: Exception | None = None) -> bool:
    handler = alert_transport.RetryOnceOnServerOrNetworkError()
    request = HttpRequest(method="POST", url="http://slack.invalid/hook", headers={})
    response = HttpResponse(status_code=status, headers={}) if status is not None else None
    return handler.can_retry(state=RetryState(current_attempt=attempt), request=request, response=response, error=error)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_slack_is_tried_once_more_on_a_server_error(status):
    assert can_retry(status=status)


@pytest.mark.parametrize("status", [400, 403, 404, 410, 429])
def test_slack_is_never_tried_again_on_a_client_error(status):
    assert not can_retry(status=status)


@pytest.mark.parametrize(
    "error",
    [URLError("refused"), TimeoutError(), ConnectionResetError(), RemoteDisconnected("closed")],
    ids=["url", "timeout", "reset", "disconnected"],
)
def test_slack_is_tried_once_more_on_a_network_error_and_only_once(error):
    assert can_retry(error=error)
    assert not can_retry(attempt=1, error=error), "two tries at most"
    assert not can_retry(attempt=1, status=503)


def test_slack_is_not_tried_again_on_an_error_of_its_own_code():
    assert not can_retry(error=ValueError("bad text"))


def test_the_pagerduty_client_is_bounded_in_time_and_tries():
    client = alert_transport.BoundedEventsClient(ROUTING_KEY, "http://alert-sink:8082/pagerduty")
    assert client.url == "http://alert-sink:8082/pagerduty", "plain http is taken for the local sink"
    assert client.timeout == alerting.HTTP_TIMEOUT_SECONDS
    assert client.retry == {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
    assert client.max_network_attempts == 1
    assert alert_transport.BoundedEventsClient(ROUTING_KEY, None).url == "https://events.pagerduty.com"


def test_a_connection_without_a_host_reaches_pagerduty_itself(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_ALERTS", '{"conn_type": "pagerduty_events", "password": "routing-key"}')
    hook = alerting.pagerduty_hook()
    assert hook.endpoint is None and hook.integration_key == "routing-key"
    assert alerting.events_endpoint("http://alert-sink:8082/pagerduty/") == "http://alert-sink:8082/pagerduty"
    with pytest.raises(ValueError, match="must be a URL with a scheme"):
        alerting.events_endpoint("alert-sink:8082")


def test_a_connection_whose_host_has_no_scheme_is_refused_when_the_hook_is_built(monkeypatch):
    connection = {"conn_type": "pagerduty_events", "host": "alert-sink:8082", "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_ALERTS", json.dumps(connection))
    with pytest.raises(ValueError, match="must be a URL with a scheme, got 'alert-sink:8082'"):
        alerting.pagerduty_hook()


class EventsApi:
    """A local Events API: records each request's path and JSON body, answers ``statuses`` in turn."""

    def __init__(self, *statuses: int) -> None:
        self.received: list[tuple[str, dict]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.received.append((self.path, body))
                status = statuses[min(len(api.received), len(statuses)) - 1]
                answer = json.dumps({"status": "success", "dedup_key": body.get("dedup_key", "new")}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pagerduty"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def events_api(monkeypatch):
    """Point the PagerDuty connection at a local Events API; pauses between tries cut short."""
    monkeypatch.setattr(alert_transport.BoundedEventsClient, "cooldown_factor", lambda self: 0.01)
    opened = []

    def open_(*statuses: int) -> EventsApi:
        api = EventsApi(*statuses)
        opened.append(api)
        connection = {"conn_type": "pagerduty_events", "host": api.url + "/", "password": ROUTING_KEY}
        monkeypatch.setenv("AIRFLOW_CONN_PAGERDUTY_ALERTS", json.dumps(connection))
        return api

    yield open_
    for api in opened:
        api.close()


DETAILS = {
    "dag": "sales_core_pipeline",
    "task": "orders_etl.extract_orders",
    "logical_date": "2026-11-25T02:00:00+00:00",
    "business_date": "2026-11-25T02:00:00+00:00",
    "try_number": 4,
    "max_tries": 4,
    "log_url": "http://localhost:8080/log",
    "error": "RuntimeError: " + "é" * 3000,
}


def test_a_trigger_reaches_the_connections_host_in_pagerdutys_schema(events_api):
    api = events_api(202)
    event = alerting.pagerduty_event("trigger", DETAILS, "s" * 5000)
    alerting.send_pagerduty_event(event)
    [(path, body)] = api.received
    assert path == "/pagerduty/v2/enqueue"
    assert pagerduty_schema.problems(body) == []
    assert (body["routing_key"], body["event_action"], body["dedup_key"]) == (
        ROUTING_KEY,
        "trigger",
        alerting.dedup_key(DETAILS),
    )
    assert body["payload"]["severity"] == "critical" and body["payload"]["source"] == alerting.SOURCE
    assert body["payload"]["custom_details"]["dag"] == "sales_core_pipeline"
    assert body["links"] == [{"href": "http://localhost:8080/log", "text": "Airflow log"}]


def test_a_resolve_carries_only_its_key(events_api):
    api = events_api(202)
    alerting.send_pagerduty_event(alerting.pagerduty_event("resolve", DETAILS, "done", key="shopstream/k"))
    [(_, body)] = api.received
    assert body == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": "shopstream/k"}
    assert pagerduty_schema.problems(body) == []


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttled_or_failing_pagerduty_is_tried_twice_and_no_more(events_api, status):
    api = events_api(status)
    with pytest.raises(Exception, match=str(status)):
        alerting.send_pagerduty_event(alerting.pagerduty_event("trigger", DETAILS, "s"))
    assert len(api.received) == 2


def test_a_pagerduty_that_takes_the_second_try_is_sent_once_more_only(events_api):
    api = events_api(502, 202)
    alerting.send_pagerduty_event(alerting.pagerduty_event("trigger", DETAILS, "s"))
    assert len(api.received) == 2 and api.received[0] == api.received[1]


def test_a_refused_event_is_not_tried_again(events_api):
    api = events_api(400)
    with pytest.raises(Exception, match="400"):
        alerting.send_pagerduty_event(alerting.pagerduty_event("trigger", DETAILS, "s"))
    assert len(api.received) == 1
