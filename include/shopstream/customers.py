"""customer_360: one row per customer from gold orders and customers, then published.

Rebuilt whole on every run (it is small and derived), into staging first and then swapped
into gold.customer_360 in one transaction, so readers never see it half-written.
"""

from __future__ import annotations

from airflow.decorators import task_group
from astro import sql as aql
from astro.files import File

from include.shopstream.names import GOLD, LAKE_CONN_ID, STAGING
from include.shopstream.outputs import CUSTOMER_360, CUSTOMER_360_FILE, ORDERS
from include.shopstream.tasks import announce, note_gold_writes, swap_into_gold
from include.shopstream.warehouse import staging_name, table, transform_sql

COLUMNS = (
    "customer_id", "country", "lifetime_value", "order_count",
    "first_order_at", "last_order_at", "preferred_category", "loaded_at",
)  # fmt: skip


@task_group(group_id="customer_360")
def customer_360():
    """Build the per-customer view and publish it."""
    # Noted before the build: of two runs' builds, the one swapped in last is the later one.
    writes = note_gold_writes((ORDERS.table, "gold.customers"))
    built = transform_sql(
        "build_customer_360",
        "customer_360.sql",
        table("customer_360_build", STAGING),
        gold_orders=table(ORDERS.table_name),
        customers=table("customers", GOLD),
    )
    swapped = swap_into_gold.override(task_id="swap_customer_360")(
        staging_name("customer_360_build"), CUSTOMER_360.table, COLUMNS, built_after=writes
    )
    exported = aql.export_to_file(
        task_id="publish_customer_360",
        input_data=table(CUSTOMER_360.table_name),
        output_file=File(path=CUSTOMER_360_FILE.uri_for(), conn_id=LAKE_CONN_ID),
        if_exists="replace",
    )
    writes >> built >> swapped >> exported >> announce(CUSTOMER_360)
