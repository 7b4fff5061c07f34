"""inventory_mgmt_pipeline against the inventory API simulator, the moto S3 and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from localdev.inventory_api import sku, stock_level
from tests.pipelines.conftest import DATA, INVENTORY_SEED

# The platform's services are shared: one xdist worker runs the group (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("platform-2")]


@pytest.fixture(scope="module")
def inventory_run(platform):
    logical = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    states = platform.run_dag("inventory_mgmt_pipeline", logical)
    assert states["__run__"] == "success", states["__log__"][-4000:]
    return states


def test_gold_inventory_holds_the_apis_stock(platform, inventory_run):
    rows = {r["sku"]: r for r in platform.warehouse("SELECT * FROM gold.inventory")}
    assert len(rows) == 50
    as_of = next(iter(rows.values()))["as_of"]
    for index in range(1, 51):
        want = stock_level(INVENTORY_SEED, sku(index), as_of)
        got = rows[sku(index)]
        assert (got["warehouse"], got["on_hand"], got["reserved"]) == (
            want["warehouse"],
            want["on_hand"],
            want["reserved"],
        )
        assert got["available"] == want["on_hand"] - want["reserved"]


def test_product_catalog_joins_every_product_with_its_stock(platform, inventory_run):
    catalog = {r["sku"]: r for r in platform.warehouse("SELECT * FROM gold.product_catalog")}
    products = {p["sku"]: p for p in DATA.products()}
    assert set(catalog) == set(products)
    stock = {r["sku"]: r for r in platform.warehouse("SELECT * FROM gold.inventory")}
    for code, product in products.items():
        row = catalog[code]
        assert (row["name"], row["category"], row["unit_price"]) == (
            product["name"],
            product["category"],
            product["unit_price"],
        )
        available = stock[code]["available"] if code in stock else None
        assert row["available"] == available
        assert row["in_stock"] == bool(available)


def test_both_datasets_are_announced(platform, inventory_run):
    uris = {
        r["uri"]
        for r in platform.metadata(
            "SELECT d.uri FROM dataset_event e JOIN dataset d ON d.id = e.dataset_id "
            "WHERE e.source_dag_id = 'inventory_mgmt_pipeline'"
        )
    }
    assert uris == {"s3://shopstream/gold/inventory", "s3://shopstream/gold/product_catalog"}
