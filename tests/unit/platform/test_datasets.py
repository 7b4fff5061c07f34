"""datasets: the platform's Datasets by the names the DAG files read, each its output's own.

A DAG schedules on these and a producer announces its output's Dataset: the name must be the
output's Dataset (never a copy with another URI), at the URI consumers outside Airflow read.
"""

from __future__ import annotations

import pytest

from include.shopstream.platform import datasets, outputs
from include.shopstream.platform.compat import Dataset

NAMED = {
    "GOLD_ORDERS": (outputs.ORDERS, "s3://shopstream/gold/orders"),
    "GOLD_CUSTOMER_360": (outputs.CUSTOMER_360, "s3://shopstream/gold/customer_360"),
    "GOLD_INVENTORY": (outputs.INVENTORY, "s3://shopstream/gold/inventory"),
    "GOLD_PRODUCT_CATALOG": (outputs.PRODUCT_CATALOG, "s3://shopstream/gold/product_catalog"),
    "GOLD_DAILY_REPORTS": (outputs.DAILY_REPORTS, "s3://shopstream/gold/daily_reports"),
    "GOLD_WEEKLY_ANALYTICS": (outputs.WEEKLY_ANALYTICS, "s3://shopstream/gold/weekly_analytics"),
    "CUSTOMER_FEATURES": (outputs.CUSTOMER_FEATURES, "s3://shopstream/features/customer"),
}


@pytest.mark.parametrize("name", NAMED)
def test_each_name_is_its_outputs_dataset_at_its_uri(name):
    output, uri = NAMED[name]
    dataset = getattr(datasets, name)
    assert dataset is output.dataset
    assert dataset.uri == output.uri == uri


def test_the_module_names_no_other_dataset():
    named = {name for name, value in vars(datasets).items() if isinstance(value, Dataset)}
    assert named == set(NAMED)


def test_a_dataset_declared_again_by_its_uri_is_the_same_dataset():
    """A DAG's schedule and a producer's outlet match by URI, wherever each was built."""
    for output, uri in NAMED.values():
        assert Dataset(uri) == output.dataset
        assert hash(Dataset(uri)) == hash(output.dataset)


def test_what_observability_watches_is_every_published_output_in_registry_order():
    assert tuple(output.dataset for output in outputs.PUBLISHED) == datasets.PUBLISHED
    assert [d.uri for d in datasets.PUBLISHED] == [uri for _, uri in NAMED.values()]
    assert all(a is b for a, b in zip(datasets.PUBLISHED, (getattr(datasets, n) for n in NAMED), strict=True))
