"""orders_etl: the day's new and changed orders, from the source database to gold.orders.

extract (source -> raw/ in the lake, by logical date) -> load (staging, all text) -> check
each row against its gold table's contract (read from the warehouse's catalog) -> quarantine the
breaking rows with their reason -> fail above the bad-row threshold -> merge the good rows -> publish.
Customers go that way first, into gold.customers, so that every merged order's customer already
exists; an order whose customer was quarantined (and is not in gold from an earlier day) breaks
gold.orders' foreign key and is quarantined in turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Text

from include.shopstream.platform import gold, sql_steps
from include.shopstream.platform.compat import task, task_group
from include.shopstream.platform.names import GOLD, SOURCE_DB_POOL, STAGING, lake_uri
from include.shopstream.platform.outputs import (
    CUSTOMERS_QUARANTINE,
    ORDERS,
    ORDERS_FILE,
    ORDERS_QUARANTINE,
    RAW_CUSTOMERS,
    RAW_ORDERS,
    LakeFile,
)
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.tasks import prepare_warehouse
from include.shopstream.platform.warehouse import staging_name

RAW_ORDER_COLUMNS = (
    "source_row_id", "order_id", "customer_id", "product_id", "sku", "category",
    "quantity", "amount", "status", "refunded_amount", "created_at", "updated_at",
)  # fmt: skip
GOLD_ORDER_COLUMNS = (
    "order_id", "customer_id", "product_id", "sku", "category", "quantity", "amount",
    "status", "refunded_amount", "created_at", "updated_at", "loaded_at",
)  # fmt: skip
CUSTOMER_COLUMNS = ("customer_id", "email", "full_name", "country", "created_at", "updated_at")
CUSTOMERS_TABLE = f"{GOLD}.customers"
# Orders quarantined because their customer was not in gold.customers yet: checked again by each
# later run once it is (sql/warehouse_schema.sql).
HELD_ORDERS = f"{STAGING}.held_orders"


@dataclass(frozen=True)
class Batch:
    """Rows staged from the source, checked against their gold table's contract, then merged into it.

    Its name in ``BATCHES`` (``rows``) names its staging tables (``<rows>_raw``, ``_checked``,
    ``_valid`` and ``_rejected``), its SQL files (``<rows>_valid.sql``, ``<rows>_rejected.sql``)
    and its ``valid_<rows>``, ``rejected_<rows>`` and ``merge_<rows>`` tasks. Its rejected rows
    go to ``quarantine``, and the threshold judges every batch the same way.
    """

    target: str  # the gold table, schema.name
    columns: tuple[str, ...]
    key: tuple[str, ...]
    quarantine: LakeFile
    quarantine_task_id: str
    threshold_task_id: str


# The orders' task ids predate the customers' check: kept, so that history and runbooks still match.
BATCHES = {
    "customers": Batch(
        CUSTOMERS_TABLE, CUSTOMER_COLUMNS, ("customer_id",), CUSTOMERS_QUARANTINE,
        "quarantine_customers", "enforce_customer_threshold",
    ),
    "orders": Batch(
        ORDERS.table, GOLD_ORDER_COLUMNS, ORDERS.key, ORDERS_QUARANTINE,
        "quarantine_rejected", "enforce_bad_row_threshold",
    ),
}  # fmt: skip


def _text_table(name: str, columns: tuple[str, ...]):
    """A staging table of text columns: whatever arrives loads, and the contract is checked in SQL.

    Loaded with ``text_as_is``: every CSV value as the text it is ("NA", "null" or "007" stay
    what they are), an empty field as NULL (CSV cannot tell an empty text from NULL).
    """
    return table(name, STAGING, columns=[Column(c, Text) for c in columns])


@task(pool=SOURCE_DB_POOL)
def extract_customers(data_interval_start=None) -> dict:
    """Snapshot the source's customers to `raw/customers/ds=<ds>/`."""
    from include.shopstream.platform.lake import extract_from_source

    extract = extract_from_source("customers_extract.sql", RAW_CUSTOMERS.key_for(data_interval_start))
    return {"rows": extract.rows, "uri": extract.uri}


@task(pool=SOURCE_DB_POOL)
def extract_orders(data_interval_start=None, data_interval_end=None) -> dict:
    """COPY the orders created or changed in the data interval to `raw/orders/ds=<ds>/`, in parts."""
    from include.shopstream.platform.lake import extract_from_source

    extract = extract_from_source(
        "orders_extract.sql",
        RAW_ORDERS.key_for(data_interval_start),
        {"start": data_interval_start, "end": data_interval_end},
        paged=True,
    )
    return {"rows": extract.rows, "parts": extract.parts, "uri": extract.uri}


