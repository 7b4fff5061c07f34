"""Names of the platform's connections, pools, schemas, lake bucket, SQL files and Variables.

One source of truth: nothing else spells these out. Published outputs (their Datasets, lake
files, tables and checks) are declared in ``outputs.py``.
"""

from __future__ import annotations

from pathlib import Path

SOURCE_CONN_ID = "shopstream_source"
WAREHOUSE_CONN_ID = "shopstream_warehouse"
LAKE_CONN_ID = "aws_default"
INVENTORY_API_CONN_ID = "inventory_api"
SLACK_CONN_ID = "slack_alerts"
PAGERDUTY_CONN_ID = "pagerduty_alerts"

# Pools that cap the load on a source system (airflow_settings.yaml seeds them with their slots).
SOURCE_DB_POOL = "shopstream_source_db"
INVENTORY_API_POOL = "inventory_api"

BUCKET = "shopstream"
STAGING = "staging"
GOLD = "gold"

SQL_DIR = Path(__file__).parents[1] / "sql"
TEMPLATE_SEARCHPATH = [str(SQL_DIR)]  # set by each DAG that runs SQL steps, so that they find their .sql files

BAD_ROW_THRESHOLD_VARIABLE = "shopstream_bad_row_threshold"
DEFAULT_BAD_ROW_THRESHOLD = 0.05
INVENTORY_API_TIMEOUT_VARIABLE = "shopstream_inventory_api_timeout_seconds"
INVENTORY_API_PAGE_SIZE_VARIABLE = "shopstream_inventory_api_page_size"


def lake_uri(key: str) -> str:
    """The ``s3://`` URI of ``key`` in the lake's bucket (a folder's key ends with its slash)."""
    return f"s3://{BUCKET}/{key}"


def sql(name: str) -> str:
    """The text of ``include/shopstream/sql/<name>``."""
    return (SQL_DIR / name).read_text()
