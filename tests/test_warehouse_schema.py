"""include/shopstream/sql/warehouse_schema.sql is safe to run from two tasks at once."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from include.shopstream.platform.warehouse import sql

pytestmark = pytest.mark.services


def test_two_concurrent_runs_on_an_empty_warehouse_both_succeed(pg_server):
    database = "shopstream_schema_race"
    pg_server.ensure_database(database)
    script = sql("warehouse_schema.sql")
    first, second = pg_server.connect(database), pg_server.connect(database)
    outcome: dict[str, object] = {}

    def run_second():
        try:
            with second, second.cursor() as cur:
                cur.execute(script)
            outcome["second"] = "committed"
        except psycopg2.Error as err:  # the assertion below reports it
            outcome["second"] = err

    try:
        with first.cursor() as cur:
            cur.execute(script)  # schemas and tables created, not yet committed
        racer = threading.Thread(target=run_second)
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive(), f"the second run must wait for the first; it ended with {outcome.get('second')!r}"
        first.commit()
        racer.join(timeout=30)
        assert outcome.get("second") == "committed"
        with first.cursor() as cur:
            cur.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('staging', 'gold') ORDER BY 1")
            assert [row[0] for row in cur.fetchall()] == ["gold", "staging"]
    finally:
        first.close()
        second.close()
