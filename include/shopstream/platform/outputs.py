"""The output registry: every output the platform publishes, declared once.

An entry names the output's Dataset, the DAG and task that announce it, the files it writes in
the lake, the gold table behind it, its business key and its quality checks. The Datasets
(``datasets.py``), the producers' lake paths and merge keys, ``data_quality_checks``
(``quality.py``) and the DAG structure tests are all derived from here, so a new output is one
entry. The lake paths of the pipelines' other files (raw extracts, quarantine) are declared
here too, each with its partition, so a path is spelled once for the task that writes it and
for the Jinja template of the task that reads it.

Lake keys of a business date, e.g. for links to a day's report::

    outputs.DAILY_REPORT_CSV.key_for(date(2026, 11, 23))  # reports/daily/ds=2026-11-23/daily_report.csv
    outputs.REVENUE_CHART.uri_for("2026-11-23")           # s3://shopstream/reports/daily/ds=.../revenue_30d.png
    outputs.FEATURES_FILE.key_for(day)                    # features/customer/ds=<day>/features.parquet
    outputs.QUALITY_RESULTS.key_for(logical_date, f"{ts_nodash}.json")  # quality/results/ds=<ds>/<ts>.json
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from include.shopstream.platform import business_dates
from include.shopstream.platform.compat import Dataset
from include.shopstream.platform.names import lake_uri


@dataclass(frozen=True)
class Partition:
    """How a run names its lake partition: ``<name>=<source.strftime(fmt)>``."""

    name: str
    source: str  # the run's date it is taken from (a template context key)
    fmt: str

    def value(self, when: date | datetime | str) -> str:
        """The partition's value for a date or moment; a text (a report date, a template) is taken as it is."""
        return when if isinstance(when, str) else when.strftime(self.fmt)

    @property
    def template(self) -> str:
        """The same value as a Jinja template, for the templated fields of operators."""
        return "{{ " + f"{self.source}.strftime('{self.fmt}')" + " }}"


# The run's business date (business_dates.py, where its examples are) as a partition.
BUSINESS_DATE = Partition("ds", business_dates.INTERVAL_START, "%Y-%m-%d")
# Snapshots of a run that may happen several times a day.
INTERVAL_START = Partition("ts", business_dates.INTERVAL_START, "%Y%m%dT%H%M%S")
LOGICAL_MOMENT = Partition("ts", "logical_date", "%Y%m%dT%H%M%S")  # Airflow's ts_nodash
LOGICAL_DATE = Partition("ds", "logical_date", "%Y-%m-%d")  # Airflow's ds


@dataclass(frozen=True)
class LakeFile:
    """A file in the lake, ``<prefix>/<partition>=<value>/<name>``; without a name, a folder of parts."""

    prefix: str
    name: str = ""
    partition: Partition | None = BUSINESS_DATE

    def key_for(self, when: date | datetime | str | None = None, name: str | None = None) -> str:
        """The object key (a folder's without its trailing slash) for a date, moment or partition value."""
        parts = [self.prefix]
        if self.partition is not None:
            if when is None:
                raise ValueError(f"{self.prefix} is partitioned by {self.partition.name}: give a date")
            parts.append(f"{self.partition.name}={self.partition.value(when)}")
        if name or self.name:
            parts.append(name or self.name)
        return "/".join(parts)

    def uri_for(self, when: date | datetime | str | None = None, name: str | None = None) -> str:
        """``s3://shopstream/<key>``, with a trailing slash for a folder."""
        folder = not (name or self.name)
        return lake_uri(self.key_for(when, name) + ("/" if folder else ""))

    def holds(self, key: str) -> bool:
        """Whether ``key`` is an object of this file: its prefix, a partition of it, then its name
        (a folder's: any one part, but no ``.`` or ``..``)."""
        segments = key.split("/")
        prefix = self.prefix.split("/")
        if segments[: len(prefix)] != prefix:
            return False
        rest = segments[len(prefix) :]
        if self.partition is not None:
            label = f"{self.partition.name}="
            if not rest or not rest[0].startswith(label) or rest[0] == label:
                return False
            rest = rest[1:]
        if len(rest) != 1:
            return False
        return rest[0] == self.name if self.name else rest[0] not in ("", ".", "..")

    @property
    def uri_template(self) -> str:
        """The URI as a Jinja template of the run's own partition (for the SQL steps' templated lake paths)."""
        return self.uri_for(self.partition.template if self.partition else None)


