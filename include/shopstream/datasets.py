"""Every Dataset of the platform, defined once. Producers and consumers import from here."""

from airflow.datasets import Dataset

GOLD_ORDERS = Dataset("s3://shopstream/gold/orders")
GOLD_CUSTOMER_360 = Dataset("s3://shopstream/gold/customer_360")
GOLD_INVENTORY = Dataset("s3://shopstream/gold/inventory")
GOLD_PRODUCT_CATALOG = Dataset("s3://shopstream/gold/product_catalog")
GOLD_DAILY_REPORTS = Dataset("s3://shopstream/gold/daily_reports")
GOLD_WEEKLY_ANALYTICS = Dataset("s3://shopstream/gold/weekly_analytics")
CUSTOMER_FEATURES = Dataset("s3://shopstream/features/customer")

# What the observability pipeline watches: every published gold and feature dataset.
PUBLISHED = (
    GOLD_ORDERS,
    GOLD_CUSTOMER_360,
    GOLD_INVENTORY,
    GOLD_PRODUCT_CATALOG,
    GOLD_DAILY_REPORTS,
    GOLD_WEEKLY_ANALYTICS,
    CUSTOMER_FEATURES,
)
