"""The inventory API answers 200, sends its headers, then stalls: the call times out and retries.

A real HTTP server on loopback plays the stalled body; `fetch_stock` runs as its task would, with
the timeout Variable set low. A stall is a transient fault (the retry policy applies), never the
quarantine-and-fail path of a bad answer, and nothing is landed.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.exceptions import AirflowException, AirflowFailException

from include.shopstream.pipelines.inventory import fetch_stock

pytestmark = pytest.mark.devtools


@pytest.fixture
def stalled_api(monkeypatch):
    class Stall(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"as_of": "2026-11-20T12:00:00Z", "items": [')
            self.wfile.flush()
            time.sleep(30)  # the rest of the body never comes in time

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stall)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection = {"conn_type": "http", "host": "127.0.0.1", "port": server.server_address[1], "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_INVENTORY_API", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_VAR_SHOPSTREAM_INVENTORY_API_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("AIRFLOW_VAR_SHOPSTREAM_INVENTORY_API_PAGE_SIZE", "500")
    yield
    server.shutdown()
    server.server_close()


def test_a_body_that_stalls_after_its_headers_times_out_and_is_retried(stalled_api):
    started = time.monotonic()
    with pytest.raises(AirflowException) as failure:
        fetch_stock.function(logical_date=datetime(2026, 11, 20, 12, tzinfo=UTC))
    elapsed = time.monotonic() - started
    assert not isinstance(failure.value, AirflowFailException), "a stall is transient: the retries apply"
    assert "inventory API call for page 1 failed" in str(failure.value)
    assert "timed out" in str(failure.value).lower()
    assert elapsed < 10, f"the 1 s timeout bounds the call (took {elapsed:.1f} s)"
