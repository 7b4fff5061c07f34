"""inventory: the shape of the inventory API's answer, the failure message, and fetch_stock's outcomes.

``fetch_stock`` runs as its task would, against a loopback HTTP server that plays the API's
pages (or stalls after its headers) and gold.inventory's contract on the embedded Postgres; the
lake is a recorder of what the task writes where. A failed call is left to the retry policy; an
answer that breaks the contract is quarantined and fails the task; either way nothing is landed.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.pipelines.inventory import contract_problems, fetch_stock, first_problem
from include.shopstream.platform.compat import AirflowException, AirflowFailException
from include.shopstream.platform.names import sql

pytestmark = [pytest.mark.services, pytest.mark.devtools]

EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)
DATABASE = "shopstream_unit_inventory"
LOGICAL = datetime(2026, 11, 20, 12, tzinfo=UTC)
NOT_AN_OBJECT = "the response is not an object with an 'items' list"


def test_a_response_of_the_wrong_shape_is_named():
    assert contract_problems({"items": "nope"}) == ["the response is not an object with an 'items' list"]
    assert contract_problems(None) == ["the response is not an object with an 'items' list"]
    assert contract_problems({"items": [{"sku": "A"}, 3]}) == ["items[1] is not an object"]
    assert contract_problems({"items": [{"sku": "A", "warehouse": "AMS", "on_hand": 3, "reserved": 1}]}) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@EXAMPLES
@given(items=st.lists(json_values | st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=8))
def test_every_item_that_is_not_an_object_is_named_by_its_index(items):
    expected = [f"items[{i}] is not an object" for i, item in enumerate(items) if not isinstance(item, dict)]
    assert contract_problems({"as_of": "2026-11-20T12:00:00Z", "items": items, "next_page": None}) == expected


@EXAMPLES
@given(
    payload=(json_values | st.fixed_dictionaries({"items": json_values})).filter(
        lambda v: not (isinstance(v, dict) and isinstance(v.get("items"), list))
    )
)
def test_anything_but_an_object_with_an_items_list_is_one_problem(payload):
    assert contract_problems(payload) == [NOT_AN_OBJECT]


def test_the_failure_message_names_the_item_its_sku_and_the_rule_only():
    items = [{"sku": "SKU-1"}, {"sku": "SKU-2", "warehouse": "Jane Roe's shed"}]
    problem = "items[1]: breaks reserved_within_stock ((reserved <= on_hand)): reserved='5', on_hand='3'"
    assert first_problem(problem, items) == "items[1], sku 'SKU-2': breaks reserved_within_stock"


@pytest.mark.parametrize("sku", [None, "", 7])
def test_an_item_without_a_usable_sku_is_named_by_its_index_alone(sku):
    problem = "items[0]: on_hand is not a valid integer: 'lots'"
    assert first_problem(problem, [{"sku": sku}]) == "items[0]: on_hand is not a valid integer"


# -- fetch_stock, against a loopback API and the embedded Postgres ----------------------------------


def stock_item(sku: str, on_hand: int = 5, reserved: int = 1) -> dict:
    return {"sku": sku, "warehouse": "AMS", "on_hand": on_hand, "reserved": reserved}


def page(items, *, as_of: str = "2026-11-20T12:00:00Z", next_page=None) -> dict:
    return {"as_of": as_of, "items": items, "next_page": next_page}


class Lake:
    """What a task writes to the lake, by key."""

    def __init__(self):
        self.objects: dict[str, str] = {}

    def load_string(self, body, key, bucket_name, replace):
        assert (bucket_name, replace) == ("shopstream", True)
        self.objects[key] = body


@pytest.fixture(scope="module")
def warehouse(pg_server):
    pg_server.ensure_database(DATABASE)
    with pg_server.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute(sql("warehouse_schema.sql"))
    return pg_server.url(DATABASE)


def serve(monkeypatch, handler) -> ThreadingHTTPServer:
    """A loopback server of ``handler``, as the inventory_api connection, with the fetch's Variables."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    connection = {"conn_type": "http", "host": "127.0.0.1", "port": server.server_address[1], "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_INVENTORY_API", json.dumps(connection))
    monkeypatch.setenv("AIRFLOW_VAR_SHOPSTREAM_INVENTORY_API_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("AIRFLOW_VAR_SHOPSTREAM_INVENTORY_API_PAGE_SIZE", "2")
    return server


def stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api(monkeypatch, warehouse):
    """The inventory API, answering each page with what the test put in ``api.pages``."""

    class Answer(Quiet):
        def do_GET(self) -> None:
            number = int(parse_qs(urlparse(self.path).query)["page"][0])
            self.server.asked.append(number)
            status, body = self.server.pages[number]
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = serve(monkeypatch, Answer)
    server.pages, server.asked = {}, []
    monkeypatch.setenv("AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE", warehouse)
    yield server
    stop(server)


@pytest.fixture
def stalled_api(monkeypatch):
    """The inventory API answering 200, sending its headers, then stalling."""

    class Stall(Quiet):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "4096")
            self.end_headers()
            self.wfile.write(b'{"as_of": "2026-11-20T12:00:00Z", "items": [')
            self.wfile.flush()
            time.sleep(30)  # the rest of the body never comes in time

    server = serve(monkeypatch, Stall)
    yield
    stop(server)