# The vocabulary of column checks (SQLColumnCheckOperator's column_mapping).
NO_NULLS = {"null_check": {"equal_to": 0}}
KEY = {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0}}
NOT_NEGATIVE = {"null_check": {"equal_to": 0}, "min": {"geq_to": 0}}


@dataclass(frozen=True)
class Output:
    """One published output. ``columns`` and ``checks`` include the ones its business key implies:
    a one-column key is not null and unique; each column of a longer key is not null and the
    combination is unique.
    """

    name: str  # names its quality tasks: <name>_columns, <name>_table, <name>_freshness (or <name>_file)
    uri: str
    dag_id: str
    announced_by: str  # "<task group>.<task id>": the producer's last task, which records the event
    key: tuple[str, ...]
    table: str | None = None  # the gold table behind it; None for an output that is files only
    columns: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    files: tuple[LakeFile, ...] = ()
    dataset: Dataset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", Dataset(self.uri))
        implied = {self.key[0]: KEY} if len(self.key) == 1 else dict.fromkeys(self.key, NO_NULLS)
        object.__setattr__(self, "columns", {**implied, **self.columns})
        if len(self.key) > 1 and self.table:
            unique = f"COUNT(*) = COUNT(DISTINCT ({', '.join(self.key)}))"
            object.__setattr__(self, "checks", {"key_is_unique": unique, **self.checks})

    @property
    def table_name(self) -> str:
        """The gold table's name without its schema."""
        return self.table.split(".", 1)[1]

    @property
    def announce_task_id(self) -> str:
        return self.announced_by.rsplit(".", 1)[-1]


# Every column of gold.orders that a report or the features read (tests/test_quality.py holds
# this list to the report SQL and the feature code).
ORDER_COLUMNS_READ_DOWNSTREAM = (
    "customer_id", "product_id", "sku", "category", "quantity", "status", "created_at", "updated_at",
)  # fmt: skip

# Lake files the pipelines write, published or not.
RAW_CUSTOMERS = LakeFile("raw/customers")
RAW_ORDERS = LakeFile("raw/orders")
ORDERS_QUARANTINE = LakeFile("quarantine/orders", "rejected.csv")
CUSTOMERS_QUARANTINE = LakeFile("quarantine/customers", "rejected.csv")
RAW_STOCK = LakeFile("raw/inventory", "stock.ndjson", LOGICAL_MOMENT)
STOCK_QUARANTINE = LakeFile("quarantine/inventory", partition=LOGICAL_MOMENT)
RAW_PRODUCTS = LakeFile("raw/products", partition=INTERVAL_START)
ORDERS_FILE = LakeFile("gold/orders", "orders.parquet")
CUSTOMER_360_FILE = LakeFile("gold/customer_360", "customer_360.parquet", None)
INVENTORY_FILE = LakeFile("gold/inventory", "inventory.parquet", None)
CATALOG_FILE = LakeFile("gold/product_catalog", "product_catalog.parquet", None)
DAILY_REPORT_CSV = LakeFile("reports/daily", "daily_report.csv")
REVENUE_CHART = LakeFile("reports/daily", "revenue_30d.png")
FEATURES_FILE = LakeFile("features/customer", "features.parquet")
# One results file per observability run: key_for(run's logical date, f"{ts_nodash}.json").
QUALITY_RESULTS = LakeFile("quality/results", partition=LOGICAL_DATE)

