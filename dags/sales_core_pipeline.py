"""
### sales_core_pipeline

The critical path, every day at 02:00 UTC: **orders_etl** brings the day's new and changed
orders from ShopStream's orders database into `gold.orders`, then **customer_360** rebuilds the
per-customer view. Each publishes its Dataset (`s3://shopstream/gold/orders`,
`s3://shopstream/gold/customer_360`); analytics runs when both have landed. A failed
`orders_etl` publishes nothing, so nothing downstream runs on stale data.

Failures retry 3 times with exponential backoff from 5 minutes, then page (a critical Slack
alert and a PagerDuty incident). If `orders_etl` has not finished by 04:00 UTC, the
`ingest_deadline` DAG pages the same way.
"""

from include.shopstream.ops import policies
from include.shopstream.pipelines.customers import customer_360
from include.shopstream.pipelines.orders import orders_etl

# airflow: the DAG processor's safe mode reads only files that name it; compat imports it.
from include.shopstream.platform import schedules
from include.shopstream.platform.compat import CronDataIntervalTimetable, dag
from include.shopstream.platform.names import TEMPLATE_SEARCHPATH
from include.shopstream.platform.tasks import drop_staging


@dag(
    dag_id="sales_core_pipeline",
    # Explicit: the ingest reads its data interval (the day before the 02:00 run), which Airflow 3
    # would make zero-length for a cron schedule.
    schedule=CronDataIntervalTimetable(schedules.SALES_CORE, timezone="UTC"),
    start_date=policies.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=policies.SALES_CORE,
    tags=["shopstream", "sales", "critical-path"],
    doc_md=__doc__,
    template_searchpath=TEMPLATE_SEARCHPATH,
)
def sales_core_pipeline():
    orders_etl() >> customer_360() >> drop_staging()


sales_core_pipeline()
