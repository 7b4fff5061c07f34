"""customer_360: one row per customer from gold orders and customers, then published.

Rebuilt whole on every run (it is small and derived), into staging first and then swapped
into gold.customer_360 in one transaction, so readers never see it half-written.
"""

from __future__ import annotations

from include.shopstream.platform import gold
from include.shopstream.platform.compat import task_group
from include.shopstream.platform.names import GOLD
from include.shopstream.platform.outputs import CUSTOMER_360, ORDERS
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.tasks import note_gold_writes

COLUMNS = (
    "customer_id", "country", "lifetime_value", "order_count",
    "first_order_at", "last_order_at", "preferred_category", "loaded_at",
)  # fmt: skip


@task_group(group_id="customer_360")
def customer_360():
    """Build the per-customer view and publish it."""
    # Noted before the build: of two runs' builds, the one swapped in last is the later one.
    writes = note_gold_writes((ORDERS.table, "gold.customers"))
    swapped = gold.rebuild(
        CUSTOMER_360,
        COLUMNS,
        built_after=writes,
        gold_orders=table(ORDERS.table_name),
        customers=table("customers", GOLD),
    )
    gold.publish(CUSTOMER_360, swapped)
