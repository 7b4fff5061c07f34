"""ml_feature_pipeline: per-customer features for the data scientists, as Parquet.

Recency, frequency and monetary value (RFM) as of the report date, plus category features,
written to s3://shopstream/features/customer/ds=<date>/features.parquet.
"""

# No `from __future__ import annotations` here: aql.dataframe turns Table arguments into
# DataFrames by comparing each parameter's annotation with pd.DataFrame itself.
import pandas as pd
from airflow.decorators import task_group
from astro import sql as aql
from astro.files import File

from include.shopstream import links
from include.shopstream.names import LAKE_CONN_ID
from include.shopstream.outputs import CUSTOMER_FEATURES, FEATURES_FILE, ORDERS
from include.shopstream.tasks import announce, rendered
from include.shopstream.warehouse import table

FEATURE_COLUMNS = [
    "customer_id", "as_of", "recency_days", "frequency", "monetary",
    "average_order_value", "refund_rate", "distinct_categories", "preferred_category",
]  # fmt: skip


@aql.dataframe(columns_names_capitalization="original")
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
    exported = aql.export_to_file(
        task_id="write_features",
        input_data=features,
        output_file=File(path=FEATURES_FILE.uri_for(rendered(day)), conn_id=LAKE_CONN_ID),
        if_exists="replace",
    )
    links.attach(exported, links.FeaturesLink())
    exported >> announce(CUSTOMER_FEATURES, day)