@task.short_circuit(ignore_downstream_trigger_rules=False)
def has_orders(extracted: dict) -> bool:
    """A day without new or changed orders skips loading and merging, but still publishes."""
    return extracted["rows"] > 0


def batch_tables(rows: str) -> dict[str, str]:
    """The run's staging tables of a checked batch (``orders``, ``customers``): ``raw``, ``checked``,
    ``valid`` and ``rejected``, as templates that Airflow renders in a task's arguments."""
    return {part: staging_name(f"{rows}_{part}") for part in ("raw", "checked", "valid", "rejected")}


def _check_staged(
    tables: dict, contract_table: str, order_by: str, supplied: tuple[str, ...] = (), held: str | None = None
) -> dict:
    """Write ``tables["checked"]``: each row of ``tables["raw"]`` with the first way it breaks
    ``contract_table``'s contract (NULL if none), and say which contract that was.

    With ``held``: the rows that earlier runs held because a row they refer to was missing join
    the batch once it is there, and the rows that wait for one now are held (``updated_at`` tells
    which of two rows of a key is newer). One transaction: both or neither.
    """
    from contextlib import closing

    from include.shopstream.platform.contract import check_rows, hold_unreferenced, release_held
    from include.shopstream.platform.warehouse import data_errors_fail, warehouse_hook

    with data_errors_fail(), closing(warehouse_hook().get_conn()) as conn, conn:
        if held:
            released = release_held(conn, contract_table, held, tables["raw"], version="updated_at")
            print(f"{released} held row(s) of {held} found what they refer to and join {tables['raw']}")
        contract = check_rows(
            conn, contract_table, tables["raw"], tables["checked"], order_by=order_by, supplied=supplied
        )
        if held:
            waiting = hold_unreferenced(
                conn, contract, held, tables["checked"], order_by=order_by, version="updated_at"
            )
            print(f"{waiting} row(s) wait in {held} for a row they refer to")
    checks = {
        "not_null": [c.name for c in contract.columns if c.not_null],
        "checks": [c.name for c in contract.checks],
        "references": [r.name for r in contract.references],
        "key": list(contract.key),
    }
    print(f"checked {tables['raw']} against {contract.table}'s contract: {checks}")
    return checks


@task
def check_customers(tables: dict) -> dict:
    """Mark each staged customer with the first way it breaks gold.customers' contract (NULL if none).

    The snapshot holds every customer, every day: without this, one customer with a missing
    email failed the merge, and so the ingest, on every run until the source was fixed.
    """
    # customer_id is the source's primary key: always a number, and once per snapshot.
    return _check_staged(tables, CUSTOMERS_TABLE, order_by="customer_id")


@task
def check_orders(tables: dict) -> dict:
    """Mark each staged order with the first way it breaks gold.orders' contract (NULL if none).

    The contract is read from the warehouse's catalog (include/shopstream/platform/contract.py), so a
    constraint added to gold.orders in sql/warehouse_schema.sql is checked from the next run on.
    An order whose customer is not in gold.customers is quarantined and held: a later run with
    orders checks it again once its customer has arrived (a new customer quarantined one day for
    a missing name and fixed the next), so its orders are not lost with that first day's file.
    """
    return _check_staged(tables, ORDERS.table, order_by="source_row_id", supplied=("loaded_at",), held=HELD_ORDERS)


@task
def enforce_bad_row_threshold(tables: dict, rows: str = "orders", data_interval_start=None) -> dict:
    """Fail the run, naming the count and the file, when too many of the staged ``rows`` broke the contract.

    One check for every batch (orders, customers): ``tables["rejected"]`` against ``tables["valid"]``.
    The message names counts and the quarantine file only: the rows themselves may be personal.
    Before it, the two must add up to the rows staged in ``tables["raw"]``; if they do not, the
    check's output lost rows, and the run fails rather than merge a day with fewer orders.
    """
    from include.shopstream.platform.compat import AirflowFailException, Variable
    from include.shopstream.platform.names import BAD_ROW_THRESHOLD_VARIABLE, DEFAULT_BAD_ROW_THRESHOLD
    from include.shopstream.platform.warehouse import warehouse_hook

    hook = warehouse_hook()
    bad = hook.get_first(f"SELECT count(*) FROM {tables['rejected']}")[0]
    good = hook.get_first(f"SELECT count(*) FROM {tables['valid']}")[0]
    total = bad + good
    staged = hook.get_first(f"SELECT count(*) FROM {tables['raw']}")[0]
    if staged != total:  # every staged row is either valid or rejected: anything else lost or made rows
        raise AirflowFailException(
            f"{staged} {rows} were staged in {tables['raw']}, but {good} valid and {bad} rejected were counted;"
            f" nothing was merged. Clear check_{rows} and the tasks after it to check the staged rows again"
        )
    raw_threshold = Variable.get(BAD_ROW_THRESHOLD_VARIABLE, str(DEFAULT_BAD_ROW_THRESHOLD))
    try:
        threshold = float(raw_threshold)
        if not 0 <= threshold <= 1:  # "5" meant as 5% would let every row through; NaN is refused too
            raise ValueError(raw_threshold)
    except ValueError:
        raise AirflowFailException(
            f"Variable {BAD_ROW_THRESHOLD_VARIABLE} must be a share between 0 and 1, got {raw_threshold!r}"
        ) from None
    share = bad / total if total else 0.0
    quarantine = BATCHES[rows].quarantine.uri_for(data_interval_start)
    summary = {"rows": total, "rejected": bad, "share": round(share, 6), "quarantine": quarantine}
    print(f"{bad} of {total} {rows} broke the contract ({share:.2%}); quarantined in {quarantine}")
    if share > threshold:
        raise AirflowFailException(
            f"{bad} of {total} {rows} ({share:.1%}) broke the contract, above the {threshold:.1%} threshold "
            f"(Variable {BAD_ROW_THRESHOLD_VARIABLE}); nothing was merged. The rows and reasons are in {quarantine}"
        )
    return summary


