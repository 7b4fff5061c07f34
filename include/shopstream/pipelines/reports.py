"""daily_reports and weekly_analytics: the consumption layer's reports.

daily_reports rebuilds gold.daily_reports and writes the day's CSV and a chart of the trailing
30 days under s3://shopstream/reports/daily/. weekly_analytics runs on Mondays only (skipped,
not failed, on other days) and reports on the week that just ended.
"""

from __future__ import annotations

from include.shopstream.ops import links
from include.shopstream.platform import gold, sql_steps
from include.shopstream.platform.compat import task, task_group
from include.shopstream.platform.names import STAGING
from include.shopstream.platform.outputs import DAILY_REPORT_CSV, DAILY_REPORTS, ORDERS, REVENUE_CHART, WEEKLY_ANALYTICS
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.tasks import note_gold_writes

DAILY_COLUMNS = ("day", "category", "orders", "revenue", "average_order_value", "refunds", "loaded_at")
RETENTION_COLUMNS = (
    "week_start", "cohort_week", "weeks_since_first", "cohort_customers",
    "active_customers", "retention_rate", "loaded_at",
)  # fmt: skip
TOP_PRODUCT_COLUMNS = ("week_start", "rank", "sku", "category", "units", "revenue", "loaded_at")


@task
def write_report_files(day: str) -> dict:
    """The day's report as CSV and a chart of the trailing 30 days, under `reports/daily/ds=<day>/`."""
    import io
    from datetime import date, timedelta

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from include.shopstream.platform.lake import lake_hook
    from include.shopstream.platform.names import BUCKET, lake_uri
    from include.shopstream.platform.warehouse import warehouse_hook

    end = date.fromisoformat(day)
    frame = warehouse_hook().get_pandas_df(
        f"SELECT day, category, orders, revenue, average_order_value, refunds FROM {DAILY_REPORTS.table}"
        " WHERE day > %(start)s AND day <= %(end)s ORDER BY day, category",
        parameters={"start": end - timedelta(days=30), "end": end},
    )
    today = frame[frame["day"] == end]
    lake = lake_hook()
    csv_key = DAILY_REPORT_CSV.key_for(day)
    lake.load_string(today.to_csv(index=False), key=csv_key, bucket_name=BUCKET, replace=True)

    revenue = frame.pivot_table(index="day", columns="category", values="revenue", aggfunc="sum").fillna(0)
    figure, axis = plt.subplots(figsize=(11, 5))
    if not revenue.empty:
        revenue.astype(float).plot.bar(stacked=True, ax=axis, width=0.85)
    axis.set_title(f"ShopStream revenue by category, 30 days to {day}")
    axis.set_xlabel("")
    axis.set_ylabel("revenue")
    axis.set_xticklabels([f"{d:%b %d}" for d in revenue.index], rotation=60, ha="right")
    axis.legend(title="category", fontsize="small", ncol=2)
    figure.tight_layout()
    chart = io.BytesIO()
    figure.savefig(chart, format="png", dpi=100)
    plt.close(figure)
    chart_key = REVENUE_CHART.key_for(day)
    lake.load_bytes(chart.getvalue(), key=chart_key, bucket_name=BUCKET, replace=True)
    return {"csv": lake_uri(csv_key), "chart": lake_uri(chart_key), "categories": len(today)}


@task_group(group_id="daily_reports")
def daily_reports(day):
    """Daily revenue by category: gold.daily_reports, the day's CSV and a 30-day chart."""
    # Noted before the build: of two runs' builds, the one swapped in last is the later one.
    writes = note_gold_writes((ORDERS.table,))
    day >> writes
    swapped = gold.rebuild(DAILY_REPORTS, DAILY_COLUMNS, built_after=writes, gold_orders=table(ORDERS.table_name))
    files = links.attach(write_report_files(day), links.DailyReportLink(), links.RevenueChartLink())
    gold.publish(DAILY_REPORTS, swapped, lake=files, day=day)


# Only the builds are skipped; the run still ends with drop_staging.
@task.short_circuit(ignore_downstream_trigger_rules=False)
def week_to_report(day: str) -> str | None:
    """On a Monday, the week that just ended (its Monday); on other days nothing, which skips the rest."""
    from datetime import date, timedelta

    reported = date.fromisoformat(day)
    if reported.weekday() != 0:
        print(f"{day} is not a Monday: weekly analytics skipped")
        return None
    return (reported - timedelta(days=7)).isoformat()


@task_group(group_id="weekly_analytics")
def weekly_analytics(day):
    """Cohort retention and top products of the week that ended, on Mondays only."""
    week = week_to_report(day)
    retention = sql_steps.transform_file(
        "build_retention",
        "weekly_retention.sql",
        table("weekly_retention_build", STAGING),
        gold_orders=table(ORDERS.table_name),
        week_start=week,
    )
    top = sql_steps.transform_file(
        "build_top_products",
        "weekly_top_products.sql",
        table("weekly_top_products_build", STAGING),
        gold_orders=table(ORDERS.table_name),
        week_start=week,
    )
    merged = [
        sql_steps.merge(
            "merge_retention", table(WEEKLY_ANALYTICS.table_name), retention, RETENTION_COLUMNS, WEEKLY_ANALYTICS.key
        ),
        sql_steps.merge(
            "merge_top_products", table("weekly_top_products"), top, TOP_PRODUCT_COLUMNS, ["week_start", "rank"]
        ),
    ]
    week >> [retention, top]
    gold.publish(WEEKLY_ANALYTICS, merged, day=day)
