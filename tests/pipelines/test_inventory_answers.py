"""inventory_sync against inventory API answers that are 200 OK and still wrong.

A stand-in API on loopback answers each run with one kind of bad body; the connection
inventory_api points at it for that run only. Bad answers fail the task at once (retrying the
same answer cannot help), land whole in quarantine/inventory/, and leave gold.inventory as it was.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from include.shopstream.platform.warehouse import sql

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform-2")]

ITEM = {"sku": "SKU-00001", "warehouse": "AMS", "on_hand": 5, "reserved": 1}
ANSWERS = {
    "an HTML error page": ("text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "truncated JSON": ("application/json", b'{"as_of": "2026-11-21T08:00:00Z", "items": [{"sku": "SKU-00'),
    "an item reserving more than it has": (
        "application/json",
        json.dumps(
            {"as_of": "2026-11-21T08:00:00Z", "next_page": None, "items": [ITEM, {**ITEM, "sku": "B", "reserved": 9}]}
        ).encode(),
    ),
    "a SKU twice": (
        "application/json",
        json.dumps({"as_of": "2026-11-21T08:00:00Z", "next_page": None, "items": [ITEM, ITEM]}).encode(),
    ),
}


@pytest.fixture
def bad_api():
    """A loopback HTTP server that answers every GET with 200 and ``body``, set per test."""
    answer = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            content_type, body = answer["body"]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], answer
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("kind", list(ANSWERS))
def test_a_bad_answer_is_quarantined_whole_and_fails_at_once(platform, bad_api, kind):
    port, answer = bad_api
    answer["body"] = ANSWERS[kind]
    platform.warehouse(sql("warehouse_schema.sql"))  # a new warehouse: the tables a first run would make
    before = platform.warehouse("SELECT sku, on_hand, reserved, as_of FROM gold.inventory ORDER BY sku")
    logical = datetime(2026, 11, 21, list(ANSWERS).index(kind) * 4, tzinfo=UTC)

    states = platform.run_dag("inventory_mgmt_pipeline", logical, AIRFLOW_CONN_INVENTORY_API=f"http://127.0.0.1:{port}")

    assert states["inventory_sync.fetch_stock"] == "failed"
    assert states["inventory_sync.merge_inventory"] == "upstream_failed"
    assert states["inventory_sync.announce_inventory"] == "upstream_failed", "nothing is published"
    (task,) = platform.metadata(
        "SELECT ti.try_number, ti.max_tries FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
        " WHERE dr.dag_id = 'inventory_mgmt_pipeline' AND dr.execution_date = %s"
        " AND ti.task_id = 'inventory_sync.fetch_stock'",
        (logical,),
    )
    assert (task["try_number"], task["max_tries"]) == (1, 5), "a bad answer is not retried"
    assert platform.warehouse("SELECT sku, on_hand, reserved, as_of FROM gold.inventory ORDER BY sku") == before
    stamp = logical.strftime("%Y%m%dT%H%M%S")
    listed = platform.lake().list_objects_v2(Bucket="shopstream", Prefix=f"quarantine/inventory/ts={stamp}/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert len(keys) == 1, keys
    quarantined = json.loads(platform.lake().get_object(Bucket="shopstream", Key=keys[0])["Body"].read())
    assert quarantined["problems"]
    assert "broke" in states["__log__"] and f"s3://shopstream/{keys[0]}" in states["__log__"]
