"""customer_360: one row per customer from gold orders and customers, then published.

Rebuilt whole on every run (it is small and derived), into staging first and then swapped
into gold.customer_360 in one transaction, so readers never see it half-written.
"""

from __future__ import annotations

from include.shopstream import sql_steps
from include.shopstream.compat import task_group
from include.shopstream.names import GOLD, STAGING
from include.shopstream.outputs import CUSTOMER_360, CUSTOMER_360_FILE, ORDERS
from include.shopstream.sql_steps import table
from include.shopstream.tasks import announce, note_gold_writes, swap_into_gold
from include.shopstream.warehouse import staging_name

COLUMNS = (
    "customer_id", "country", "lifetime_value", "order_count",
    "first_order_at", "last_order_at", "preferred_category", "loaded_at",
)  # fmt: skip


@task_group(group_id="customer_360")
def customer_360():
    """Build the per-customer view and publish it."""
    # Noted before the build: of two runs' builds, the one swapped in last is the later one.
    writes = note_gold_writes((ORDERS.table, "gold.customers"))
    built = sql_steps.transform_file(
        "build_customer_360",
        "customer_360.sql",
        table("customer_360_build", STAGING),
        gold_orders=table(ORDERS.table_name),
        customers=table("customers", GOLD),
    )
    swapped = swap_into_gold.override(task_id="swap_customer_360")(
        staging_name("customer_360_build"), CUSTOMER_360.table, COLUMNS, built_after=writes
    )
    exported = sql_steps.export_file(
        "publish_customer_360", table(CUSTOMER_360.table_name), CUSTOMER_360_FILE.uri_for()
    )
    writes >> built >> swapped >> exported >> announce(CUSTOMER_360)
