"""Each launcher starts its service, the service answers, and stopping leaves nothing behind."""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request

import psycopg2
import pytest

from localdev import LocalDevError, alert_sink, inventory_api, postgres, s3
from localdev.processes import free_port, port_is_free

# One xdist worker runs the whole group, in file order (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("make-run")]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_embedded_postgres_starts_answers_and_stops(tmp_path):
    port = free_port()
    server = postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    pid = server.service.pid
    assert server.ensure_database("launcher_check") is True
    assert server.ensure_database("launcher_check") is False, "a second call finds it"
    with server.connect("launcher_check") as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database(), version()")
        database, version = cur.fetchone()
    assert database == "launcher_check"
    assert version.startswith("PostgreSQL 16")

    server.stop()
    assert gone(pid)
    assert port_is_free("127.0.0.1", port)
    assert not (tmp_path / "data" / "postmaster.pid").exists(), "a clean shutdown removes the lock file"


def test_embedded_postgres_keeps_its_data_across_restarts(tmp_path):
    port = free_port()
    server = postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    server.stop()

    again = postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    try:
        with again.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT n FROM kept")
            assert cur.fetchone() == (42,)
    finally:
        again.stop()


def refused(server, password) -> str:
    """The error of a TCP connection to ``server`` as its superuser with ``password``."""
    with pytest.raises(psycopg2.OperationalError) as caught:
        psycopg2.connect(
            host=server.host, port=server.port, user="postgres", password=password, dbname="postgres", connect_timeout=5
        )
    return str(caught.value)


def test_the_embedded_postgres_refuses_a_wrong_password_over_tcp(tmp_path):
    server = postgres.start_embedded(tmp_path / "data", free_port(), tmp_path / "pg.log")
    try:
        assert 'password authentication failed for user "postgres"' in refused(server, "wrong")
        assert server.password == postgres.PASSWORD == "shopstream-local"
        assert "no password supplied" in refused(server, None)
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'postgres'")
            assert cur.fetchone() == (True,)
            cur.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules")
            assert {row[0] for row in cur.fetchall()} == {"scram-sha-256"}
    finally:
        server.stop()


def test_a_data_folder_initialised_with_trust_asks_for_a_password_from_its_next_start(tmp_path):
    port = free_port()
    server = postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        cur.execute("ALTER ROLE postgres PASSWORD NULL")
    server.stop()
    # What `initdb --auth=trust` left in the folders of earlier `make run`s.
    (tmp_path / "data" / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
        "local replication all trust\nhost replication all 127.0.0.1/32 trust\n"
    )

    again = postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    try:
        assert 'password authentication failed for user "postgres"' in refused(again, "wrong")
        with again.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT n FROM kept")
            assert cur.fetchone() == (42,)
        assert "trust" not in (tmp_path / "data" / "pg_hba.conf").read_text()
    finally:
        again.stop()
    # And on the start after that, as on any other.
    third = postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    try:
        assert 'password authentication failed for user "postgres"' in refused(third, "wrong")
        third.connect().close()
    finally:
        third.stop()


def test_a_port_in_use_is_one_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(LocalDevError) as caught:
            postgres.start_embedded(tmp_path / "data", port, tmp_path / "pg.log")
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is already in use, and the embedded Postgres needs it; "
        "stop whatever holds it or choose another port with SHOPSTREAM_POSTGRES_PORT=<port>"
    )
    assert not (tmp_path / "data").exists(), "nothing was initialised"


def test_an_unreachable_external_postgres_is_one_clear_error():
    port = free_port()
    with pytest.raises(LocalDevError) as caught:
        postgres.connect_external(f"postgresql://postgres:pw@127.0.0.1:{port}")
    message = str(caught.value)
    assert message.startswith(f"cannot reach the Postgres named by SHOPSTREAM_POSTGRES_URL (127.0.0.1:{port}):")
    assert "\n" not in message


def test_an_external_postgres_url_is_used_as_given(pg_server):
    server = postgres.connect_external(pg_server.url())
    assert (server.host, server.port, server.user) == ("127.0.0.1", pg_server.port, "postgres")
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_moto_server_starts_keeps_objects_in_snapshots_and_stops(tmp_path):
    port = free_port()
    server = s3.start(port, tmp_path / "s3.log")
    pid = server.service.pid
    server.ensure_bucket("shopstream")
    server.ensure_bucket("shopstream")
    client = server.client()
    client.put_object(Bucket="shopstream", Key="raw/orders/ds=2026-11-24/part-0.csv", Body=b"order_id\n1\n")
    assert server.snapshot(tmp_path / "snap") == 1
    server.stop()
    assert gone(pid)
    assert port_is_free("127.0.0.1", port)

    fresh = s3.start(port, tmp_path / "s3.log")
    try:
        assert fresh.client().list_buckets()["Buckets"] == [], "moto itself keeps nothing"
        assert fresh.restore(tmp_path / "snap") == 1
        body = fresh.client().get_object(Bucket="shopstream", Key="raw/orders/ds=2026-11-24/part-0.csv")["Body"]
        assert body.read() == b"order_id\n1\n"
    finally:
        fresh.stop()


def test_inventory_simulator_serves_pages_of_stock_and_stops(tmp_path):
    port = free_port()
    service = inventory_api.start(port, tmp_path / "inv.log", failure_rate=0.0, skus=25)
    try:
        first = get_json(f"{service.url}/v1/stock?page=1&page_size=10")
        last = get_json(f"{service.url}/v1/stock?page=3&page_size=10")
        assert first["total"] == 25
        assert [item["sku"] for item in first["items"]] == [f"SKU-{i:05d}" for i in range(1, 11)]
        assert first["next_page"] == 2
        assert len(last["items"]) == 5 and last["next_page"] is None
        assert all(0 <= item["reserved"] <= item["on_hand"] for item in first["items"])
        with pytest.raises(urllib.error.HTTPError) as caught:
            get_json(f"{service.url}/v1/stock?page=0")
        assert caught.value.code == 400
    finally:
        service.stop()
    assert gone(service.pid)
    assert port_is_free("127.0.0.1", port)


def test_alert_sink_records_slack_and_pagerduty_payloads(tmp_path):
    port = free_port()
    service = alert_sink.start(port, tmp_path / "sink.log", journal=tmp_path / "alerts.jsonl")
    try:
        for path, body in [("/slack/local/dev/webhook", {"text": "hi"}), ("/pagerduty", {"dedup_key": "k1"})]:
            request = urllib.request.Request(
                f"{service.url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if path == "/pagerduty":
                    assert response.status == 202
                    assert json.load(response)["dedup_key"] == "k1"
                else:
                    assert response.read() == b"ok"
        messages = get_json(f"{service.url}/messages")
        assert [(m["path"], m["body"]) for m in messages] == [
            ("/slack/local/dev/webhook", {"text": "hi"}),
            ("/pagerduty", {"dedup_key": "k1"}),
        ]
        assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2
    finally:
        service.stop()
    assert gone(service.pid)


def test_a_postgres_url_of_another_kind_is_refused():
    with pytest.raises(LocalDevError, match="must look like postgresql://"):
        postgres.connect_external("mysql://root@127.0.0.1:3306")
