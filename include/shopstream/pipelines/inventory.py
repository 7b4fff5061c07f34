"""inventory_sync and product_catalog: stock per SKU from the inventory API, then the catalog.

The inventory API times out or errors on about one call in ten. A failed call raises, so the
DAG's retry policy applies; a response that breaks the contract is quarantined whole and the
task fails, so gold.inventory is never half-loaded. The contract on each item is gold.inventory's
definition, read from the warehouse's catalog (include/shopstream/platform/contract.py), as for orders.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, Text

from include.shopstream.platform import gold, sql_steps
from include.shopstream.platform.compat import task, task_group
from include.shopstream.platform.names import INVENTORY_API_POOL, SOURCE_DB_POOL, STAGING
from include.shopstream.platform.outputs import INVENTORY, PRODUCT_CATALOG, RAW_PRODUCTS, RAW_STOCK, STOCK_QUARANTINE
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.tasks import prepare_warehouse

INVENTORY_COLUMNS = ("sku", "warehouse", "on_hand", "reserved", "available", "as_of", "loaded_at")
CATALOG_COLUMNS = (
    "sku",
    "product_id",
    "name",
    "category",
    "unit_price",
    "on_hand",
    "available",
    "in_stock",
    "loaded_at",
)
STOCK_STAGING_COLUMNS = [
    Column("sku", Text),
    Column("warehouse", Text),
    Column("on_hand", Integer),
    Column("reserved", Integer),
    Column("as_of", DateTime(timezone=True)),
]


# What each item of the API's answer gives gold.inventory (as_of comes with the page).
ITEM_FIELDS = ("sku", "warehouse", "on_hand", "reserved", "as_of")


def contract_problems(payload: object) -> list[str]:
    """What is wrong with the shape of one page of the inventory API's answer (empty when nothing is)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), list):
        return ["the response is not an object with an 'items' list"]
    return [
        f"items[{index}] is not an object" for index, item in enumerate(payload["items"]) if not isinstance(item, dict)
    ]


def item_problems(conn, items: list[dict]) -> list[str]:
    """Each item that breaks gold.inventory's contract, with the first way it does (empty when none does).

    The items are checked in the warehouse as text, by the same query as orders' rows: NOT NULL,
    fit to the column's type, CHECK constraints, one item per SKU.
    """
    import json

    from include.shopstream.platform.contract import problems_query, read_contract
    from include.shopstream.platform.pg import server_version, sql_module

    pgsql = sql_module(conn)
    problems: dict[int, str] = {}
    with conn.cursor() as cur:
        contract = read_contract(cur, INVENTORY.table)
        fields = [c.name for c in contract.columns if c.name in ITEM_FIELDS]
        rows = []
        for index, item in enumerate(items):
            for name in fields:
                value = item.get(name)
                if contract.column(name).type == "text" and value is not None and not isinstance(value, str):
                    problems.setdefault(index, f"{name} is not a text: {value!r}")
            rows.append([str(index), *(None if item.get(n) is None else str(item.get(n)) for n in fields)])
        columns = ["item_index", *fields]
        cur.execute(
            pgsql.SQL("CREATE TEMP TABLE inventory_items ({}) ON COMMIT DROP").format(
                pgsql.SQL(", ").join(pgsql.SQL("{} text").format(pgsql.Identifier(c)) for c in columns)
            )
        )
        if rows:  # one statement for every item, whichever driver: the rows as one JSON array
            cur.execute(
                "INSERT INTO inventory_items SELECT * FROM json_populate_recordset(NULL::inventory_items, %s)",
                (json.dumps([dict(zip(columns, row, strict=True)) for row in rows]),),
            )
        query = problems_query(
            contract,
            "inventory_items",
            columns,
            order_by="item_index",
            server_version=server_version(conn),
            supplied=("available", "loaded_at"),
            sql=pgsql,
        )
        cur.execute(pgsql.SQL("SELECT item_index, problem FROM ({}) AS checked").format(query))
        for index, problem in cur.fetchall():
            if problem:
                problems.setdefault(int(index), problem)
    conn.rollback()  # the temporary table goes with the transaction
    return [f"items[{index}]: {problem}" for index, problem in sorted(problems.items())]


def first_problem(problem: str, items: list[dict]) -> str:
    """``problem`` ("items[<i>]: <reason>") for a failure message: the item, its SKU and the rule, no values."""
    from include.shopstream.platform.contract import rule_of

    index, _, reason = problem.partition(": ")
    position = int(index.removeprefix("items[").removesuffix("]"))
    sku = items[position].get("sku") if isinstance(items[position], dict) else None
    named = f", sku {sku!r}" if isinstance(sku, str) and sku else ""
    return f"{index}{named}: {rule_of(reason)}"


