"""data_quality_checks: real checks on every gold table and on the customer features.

For each published Dataset: column checks (nulls, key uniqueness, ranges) and table checks
(row counts, referential integrity) with the common-sql check operators, plus freshness. A run
checks the datasets whose events triggered it (all of them when started by hand), so a
sibling pipeline that is still writing never raises a false alarm. Any breach fails the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airflow.datasets import Dataset
from airflow.decorators import task, task_group
from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator, SQLTableCheckOperator

from include.shopstream import datasets
from include.shopstream.warehouse import WAREHOUSE_CONN_ID

NO_NULLS = {"null_check": {"equal_to": 0}}
KEY = {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}}
NOT_NEGATIVE = {"null_check": {"equal_to": 0}, "min": {"geq_to": 0}}
# How far behind its Dataset event a table's newest row may be: the producer writes, then announces.
MAX_LAG_MINUTES = 60
# Started by hand (no triggering event), a table must have been written within this many hours.
MAX_AGE_HOURS = 36


@dataclass(frozen=True)
class TableChecks:
    name: str
    dataset: Dataset
    table: str
    columns: dict
    checks: dict = field(default_factory=dict)


# Every column of gold.orders that a report or the features read (tests/test_quality.py holds
# this list to the report SQL and the feature code).
ORDER_COLUMNS_READ_DOWNSTREAM = (
    "customer_id", "product_id", "sku", "category", "quantity", "status", "created_at", "updated_at",
)  # fmt: skip

TABLES = (
    TableChecks(
        "orders",
        datasets.GOLD_ORDERS,
        "gold.orders",
        {
            "order_id": KEY,
            **{column: NO_NULLS for column in ORDER_COLUMNS_READ_DOWNSTREAM},
            "quantity": {"null_check": {"equal_to": 0}, "min": {"geq_to": 1}},
            "amount": NOT_NEGATIVE,
            "refunded_amount": NOT_NEGATIVE,
        },
        {
            "refunds_within_amount": "COUNT(*) FILTER (WHERE refunded_amount > amount) = 0",
            "every_customer_known": "COUNT(*) FILTER (WHERE NOT EXISTS "
            "(SELECT 1 FROM gold.customers c WHERE c.customer_id = gold.orders.customer_id)) = 0",
            # Judged only for orders placed before the catalogue's last rebuild: a product
            # launched since then is not in it yet, and that is no breach.
            "every_product_in_catalogue": "COUNT(*) FILTER (WHERE created_at < "
            "(SELECT max(loaded_at) FROM gold.product_catalog) AND NOT EXISTS (SELECT 1 FROM gold.product_catalog p"
            " WHERE p.product_id = gold.orders.product_id AND p.sku = gold.orders.sku)) = 0",
        },
    ),
    TableChecks(
        "customer_360",
        datasets.GOLD_CUSTOMER_360,
        "gold.customer_360",
        {
            "customer_id": KEY,
            "order_count": {"null_check": {"equal_to": 0}, "min": {"geq_to": 1}},
            **{
                column: NO_NULLS
                for column in ("country", "lifetime_value", "first_order_at", "last_order_at", "preferred_category")
            },
        },
        {
            "first_before_last": "COUNT(*) FILTER (WHERE first_order_at > last_order_at) = 0",
            "every_customer_known": "COUNT(*) FILTER (WHERE NOT EXISTS "
            "(SELECT 1 FROM gold.customers c WHERE c.customer_id = gold.customer_360.customer_id)) = 0",
        },
    ),
    TableChecks(
        "inventory",
        datasets.GOLD_INVENTORY,
        "gold.inventory",
        {"sku": KEY, "on_hand": NOT_NEGATIVE, "reserved": NOT_NEGATIVE, "available": NOT_NEGATIVE},
        {"reserved_within_stock": "COUNT(*) FILTER (WHERE reserved > on_hand) = 0"},
    ),
    TableChecks(
        "product_catalog",
        datasets.GOLD_PRODUCT_CATALOG,
        "gold.product_catalog",
        {"sku": KEY, "product_id": KEY, "unit_price": {"min": {"greater_than": 0}}},
        {"stock_matches_flag": "COUNT(*) FILTER (WHERE in_stock <> (coalesce(available, 0) > 0)) = 0"},
    ),
    TableChecks(
        "daily_reports",
        datasets.GOLD_DAILY_REPORTS,
        "gold.daily_reports",
        {"day": NO_NULLS, "category": NO_NULLS, "revenue": NOT_NEGATIVE, "orders": {"min": {"geq_to": 1}}},
        {"refunds_within_revenue": "COUNT(*) FILTER (WHERE refunds > revenue) = 0"},
    ),
    TableChecks(
        "weekly_analytics",
        datasets.GOLD_WEEKLY_ANALYTICS,
        "gold.weekly_analytics",
        {"cohort_customers": {"min": {"geq_to": 1}}, "retention_rate": {"min": {"geq_to": 0}, "max": {"leq_to": 1}}},
        {"active_within_cohort": "COUNT(*) FILTER (WHERE active_customers > cohort_customers) = 0"},
    ),
)


def _triggered_by(context) -> dict[str, object]:
    """Dataset URI -> timestamp of its newest event among those that triggered this run."""
    from include.shopstream.warehouse import triggering_events

    return {uri: max(ts for ts, _ in events) for uri, events in triggering_events(context).items()}


@task.short_circuit
def was_updated(uri: str, **context) -> bool:
    """Check a dataset when its event triggered the run, or when the run was started by hand."""
    triggered = _triggered_by(context)
    return not triggered or uri in triggered


@task
def freshness(table: str, uri: str, **context) -> str:
    """The table was written by the run that announced it (or, started by hand, recently)."""
    from datetime import UTC, datetime, timedelta

    from airflow.exceptions import AirflowFailException

    from include.shopstream.warehouse import warehouse_hook

    newest = warehouse_hook().get_first(f"SELECT max(loaded_at) FROM {table}")[0]
    event_at = _triggered_by(context).get(uri)
    if event_at is not None:
        floor, why = event_at - timedelta(minutes=MAX_LAG_MINUTES), f"its Dataset event at {event_at:%Y-%m-%d %H:%M}"
    else:
        floor, why = datetime.now(UTC) - timedelta(hours=MAX_AGE_HOURS), f"the last {MAX_AGE_HOURS} hours"
    if newest is None or newest < floor:
        raise AirflowFailException(f"{table} is stale: its newest row was loaded at {newest}, not within {why}")
    return f"{table} loaded at {newest:%Y-%m-%d %H:%M:%S}"


@task
def check_features(uri: str, **context) -> dict:
    """The newest customer feature file: present, not empty, one row per customer, complete."""
    import io

    import pandas as pd
    from airflow.exceptions import AirflowFailException

    from include.shopstream.warehouse import BUCKET, lake_hook

    hook = lake_hook()
    keys = sorted(hook.list_keys(bucket_name=BUCKET, prefix="features/customer/") or [])
    if not keys:
        raise AirflowFailException("no customer feature file under s3://shopstream/features/customer/")
    key = keys[-1]
    frame = pd.read_parquet(io.BytesIO(hook.get_key(key, bucket_name=BUCKET).get()["Body"].read()))
    problems = []
    if frame.empty:
        problems.append("it has no rows")
    if frame["customer_id"].duplicated().any():
        problems.append(f"{int(frame['customer_id'].duplicated().sum())} customers appear twice")
    nulls = frame[["recency_days", "frequency", "monetary"]].isna().sum()
    if nulls.any():
        problems.append(f"null features: {nulls[nulls > 0].to_dict()}")
    if problems:
        raise AirflowFailException(f"s3://{BUCKET}/{key} fails its checks: " + "; ".join(problems))
    return {"file": f"s3://{BUCKET}/{key}", "customers": len(frame)}


@task_group(group_id="data_quality_checks")
def data_quality_checks():
    """Checks for every dataset that triggered the run."""
    for spec in TABLES:
        gate = was_updated.override(task_id=f"{spec.name}_updated")(spec.dataset.uri)
        gate >> [
            SQLColumnCheckOperator(
                task_id=f"{spec.name}_columns",
                conn_id=WAREHOUSE_CONN_ID,
                table=spec.table,
                column_mapping=spec.columns,
            ),
            SQLTableCheckOperator(
                task_id=f"{spec.name}_table",
                conn_id=WAREHOUSE_CONN_ID,
                table=spec.table,
                checks={
                    "has_rows": {"check_statement": "COUNT(*) > 0"},
                    **{name: {"check_statement": statement} for name, statement in spec.checks.items()},
                },
            ),
            freshness.override(task_id=f"{spec.name}_freshness")(spec.table, spec.dataset.uri),
        ]
    features_gate = was_updated.override(task_id="customer_features_updated")(datasets.CUSTOMER_FEATURES.uri)
    features_gate >> check_features.override(task_id="customer_features_file")(datasets.CUSTOMER_FEATURES.uri)