@task(trigger_rule="none_failed")
def publish_orders(data_interval_start=None, data_interval_end=None) -> dict:
    """Write gold orders as they stand after the merge, for the orders the run touched, to
    `gold/orders/ds=<ds>/orders.parquet`.

    Streamed in bounded batches (``lake.export_query_to_parquet``): a day of a million orders
    through the SDK's ``aql.export_to_file`` held every row in pandas at once, over 1 GiB in one task.
    """
    from include.shopstream.platform.lake import export_query_to_parquet
    from include.shopstream.platform.names import sql
    from include.shopstream.platform.warehouse import warehouse_engine

    key = ORDERS_FILE.key_for(data_interval_start)
    engine = warehouse_engine()
    try:
        rows = export_query_to_parquet(
            engine,
            sql("orders_of_interval.sql").format(orders=ORDERS.table),
            {"start": data_interval_start, "end": data_interval_end},
            key,
        )
    finally:
        engine.dispose()
    print(f"published {rows} orders to {lake_uri(key)}")
    return {"rows": rows, "uri": lake_uri(key)}


def _merge_checked(rows: str, check, staged):
    """The ``rows`` batch after ``staged`` (its load, or what its check waits for): ``check``
    marks each row; its valid rows, typed (``sql/<rows>_valid.sql``), are merged into its gold
    table once the verdict on the bad share is in; its rejected rows, with their reason
    (``sql/<rows>_rejected.sql``), are written to its quarantine first. Returns the merge.
    """
    batch = BATCHES[rows]
    checked = check(batch_tables(rows))
    staged >> checked
    marked = {f"checked_{rows}": table(f"{rows}_checked", STAGING)}
    valid = sql_steps.transform_file(f"valid_{rows}", f"{rows}_valid.sql", table(f"{rows}_valid", STAGING), **marked)
    rejected = sql_steps.transform_file(
        f"rejected_{rows}", f"{rows}_rejected.sql", table(f"{rows}_rejected", STAGING), **marked
    )
    checked >> [valid, rejected]
    quarantined = sql_steps.export_file(batch.quarantine_task_id, rejected, batch.quarantine.uri_template)
    verdict = enforce_bad_row_threshold.override(task_id=batch.threshold_task_id)(batch_tables(rows), rows)
    [valid, quarantined] >> verdict
    schema, name = batch.target.split(".", 1)
    merged = sql_steps.merge(f"merge_{rows}", table(name, schema), valid, batch.columns, key=batch.key)
    verdict >> merged
    return merged


@task_group(group_id="orders_etl")
def orders_etl():
    """Extract, load, validate and merge the day's orders; publish gold orders."""
    ready = prepare_warehouse()

    customers_raw = extract_customers()
    customers_staged = sql_steps.load_file(
        "load_customers", RAW_CUSTOMERS.uri_template, _text_table("customers_raw", CUSTOMER_COLUMNS), text_as_is=True
    )
    # The extracts read only the source, so they start beside prepare_warehouse, not after it.
    [ready, customers_raw] >> customers_staged
    customers_merged = _merge_checked("customers", check_customers, customers_staged)

    extracted = extract_orders()
    orders_staged = sql_steps.load_file(
        "load_orders", RAW_ORDERS.uri_template, _text_table("orders_raw", RAW_ORDER_COLUMNS), text_as_is=True
    )
    has_orders(extracted) >> orders_staged
    # Checked after the customers' merge: an order's customer must be in gold.customers as this run left it.
    merged = _merge_checked("orders", check_orders, [orders_staged, customers_merged])

    published = publish_orders()
    customers_merged >> [merged, published]
    gold.publish(ORDERS, merged, lake=published)
