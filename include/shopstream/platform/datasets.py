"""The platform's Datasets, by the names the DAG files read as sentences.

Each is the Dataset of one entry in ``outputs.py``, where its URI is declared once.
"""

from include.shopstream.platform import outputs

GOLD_ORDERS = outputs.ORDERS.dataset
GOLD_CUSTOMER_360 = outputs.CUSTOMER_360.dataset
GOLD_INVENTORY = outputs.INVENTORY.dataset
GOLD_PRODUCT_CATALOG = outputs.PRODUCT_CATALOG.dataset
GOLD_DAILY_REPORTS = outputs.DAILY_REPORTS.dataset
GOLD_WEEKLY_ANALYTICS = outputs.WEEKLY_ANALYTICS.dataset
CUSTOMER_FEATURES = outputs.CUSTOMER_FEATURES.dataset

# What the observability pipeline watches: every published output.
PUBLISHED = tuple(output.dataset for output in outputs.PUBLISHED)
