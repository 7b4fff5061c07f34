"""observability_pipeline: passes on a healthy platform, fails on a real breach, and says what it judged.

The platform is made healthy by its own pipelines (``analysed_monday``): a weekend of sales, the
stock and Monday's analytics.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [
    pytest.mark.services,
    pytest.mark.xdist_group("platform-2"),
    pytest.mark.usefixtures("analysed_monday"),
]


def fetch(url: str) -> bytes:
    """``url`` as someone clicking the link gets it: no credentials."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


BAD_ORDER_IDS = 990_000_000_000  # far above the generator's order ids


@contextlib.contextmanager
def bad_order(platform, *, customer: int | None = None, product: int | None = None):
    """One more gold order, a copy of an existing one for an unknown ``customer`` or ``product``,
    there while the block runs and deleted after it, whatever the block raised."""
    customer_id = "customer_id" if customer is None else customer
    product_id_sku = "product_id, sku" if product is None else f"{product}, 'SKU-NOWHERE'"
    # gold.orders' foreign key keeps an unknown customer out; replica mode skips it, as a load that
    # bypassed the pipeline (or a row older than the constraint) would.
    replica = "SET session_replication_role = replica; " if customer is not None else ""
    platform.warehouse(
        f"{replica}INSERT INTO gold.orders SELECT order_id + {BAD_ORDER_IDS}, {customer_id}, {product_id_sku},"
        " category, quantity, amount, status, refunded_amount, created_at, updated_at, loaded_at"
        " FROM gold.orders LIMIT 1"
    )
    try:
        yield
    finally:
        platform.warehouse(f"DELETE FROM gold.orders WHERE order_id >= {BAD_ORDER_IDS}")


def test_a_healthy_platform_passes_every_check(platform):
    states = platform.run_dag("observability_pipeline", datetime.now(UTC).replace(microsecond=0))
    assert states["__run__"] == "success", states["__log__"][-4000:]
    checks = [t for t in states if t.endswith(("_columns", "_table", "_freshness", "_file"))]
    assert len(checks) == 19
    assert all(states[t] == "success" for t in checks)


def test_an_order_of_an_unknown_customer_fails_the_run(platform):
    with bad_order(platform, customer=424242):
        states = platform.run_dag(
            "observability_pipeline", datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        )
    assert states["__run__"] == "failed"
    assert states["data_quality_checks.orders_table"] == "failed"
    assert states["data_quality_checks.customer_360_table"] == "success"


def test_an_order_of_a_product_missing_from_the_catalogue_fails_the_run(platform):
    with bad_order(platform, product=424243):
        states = platform.run_dag(
            "observability_pipeline", datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        )
    assert states["__run__"] == "failed"
    assert states["data_quality_checks.orders_table"] == "failed"
    assert "every_product_in_catalogue" in states["__log__"]


def test_quality_results_say_what_ran_and_what_failed_and_page_once(platform):
    before = len(platform.inbox())
    logical_date = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    with bad_order(platform, product=424244):
        states = platform.run_dag("observability_pipeline", logical_date)
    assert states["__run__"] == "failed"
    assert states["data_quality_checks.orders_table"] == "failed"
    assert states["quality_results"] == "failed"
    log = states["__log__"]
    assert "data quality: 19 check tasks: 1 failed, 18 passed" in log
    assert "failed        gold.orders" in log

    # One page for the breach, from the check that found it; the results task adds none.
    pages = [m["body"] for m in platform.inbox()[before:] if m["path"].startswith("/pagerduty")]
    triggers = [p["dedup_key"] for p in pages if p["event_action"] == "trigger"]
    assert len(triggers) == 1, triggers
    assert "/observability_pipeline/data_quality_checks.orders_table/" in triggers[0]

    links = platform.extra_links("observability_pipeline", logical_date)
    assert list(links) == ["quality_results | Quality results (JSON)"]
    document = json.loads(fetch(links["quality_results | Quality results (JSON)"]))
    assert document["counts"] == {"failed": 1, "passed": 18}
    failed = [r for r in document["results"] if r["outcome"] == "failed"]
    assert failed == [
        {
            "task": "data_quality_checks.orders_table",
            "outcome": "failed",
            "on": "gold.orders",
            "checks": ["has_rows", "refunds_within_amount", "every_customer_known", "every_product_in_catalogue"],
        }
    ]
    tables = {r["on"] for r in document["results"]}
    assert {"gold.orders", "gold.customer_360", "gold.inventory", "gold.daily_reports"} <= tables