@pytest.fixture
def lake(monkeypatch):
    from include.shopstream.platform import lake as lake_module

    recorder = Lake()
    monkeypatch.setattr(lake_module, "lake_hook", lambda: recorder)
    return recorder


def fetch() -> dict:
    return fetch_stock.function(logical_date=LOGICAL)


def test_every_page_is_fetched_and_its_items_land_with_the_pages_as_of(api, lake):
    api.pages = {
        1: (200, page([stock_item("A"), stock_item("B")], as_of="2026-11-20T11:59:00Z", next_page=2)),
        2: (200, page([stock_item("C", on_hand=0, reserved=0)], as_of="2026-11-20T12:00:00Z")),
    }
    landed = fetch()
    key = "raw/inventory/ts=20261120T120000/stock.ndjson"
    assert landed == {"skus": 3, "uri": f"s3://shopstream/{key}"}
    assert api.asked == [1, 2]
    assert list(lake.objects) == [key]
    lines = [json.loads(line) for line in lake.objects[key].splitlines()]
    assert lines == [
        {**stock_item("A"), "as_of": "2026-11-20T11:59:00Z"},
        {**stock_item("B"), "as_of": "2026-11-20T11:59:00Z"},
        {**stock_item("C", on_hand=0, reserved=0), "as_of": "2026-11-20T12:00:00Z"},
    ]


def test_a_page_of_the_wrong_shape_is_quarantined_whole_and_fails_the_task(api, lake):
    api.pages = {1: (200, page([stock_item("A")], next_page=2)), 2: (200, {"items": [stock_item("B"), "C"]})}
    with pytest.raises(AirflowFailException) as failed:
        fetch()
    key = "quarantine/inventory/ts=20261120T120000/page-2.json"
    assert str(failed.value) == (
        "the inventory API's page 2 broke the contract (1 problem(s), first: items[1] is not an object);"
        f" nothing was loaded. The response is in s3://shopstream/{key}"
    )
    assert list(lake.objects) == [key], "nothing is landed in raw/"
    assert json.loads(lake.objects[key]) == {
        "problems": ["items[1] is not an object"],
        "response": {"items": [stock_item("B"), "C"]},
    }


def test_a_body_that_is_not_json_is_quarantined_as_its_text(api, lake):
    api.pages = {1: (200, b"<html>maintenance</html>")}
    with pytest.raises(AirflowFailException, match="page 1 broke the contract"):
        fetch()
    (body,) = lake.objects.values()
    assert json.loads(body) == {"problems": [NOT_AN_OBJECT], "response": "<html>maintenance</html>"}


def test_items_that_break_gold_inventorys_contract_are_quarantined_and_named_without_values(api, lake):
    api.pages = {1: (200, page([stock_item("A"), stock_item("B", on_hand=3, reserved=4), stock_item("A")]))}
    with pytest.raises(AirflowFailException) as failed:
        fetch()
    key = "quarantine/inventory/ts=20261120T120000/items.json"
    assert str(failed.value) == (
        "2 of the inventory API's 3 items broke gold.inventory's contract (first: items[1], sku 'B': breaks"
        f" reserved_within_stock); nothing was loaded. The items and problems are in s3://shopstream/{key}"
    )
    assert list(lake.objects) == [key]
    quarantined = json.loads(lake.objects[key])
    assert quarantined["problems"] == [
        "items[1]: breaks reserved_within_stock ((reserved <= on_hand)): reserved='4', on_hand='3'",
        "items[2]: duplicate sku (another row of the batch has it)",
    ]
    assert [item["sku"] for item in quarantined["items"]] == ["A", "B", "A"]


def test_a_next_page_already_fetched_fails_instead_of_paging_forever(api, lake):
    api.pages = {1: (200, page([stock_item("A")], next_page=2)), 2: (200, page([stock_item("B")], next_page=1))}
    with pytest.raises(AirflowFailException) as failed:
        fetch()
    assert str(failed.value) == (
        "the inventory API's page 2 names page 1 as the next one, which it has sent already; nothing was loaded"
    )
    assert api.asked == [1, 2]
    assert lake.objects == {}


def test_an_error_answer_is_left_to_the_retry_policy(api, lake):
    api.pages = {1: (200, page([stock_item("A")], next_page=2)), 2: (503, {"error": "busy"})}
    with pytest.raises(AirflowException) as failed:
        fetch()
    assert not isinstance(failed.value, AirflowFailException), "an error answer is transient: the retries apply"
    assert str(failed.value).startswith("inventory API call for page 2 failed: ")
    assert lake.objects == {}


def test_a_body_that_stalls_after_its_headers_times_out_and_is_retried(stalled_api, lake):
    started = time.monotonic()
    with pytest.raises(AirflowException) as failure:
        fetch()
    elapsed = time.monotonic() - started
    assert not isinstance(failure.value, AirflowFailException), "a stall is transient: the retries apply"
    assert "inventory API call for page 1 failed" in str(failure.value)
    assert "timed out" in str(failure.value).lower()
    assert elapsed < 10, f"the 1 s timeout bounds the call (took {elapsed:.1f} s)"
    assert lake.objects == {}, "nothing is landed or quarantined"
