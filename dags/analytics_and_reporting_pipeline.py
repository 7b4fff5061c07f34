"""
### analytics_and_reporting_pipeline

The consumption layer. Runs when fresh sales data has landed: both
`s3://shopstream/gold/orders` **and** `s3://shopstream/gold/customer_360` updated (normally
shortly after the 02:00 ingest), never on stale data. **daily_reports** writes
`gold.daily_reports` plus a CSV and a 30-day chart; **weekly_analytics** follows on Mondays
(skipped otherwise); **ml_feature_pipeline** writes per-customer features as Parquet.
"""

from include.shopstream.ops import policies
from include.shopstream.pipelines.features import ml_feature_pipeline
from include.shopstream.pipelines.reports import daily_reports, weekly_analytics

# airflow: the DAG processor's safe mode reads only files that name it; compat imports it.
from include.shopstream.platform.compat import dag
from include.shopstream.platform.datasets import GOLD_CUSTOMER_360, GOLD_ORDERS
from include.shopstream.platform.names import TEMPLATE_SEARCHPATH
from include.shopstream.platform.tasks import drop_staging, report_date


@dag(
    dag_id="analytics_and_reporting_pipeline",
    schedule=(GOLD_ORDERS & GOLD_CUSTOMER_360),
    start_date=policies.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=policies.ANALYTICS,
    tags=["shopstream", "analytics", "reporting", "ml"],
    doc_md=__doc__,
    template_searchpath=TEMPLATE_SEARCHPATH,
)
def analytics_and_reporting_pipeline():
    day = report_date()
    weekly = daily_reports(day) >> weekly_analytics(day)
    [weekly, ml_feature_pipeline(day)] >> drop_staging()


analytics_and_reporting_pipeline()
