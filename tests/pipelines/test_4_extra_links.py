"""Reports one click away: the operator extra links that open what a task wrote to the lake.

The links are resolved as the UI server resolves them (``Platform.extra_links``), for the task
instances of the runs that test_3 and this module made, and each URL is fetched without
credentials.
"""

from __future__ import annotations

import io
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pandas as pd
import pytest

from tests.pipelines.conftest import MONDAY
from tests.pipelines.test_3_analytics_and_reporting import at
from tests.pipelines.test_5_alerting import inbox

# One xdist worker runs the whole group, in file order (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_the_report_chart_and_features_open_from_their_tasks(platform):
    links = platform.extra_links("analytics_and_reporting_pipeline", at(MONDAY))
    assert set(links) == {
        "daily_reports.write_report_files | Daily report (CSV)",
        "daily_reports.write_report_files | Revenue chart, 30 days (PNG)",
        "ml_feature_pipeline.write_features | Customer features (Parquet)",
    }
    assert all("Signature=" in url and "Expires=" in url for url in links.values()), links

    report = pd.read_csv(io.BytesIO(fetch(links["daily_reports.write_report_files | Daily report (CSV)"])))
    expected = platform.warehouse("SELECT category FROM gold.daily_reports WHERE day = %s", (MONDAY,))
    assert sorted(report["category"]) == sorted(r["category"] for r in expected)
    assert f"/reports/daily/ds={MONDAY}/" in unquote(links["daily_reports.write_report_files | Daily report (CSV)"])

    chart = fetch(links["daily_reports.write_report_files | Revenue chart, 30 days (PNG)"])
    assert chart[:8] == b"\x89PNG\r\n\x1a\n"

    features_url = links["ml_feature_pipeline.write_features | Customer features (Parquet)"]
    features = pd.read_parquet(io.BytesIO(fetch(features_url)))
    assert len(features) > 0 and "recency_days" in features.columns


def test_quality_results_say_what_ran_and_what_failed_and_page_once(platform):
    platform.warehouse(
        "INSERT INTO gold.orders SELECT order_id + 997000000000, customer_id, 424244, 'SKU-NOWHERE', category,"
        " quantity, amount, status, refunded_amount, created_at, updated_at, loaded_at FROM gold.orders LIMIT 1"
    )
    before = len(inbox(platform))
    logical_date = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    try:
        states = platform.run_dag("observability_pipeline", logical_date)
    finally:
        platform.warehouse("DELETE FROM gold.orders WHERE product_id = 424244")
    assert states["__run__"] == "failed"
    assert states["data_quality_checks.orders_table"] == "failed"
    assert states["quality_results"] == "failed"
    log = states["__log__"]
    assert "data quality: 19 check tasks: 1 failed, 18 passed" in log
    assert "failed        gold.orders" in log

    # One page for the breach, from the check that found it; the results task adds none.
    pages = [m["body"] for m in inbox(platform)[before:] if m["path"].startswith("/pagerduty")]
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
