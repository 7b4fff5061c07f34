"""ml_feature_pipeline: per-customer features for the data scientists, as Parquet.

Recency, frequency and monetary value (RFM) as of the report date, plus category features,
written to s3://shopstream/features/customer/ds=<date>/features.parquet.
"""

# No `from __future__ import annotations` here: the SDK's aql.dataframe turns Table arguments
# into DataFrames by comparing each parameter's annotation with pd.DataFrame itself.
import pandas as pd

from include.shopstream.ops import links
from include.shopstream.platform import sql_steps
from include.shopstream.platform.compat import task_group
from include.shopstream.platform.outputs import CUSTOMER_FEATURES, FEATURES_FILE, ORDERS
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.tasks import announce, rendered

FEATURE_COLUMNS = [
    "customer_id", "as_of", "recency_days", "frequency", "monetary",
    "average_order_value", "refund_rate", "distinct_categories", "preferred_category",
]  # fmt: skip


@sql_steps.dataframe(columns_names_capitalization="original")
def customer_features(orders: pd.DataFrame, as_of: str) -> pd.DataFrame:
    """One row per customer with orders placed up to ``as_of`` (cancelled orders excluded)."""
    cutoff = pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=1)
    kept = orders[(orders["status"] != "cancelled") & (pd.to_datetime(orders["created_at"], utc=True) < cutoff)]
    if kept.empty:
        return pd.DataFrame(columns=FEATURE_COLUMNS)
    kept = kept.assign(
        created_at=pd.to_datetime(kept["created_at"], utc=True),
        amount=kept["amount"].astype(float),
        refunded_amount=kept["refunded_amount"].astype(float),
    )
    by_customer = kept.groupby("customer_id")
    preferred = (
        kept.groupby(["customer_id", "category"]).size().rename("n").reset_index()
        .sort_values(["customer_id", "n", "category"], ascending=[True, False, True])
        .drop_duplicates("customer_id")
        .set_index("customer_id")["category"]
    )  # fmt: skip
    features = pd.DataFrame(
        {
            "recency_days": (cutoff - by_customer["created_at"].max()).dt.days,
            "frequency": by_customer.size(),
            "monetary": (by_customer["amount"].sum() - by_customer["refunded_amount"].sum()).round(2),
            "average_order_value": by_customer["amount"].mean().round(2),
            "refund_rate": (by_customer["refunded_amount"].apply(lambda r: (r > 0).mean())).round(4),
            "distinct_categories": by_customer["category"].nunique(),
            "preferred_category": preferred,
        }
    ).reset_index()
    features.insert(1, "as_of", as_of)
    return features[FEATURE_COLUMNS]


@task_group(group_id="ml_feature_pipeline")
def ml_feature_pipeline(day):
    """RFM and category features per customer, as Parquet in the lake."""
    features = customer_features(table(ORDERS.table_name), day)
    exported = sql_steps.export_file("write_features", features, FEATURES_FILE.uri_for(rendered(day)))
    links.attach(exported, links.FeaturesLink())
    exported >> announce(CUSTOMER_FEATURES, day)
