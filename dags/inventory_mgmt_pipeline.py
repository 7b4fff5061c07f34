"""
### inventory_mgmt_pipeline

Every four hours, independent of the daily sales flow: **inventory_sync** pulls stock per SKU
from the inventory API into `gold.inventory` (the API times out about one call in ten, so this
task retries 5 times, 10 minutes apart), then **product_catalog** joins products with current
stock into `gold.product_catalog`. Publishes `s3://shopstream/gold/inventory` and
`s3://shopstream/gold/product_catalog`.
"""

from include.shopstream.ops import policies
from include.shopstream.pipelines.inventory import inventory_sync, product_catalog

# airflow: the DAG processor's safe mode reads only files that name it; compat imports it.
from include.shopstream.platform.compat import CronDataIntervalTimetable, dag
from include.shopstream.platform.names import TEMPLATE_SEARCHPATH
from include.shopstream.platform.tasks import drop_staging


@dag(
    dag_id="inventory_mgmt_pipeline",
    # Explicit: Airflow 3 would give a cron schedule zero-length intervals (no time window to read).
    schedule=CronDataIntervalTimetable("0 */4 * * *", timezone="UTC"),
    start_date=policies.START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=policies.INVENTORY,
    tags=["shopstream", "inventory"],
    doc_md=__doc__,
    template_searchpath=TEMPLATE_SEARCHPATH,
)
def inventory_mgmt_pipeline():
    inventory_sync() >> product_catalog() >> drop_staging()


inventory_mgmt_pipeline()