@task(pool=INVENTORY_API_POOL)
def fetch_stock(logical_date=None) -> dict:
    """Page through the inventory API; land the stock in raw/, or quarantine a bad answer and fail."""
    import json
    from contextlib import closing

    import requests
    from airflow.providers.http.hooks.http import HttpHook

    from include.shopstream.platform.compat import AirflowException, AirflowFailException, Variable
    from include.shopstream.platform.lake import lake_hook
    from include.shopstream.platform.names import (
        BUCKET,
        INVENTORY_API_CONN_ID,
        INVENTORY_API_PAGE_SIZE_VARIABLE,
        INVENTORY_API_TIMEOUT_VARIABLE,
        lake_uri,
    )
    from include.shopstream.platform.warehouse import data_errors_fail, warehouse_hook

    hook = HttpHook(method="GET", http_conn_id=INVENTORY_API_CONN_ID)
    timeout = float(Variable.get(INVENTORY_API_TIMEOUT_VARIABLE, "10"))
    page_size = int(Variable.get(INVENTORY_API_PAGE_SIZE_VARIABLE, "500"))
    items, page, as_of, asked = [], 1, None, set()
    while page:
        asked.add(page)
        try:
            response = hook.run(
                "/v1/stock", data={"page": page, "page_size": page_size}, extra_options={"timeout": timeout}
            )
        except (requests.RequestException, AirflowException) as err:  # timeouts, refusals, 5xx: try again later
            raise AirflowException(f"inventory API call for page {page} failed: {err}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        problems = contract_problems(payload)
        if problems:
            key = STOCK_QUARANTINE.key_for(logical_date, f"page-{page}.json")
            body = json.dumps({"problems": problems, "response": payload if payload is not None else response.text})
            lake_hook().load_string(body, key=key, bucket_name=BUCKET, replace=True)
            raise AirflowFailException(
                f"the inventory API's page {page} broke the contract ({len(problems)} problem(s), first: "
                f"{problems[0]}); nothing was loaded. The response is in {lake_uri(key)}"
            )
        as_of = payload.get("as_of")
        items.extend({**item, "as_of": as_of} for item in payload["items"])
        previous, page = page, payload.get("next_page")
        if page in asked:  # the API would send the same pages round and round until the task timed out
            raise AirflowFailException(
                f"the inventory API's page {previous} names page {page!r} as the next one, which it has sent"
                " already; nothing was loaded"
            )
    with data_errors_fail(), closing(warehouse_hook().get_conn()) as conn:
        problems = item_problems(conn, items)
    if problems:
        key = STOCK_QUARANTINE.key_for(logical_date, "items.json")
        lake_hook().load_string(
            json.dumps({"problems": problems, "items": items}, default=str), key=key, bucket_name=BUCKET, replace=True
        )
        raise AirflowFailException(
            f"{len(problems)} of the inventory API's {len(items)} items broke gold.inventory's contract (first: "
            f"{first_problem(problems[0], items)}); nothing was loaded. The items and problems are in "
            f"{lake_uri(key)}"
        )
    key = RAW_STOCK.key_for(logical_date)
    lake_hook().load_string("\n".join(json.dumps(i) for i in items), key=key, bucket_name=BUCKET, replace=True)
    print(f"landed stock for {len(items)} SKUs as of {as_of} in {lake_uri(key)}")
    return {"skus": len(items), "uri": lake_uri(key)}


@task_group(group_id="inventory_sync")
def inventory_sync():
    """Stock levels per SKU into gold.inventory."""
    fetched = fetch_stock()
    staged = sql_steps.load_file(
        "load_stock",
        RAW_STOCK.uri_template,
        table("inventory_raw", STAGING, columns=STOCK_STAGING_COLUMNS),
        filetype="ndjson",
    )
    ready = sql_steps.transform_file(
        "stock_ready", "inventory_ready.sql", table("inventory_ready", STAGING), raw_stock=staged
    )
    prepare_warehouse() >> fetched >> staged
    gold.publish(INVENTORY, gold.merge(INVENTORY, ready, INVENTORY_COLUMNS))


@task(pool=SOURCE_DB_POOL)
def extract_products(data_interval_start=None) -> dict:
    """Snapshot the source's products to raw/products/ts=<interval start>/."""
    from include.shopstream.platform.lake import extract_from_source

    extract = extract_from_source("products_extract.sql", RAW_PRODUCTS.key_for(data_interval_start))
    return {"rows": extract.rows, "uri": extract.uri}


@task_group(group_id="product_catalog")
def product_catalog():
    """Products joined with current stock into gold.product_catalog."""
    extracted = extract_products()
    staged = sql_steps.load_file("load_products", RAW_PRODUCTS.uri_template, table("products_raw", STAGING))
    extracted >> staged
    swapped = gold.rebuild(PRODUCT_CATALOG, CATALOG_COLUMNS, products=staged, inventory=table(INVENTORY.table_name))
    gold.publish(PRODUCT_CATALOG, swapped)
