"""Faults on the real services in the middle of a run: a retry absorbs them, nothing is half-written."""

from __future__ import annotations

import json
import threading
import time as clock
from datetime import UTC, datetime, time, timedelta

import pytest

from localdev.stack import SOURCE_DB, WAREHOUSE_DB
from tests.pipelines.conftest import MONDAY

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

# Seeding up to DAY moves the orders of earlier days on: a re-run of an older day would extract
# mostly the copies that later seeding changed, which rightly fail the bad-row threshold.
DAY = MONDAY + timedelta(days=3)


def waiting_merge(platform) -> list[dict]:
    """Warehouse sessions whose merge into gold.orders waits for a row lock."""
    return platform.warehouse(
        "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        " AND query ILIKE '%%INSERT INTO%%orders%%ON CONFLICT%%'"
    )


def test_the_warehouse_dropping_the_merge_mid_statement_is_retried_and_writes_each_order_once(platform):
    platform.seed_until(datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC))
    start, end = (datetime.combine(d, time(2), tzinfo=UTC) for d in (DAY, DAY + timedelta(days=1)))
    day_ids = {
        r["order_id"]
        for r in platform.query(
            SOURCE_DB, "SELECT order_id FROM orders WHERE updated_at >= %s AND updated_at < %s", (start, end)
        )
    }
    assert platform.run_sales(DAY)["__run__"] == "success"  # the day's first run, which went well
    held = platform.warehouse(
        "SELECT order_id FROM gold.orders WHERE order_id = ANY(%s) ORDER BY order_id LIMIT 1", (list(day_ids),)
    )

    # Hold one of the day's gold rows, so that the merge's upsert stops mid-statement on it; then
    # end the merge's session as a warehouse restart would, and let the row go.
    with platform.stack.pg.connect(WAREHOUSE_DB) as lock:
        lock.autocommit = False
        with lock.cursor() as cur:
            cur.execute("SELECT 1 FROM gold.orders WHERE order_id = %s FOR UPDATE", (held[0]["order_id"],))
        result: dict = {}
        run = threading.Thread(target=lambda: result.update(platform.run_sales(DAY)))
        run.start()
        deadline = clock.monotonic() + 600
        while not (blocked := waiting_merge(platform)):
            assert run.is_alive() and clock.monotonic() < deadline, "the merge never reached the held row"
            clock.sleep(0.2)
        platform.warehouse("SELECT pg_terminate_backend(%s)", (blocked[0]["pid"],))
        lock.rollback()
    run.join(timeout=900)

    assert result["__run__"] == "success", result["__log__"][-4000:]
    (merge,) = platform.metadata(
        "SELECT ti.try_number FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
        " WHERE dr.dag_id = 'sales_core_pipeline' AND dr.execution_date = %s AND ti.task_id = %s",
        (end, "orders_etl.merge_orders"),
    )
    assert merge["try_number"] == 2, "the dropped connection cost one try, and the retry finished the merge"
    counts = platform.warehouse(
        "SELECT count(*) AS n, count(DISTINCT order_id) AS ids FROM gold.orders WHERE order_id = ANY(%s)",
        (list(day_ids),),
    )[0]
    assert counts["n"] == counts["ids"] > 0, "each of the day's orders is in gold once"
    assert platform.warehouse("SELECT count(*) AS n FROM gold.orders GROUP BY order_id HAVING count(*) > 1") == []


class TrippingProxy:
    """A TCP proxy to the lake that goes down, for every request, once one touches ``trip_on``.

    So S3 becomes unreachable at the moment a producer publishes, and stays so until ``restore``.
    """

    def __init__(self, upstream_port: int, trip_on: tuple[bytes, ...]) -> None:
        import socket

        self.upstream_port, self.trip_on, self.down = upstream_port, trip_on, False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def restore(self) -> None:
        """The lake is back, for good."""
        self.down, self.trip_on = False, ()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client) -> None:
        import socket

        with client:
            while True:  # each request of a kept-alive connection is looked at before it goes on
                try:
                    head = client.recv(65536)
                except OSError:
                    return
                if not head:
                    return
                if self.down or any(marker in head for marker in self.trip_on):
                    self.down = True
                    return  # the connection drops, as with an unreachable endpoint
                with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                    upstream.sendall(head)
                    self._relay(client, upstream)
                    return

    def _relay(self, client, upstream) -> None:
        import selectors

        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while True:
                for key, _ in selector.select(timeout=30):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is client and any(marker in data for marker in self.trip_on):
                        self.down = True
                        return
                    key.data.sendall(data)


def test_s3_unreachable_while_orders_are_published_publishes_nothing_then_a_rerun_does(platform):
    end = datetime.combine(DAY + timedelta(days=1), time(2), tzinfo=UTC)
    platform.seed_until(end)
    proxy = TrippingProxy(platform.stack.ports.s3, trip_on=(b"/gold/orders/", b"gold%2Forders"))
    lake = json.dumps(
        {
            "conn_type": "aws",
            "login": "local-dev-access-key",
            "password": "local-dev-secret-key",
            "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{proxy.port}"},
        }
    )
    # The orders events of the business date, whichever run sent them: the run that the next
    # `airflow dags test` of a logical date makes in place of the last one has the same run id on
    # Airflow 2 and a new one on Airflow 3 (named after the moment it was made).
    events = (
        "SELECT count(*) AS n FROM dataset_event de JOIN dataset d ON d.id = de.dataset_id"
        " WHERE d.uri = 's3://shopstream/gold/orders' AND de.source_dag_id = 'sales_core_pipeline'"
        " AND de.extra ->> 'ds' = %s"
    )
    day = (str(DAY),)
    try:
        before = platform.metadata(events, day)[0]["n"]
        failed = platform.run_dag("sales_core_pipeline", end, AIRFLOW_CONN_AWS_DEFAULT=lake)
        assert proxy.down, "the lake went down when the orders were published"
        states = {task: state for task, state in failed.items() if task != "__log__"}
        assert failed["orders_etl.publish_orders"] == "failed", states
        assert failed["orders_etl.merge_orders"] == "success", "the warehouse part was done before"
        assert failed["orders_etl.announce_orders"] == "upstream_failed"
        assert platform.metadata(events, day)[0]["n"] == before, "no orders event: nothing downstream runs"
        (publish,) = platform.metadata(
            "SELECT ti.try_number FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
            " WHERE dr.dag_id = 'sales_core_pipeline' AND dr.execution_date = %s AND ti.task_id = %s",
            (end, "orders_etl.publish_orders"),
        )
        assert publish["try_number"] == 4, "an unreachable lake is transient: every retry was tried"

        proxy.restore()
        fixed = platform.run_dag("sales_core_pipeline", end, AIRFLOW_CONN_AWS_DEFAULT=lake)
        assert fixed["__run__"] == "success", fixed["__log__"][-3000:]
        assert platform.metadata(events, day)[0]["n"] == before + 1, "the re-run publishes the orders"
    finally:
        proxy.close()
