"""analytics_and_reporting_pipeline on a weekend of sales (Friday to Monday), and the links to what it wrote."""

from __future__ import annotations

import io
import urllib.request
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import unquote

import pandas as pd
import pytest

from tests.pipelines import expected
from tests.pipelines.conftest import DATA, MONDAY, at

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform")]

CATEGORIES = {p["product_id"]: p["category"] for p in DATA.products()}


def gold(platform) -> dict[int, dict]:
    return {r["order_id"]: r for r in platform.warehouse("SELECT * FROM gold.orders")}


@pytest.fixture(scope="module")
def monday_run(analysed_monday):
    return analysed_monday


def fetch(url: str) -> bytes:
    """``url`` as someone clicking the link gets it: no credentials."""
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_daily_reports_match_the_orders(platform, monday_run):
    orders = {oid: {**o, "product_id": o["product_id"]} for oid, o in gold(platform).items()}
    for day in (MONDAY - timedelta(days=2), MONDAY - timedelta(days=1)):
        want = expected.daily_report(orders, CATEGORIES, day)
        got = {r["category"]: r for r in platform.warehouse("SELECT * FROM gold.daily_reports WHERE day = %s", (day,))}
        assert set(got) == set(want)
        for category, row in want.items():
            assert got[category]["orders"] == row["orders"]
            assert got[category]["revenue"] == row["revenue"]
            assert got[category]["refunds"] == row["refunds"]
            assert got[category]["average_order_value"] == (row["revenue"] / row["orders"]).quantize(Decimal("0.01"))


def test_the_report_files_are_written(platform, monday_run):
    lake = platform.lake()
    report = pd.read_csv(
        io.BytesIO(
            lake.get_object(Bucket="shopstream", Key=f"reports/daily/ds={MONDAY}/daily_report.csv")["Body"].read()
        )
    )
    assert set(report["category"]) == {
        r["category"] for r in platform.warehouse("SELECT category FROM gold.daily_reports WHERE day = %s", (MONDAY,))
    }
    chart = lake.get_object(Bucket="shopstream", Key=f"reports/daily/ds={MONDAY}/revenue_30d.png")["Body"].read()
    assert chart.startswith(b"\x89PNG") and len(chart) > 10_000


def test_weekly_analytics_runs_on_a_monday_for_the_week_that_ended(platform, monday_run):
    assert monday_run["weekly_analytics.merge_retention"] == "success"
    week = MONDAY - timedelta(days=7)
    orders = [o for o in gold(platform).values() if o["status"] != "cancelled"]
    first_week = {}
    for order in orders:
        monday = (order["created_at"] - timedelta(days=order["created_at"].weekday())).date()
        first_week[order["customer_id"]] = min(first_week.get(order["customer_id"], monday), monday)
    active = {o["customer_id"] for o in orders if week <= o["created_at"].date() < week + timedelta(days=7)}
    rows = {
        r["cohort_week"]: r
        for r in platform.warehouse("SELECT * FROM gold.weekly_analytics WHERE week_start = %s", (week,))
    }
    cohorts = {}
    for customer, cohort in first_week.items():
        if cohort <= week:
            cohorts.setdefault(cohort, set()).add(customer)
    assert set(rows) == set(cohorts)
    for cohort, members in cohorts.items():
        assert rows[cohort]["cohort_customers"] == len(members)
        assert rows[cohort]["active_customers"] == len(members & active)
    top = platform.warehouse("SELECT * FROM gold.weekly_top_products WHERE week_start = %s ORDER BY rank", (week,))
    revenue = {}
    for order in orders:
        if week <= order["created_at"].date() < week + timedelta(days=7):
            revenue[order["sku"]] = revenue.get(order["sku"], 0) + order["amount"]
    best = sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(r["sku"], r["revenue"]) for r in top] == best


def test_customer_features_are_written_as_parquet(platform, monday_run):
    body = platform.lake().get_object(Bucket="shopstream", Key=f"features/customer/ds={MONDAY}/features.parquet")[
        "Body"
    ]
    features = pd.read_parquet(io.BytesIO(body.read())).set_index("customer_id")
    cutoff = datetime.combine(MONDAY + timedelta(days=1), time(0), tzinfo=UTC)
    orders = [o for o in gold(platform).values() if o["status"] != "cancelled" and o["created_at"] < cutoff]
    by_customer = {}
    for order in orders:
        by_customer.setdefault(order["customer_id"], []).append(order)
    assert set(features.index) == set(by_customer)
    for customer, rows in by_customer.items():
        assert features.loc[customer, "frequency"] == len(rows)
        assert features.loc[customer, "recency_days"] == (cutoff - max(r["created_at"] for r in rows)).days
        net = sum(r["amount"] - r["refunded_amount"] for r in rows)
        assert features.loc[customer, "monetary"] == pytest.approx(float(net), abs=0.01)


def test_weekly_analytics_is_skipped_on_a_tuesday(platform, monday_run):
    tuesday = platform.run_dag("analytics_and_reporting_pipeline", at(MONDAY + timedelta(days=1), 6))
    assert tuesday["__run__"] == "success", tuesday["__log__"][-4000:]
    assert tuesday["weekly_analytics.week_to_report"] == "success"
    for task in (
        "build_retention",
        "build_top_products",
        "merge_retention",
        "merge_top_products",
        "announce_weekly_analytics",
    ):
        assert tuesday[f"weekly_analytics.{task}"] == "skipped"
    assert tuesday["daily_reports.announce_daily_reports"] == "success"


def test_the_report_chart_and_features_open_from_their_tasks(platform, monday_run):
    # Resolved as the UI server resolves them (Platform.extra_links); each URL fetched without credentials.
    links = platform.extra_links("analytics_and_reporting_pipeline", at(MONDAY, 6))
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