ORDERS = Output(
    "orders",
    lake_uri("gold/orders"),
    "sales_core_pipeline",
    "orders_etl.announce_orders",
    key=("order_id",),
    table="gold.orders",
    columns={
        **{column: NO_NULLS for column in ORDER_COLUMNS_READ_DOWNSTREAM},
        "quantity": {"null_check": {"equal_to": 0}, "min": {"geq_to": 1}},
        "amount": NOT_NEGATIVE,
        "refunded_amount": NOT_NEGATIVE,
    },
    checks={
        "refunds_within_amount": "COUNT(*) FILTER (WHERE refunded_amount > amount) = 0",
        "every_customer_known": "COUNT(*) FILTER (WHERE NOT EXISTS "
        "(SELECT 1 FROM gold.customers c WHERE c.customer_id = gold.orders.customer_id)) = 0",
        # Judged only for orders placed before the catalogue's last rebuild: a product
        # launched since then is not in it yet, and that is no breach.
        "every_product_in_catalogue": "COUNT(*) FILTER (WHERE created_at < "
        "(SELECT max(loaded_at) FROM gold.product_catalog) AND NOT EXISTS (SELECT 1 FROM gold.product_catalog p"
        " WHERE p.product_id = gold.orders.product_id AND p.sku = gold.orders.sku)) = 0",
    },
    files=(ORDERS_FILE,),
)
CUSTOMER_360 = Output(
    "customer_360",
    lake_uri("gold/customer_360"),
    "sales_core_pipeline",
    "customer_360.announce_customer_360",
    key=("customer_id",),
    table="gold.customer_360",
    columns={
        "order_count": {"null_check": {"equal_to": 0}, "min": {"geq_to": 1}},
        **{
            column: NO_NULLS
            for column in ("country", "lifetime_value", "first_order_at", "last_order_at", "preferred_category")
        },
    },
    checks={
        "first_before_last": "COUNT(*) FILTER (WHERE first_order_at > last_order_at) = 0",
        "every_customer_known": "COUNT(*) FILTER (WHERE NOT EXISTS "
        "(SELECT 1 FROM gold.customers c WHERE c.customer_id = gold.customer_360.customer_id)) = 0",
    },
    files=(CUSTOMER_360_FILE,),
)
INVENTORY = Output(
    "inventory",
    lake_uri("gold/inventory"),
    "inventory_mgmt_pipeline",
    "inventory_sync.announce_inventory",
    key=("sku",),
    table="gold.inventory",
    columns={"on_hand": NOT_NEGATIVE, "reserved": NOT_NEGATIVE, "available": NOT_NEGATIVE},
    checks={"reserved_within_stock": "COUNT(*) FILTER (WHERE reserved > on_hand) = 0"},
    files=(INVENTORY_FILE,),
)
PRODUCT_CATALOG = Output(
    "product_catalog",
    lake_uri("gold/product_catalog"),
    "inventory_mgmt_pipeline",
    "product_catalog.announce_catalog",
    key=("sku",),
    table="gold.product_catalog",
    columns={"product_id": KEY, "unit_price": {"min": {"greater_than": 0}}},
    checks={"stock_matches_flag": "COUNT(*) FILTER (WHERE in_stock <> (coalesce(available, 0) > 0)) = 0"},
    files=(CATALOG_FILE,),
)
DAILY_REPORTS = Output(
    "daily_reports",
    lake_uri("gold/daily_reports"),
    "analytics_and_reporting_pipeline",
    "daily_reports.announce_daily_reports",
    key=("day", "category"),
    table="gold.daily_reports",
    columns={"revenue": NOT_NEGATIVE, "orders": {"min": {"geq_to": 1}}},
    checks={"refunds_within_revenue": "COUNT(*) FILTER (WHERE refunds > revenue) = 0"},
    files=(DAILY_REPORT_CSV, REVENUE_CHART),
)
WEEKLY_ANALYTICS = Output(
    "weekly_analytics",
    lake_uri("gold/weekly_analytics"),
    "analytics_and_reporting_pipeline",
    "weekly_analytics.announce_weekly_analytics",
    key=("week_start", "cohort_week"),
    table="gold.weekly_analytics",
    columns={
        "cohort_customers": {"min": {"geq_to": 1}},
        "retention_rate": {"min": {"geq_to": 0}, "max": {"leq_to": 1}},
    },
    checks={"active_within_cohort": "COUNT(*) FILTER (WHERE active_customers > cohort_customers) = 0"},
)
CUSTOMER_FEATURES = Output(
    "customer_features",
    lake_uri("features/customer"),
    "analytics_and_reporting_pipeline",
    "ml_feature_pipeline.announce_features",
    key=("customer_id",),
    columns=dict.fromkeys(("recency_days", "frequency", "monetary"), NO_NULLS),
    files=(FEATURES_FILE,),
)

# Every published output; observability_pipeline watches all of their Datasets.
PUBLISHED = (ORDERS, CUSTOMER_360, INVENTORY, PRODUCT_CATALOG, DAILY_REPORTS, WEEKLY_ANALYTICS, CUSTOMER_FEATURES)


def published_by(dag_id: str) -> tuple[Output, ...]:
    """The outputs that ``dag_id`` announces, in declaration order."""
    return tuple(output for output in PUBLISHED if output.dag_id == dag_id)
