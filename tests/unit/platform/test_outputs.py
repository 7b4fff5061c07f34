"""outputs: the registry's own vocabulary, partitions, lake files and output entries.

How the DAGs follow the registry (announcing, writing and checking where each entry says) is
tested with the DAGs, in tests/dags/test_outputs.py. Here: a partition names the same value in
Python and as a template, a lake file's keys and URIs are built and recognised alike, and an
entry adds the checks its business key implies.
"""

from __future__ import annotations

import string
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Template

from include.shopstream.platform import business_dates, outputs
from include.shopstream.platform.compat import Dataset
from include.shopstream.platform.outputs import KEY, NO_NULLS, LakeFile, Output, Partition

pytestmark = pytest.mark.devtools

EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)
PARTITIONS = (outputs.BUSINESS_DATE, outputs.INTERVAL_START, outputs.LOGICAL_MOMENT, outputs.LOGICAL_DATE)
LAKE_FILES = tuple(value for value in vars(outputs).values() if isinstance(value, LakeFile))
MOMENTS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
PARTS = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=30).filter(
    lambda part: part not in (".", "..")
)
ORDERS_KEY = "gold/orders/ds=2026-11-23/orders.parquet"


def entry(key: tuple[str, ...], table: str | None = "gold.returns", **fields) -> Output:
    uri = "s3://shopstream/gold/returns"
    return Output("returns", uri, "sales_core_pipeline", "returns.announce_returns", key, table, **fields)


@EXAMPLES
@given(moment=MOMENTS, partition=st.sampled_from(PARTITIONS))
def test_a_partition_names_the_same_value_in_python_and_as_a_template(moment, partition):
    rendered = Template(partition.template).render({partition.source: moment})
    assert rendered == partition.value(moment) == moment.strftime(partition.fmt)


def test_a_partitions_value_of_a_text_is_the_text_as_it_is():
    assert outputs.BUSINESS_DATE.value("2026-11-23") == "2026-11-23"
    assert outputs.BUSINESS_DATE.value("{{ ds }}") == "{{ ds }}"
    assert outputs.BUSINESS_DATE.value(date(2026, 11, 23)) == "2026-11-23"
    assert outputs.INTERVAL_START.value(datetime(2026, 11, 23, 2, 5, 9, tzinfo=UTC)) == "20261123T020509"


def test_the_business_date_partition_is_read_from_the_data_interval_start():
    assert Partition("ds", business_dates.INTERVAL_START, "%Y-%m-%d") == outputs.BUSINESS_DATE
    assert outputs.BUSINESS_DATE.template == "{{ data_interval_start.strftime('%Y-%m-%d') }}"


def test_a_partitioned_file_needs_a_date():
    with pytest.raises(ValueError, match="raw/orders is partitioned by ds: give a date"):
        outputs.RAW_ORDERS.key_for()
    with pytest.raises(ValueError, match="partitioned by ts"):
        outputs.RAW_STOCK.uri_for()


def test_an_unpartitioned_file_has_one_key_whatever_the_date():
    assert outputs.INVENTORY_FILE.key_for() == "gold/inventory/inventory.parquet"
    assert outputs.INVENTORY_FILE.key_for(date(2026, 11, 23)) == "gold/inventory/inventory.parquet"
    assert outputs.INVENTORY_FILE.uri_template == "s3://shopstream/gold/inventory/inventory.parquet"


def test_a_folders_uri_ends_with_a_slash_and_a_files_does_not():
    day = date(2026, 11, 23)
    assert outputs.RAW_ORDERS.key_for(day) == "raw/orders/ds=2026-11-23"
    assert outputs.RAW_ORDERS.uri_for(day) == "s3://shopstream/raw/orders/ds=2026-11-23/"
    assert outputs.RAW_ORDERS.uri_for(day, "part-0.csv") == "s3://shopstream/raw/orders/ds=2026-11-23/part-0.csv"
    assert outputs.ORDERS_FILE.uri_for(day) == f"s3://shopstream/{ORDERS_KEY}"
    assert outputs.ORDERS_FILE.key_for(day, "other.parquet") == "gold/orders/ds=2026-11-23/other.parquet"


@EXAMPLES
@given(lake_file=st.sampled_from(LAKE_FILES), moment=MOMENTS, part=PARTS)
def test_every_key_a_lake_file_builds_is_one_it_holds(lake_file, moment, part):
    name = None if lake_file.name else part
    key = lake_file.key_for(moment, name)
    assert lake_file.holds(key)
    assert lake_file.uri_for(moment, name) == f"s3://shopstream/{key}"
    others = [other for other in LAKE_FILES if other.prefix != lake_file.prefix]
    assert not any(other.holds(key) for other in others)


@pytest.mark.parametrize(
    "key",
    [
        "gold/orders/ds=2026-11-23/other.parquet",  # another name
        "gold/orders/ds=/orders.parquet",  # an empty partition
        "gold/orders/ts=20261123T020000/orders.parquet",  # another partition
        "gold/orders/orders.parquet",  # no partition
        "gold/orders/ds=2026-11-23/x/orders.parquet",  # deeper
        "gold/orderz/ds=2026-11-23/orders.parquet",  # another prefix
        "gold/ds=2026-11-23/orders.parquet",
        "",
    ],
)
def test_a_file_holds_only_its_own_name_under_one_partition_of_its_prefix(key):
    assert outputs.ORDERS_FILE.holds(ORDERS_KEY)
    assert not outputs.ORDERS_FILE.holds(key)


@pytest.mark.parametrize("part", ["", ".", "..", "a/b"])
def test_a_folder_holds_any_one_part_but_no_dot_entries(part):
    assert outputs.RAW_ORDERS.holds("raw/orders/ds=2026-11-23/part-0.csv")
    assert not outputs.RAW_ORDERS.holds(f"raw/orders/ds=2026-11-23/{part}")


def test_an_unpartitioned_file_holds_its_name_directly_under_its_prefix():
    assert outputs.CATALOG_FILE.holds("gold/product_catalog/product_catalog.parquet")
    assert not outputs.CATALOG_FILE.holds("gold/product_catalog/ds=2026-11-23/product_catalog.parquet")


def test_a_one_column_key_is_not_null_and_unique():
    output = entry(("return_id",))
    assert output.columns == {"return_id": KEY}
    assert output.checks == {}


def test_each_column_of_a_longer_key_is_not_null_and_the_combination_unique():
    output = entry(("day", "sku"), checks={"positive": "COUNT(*) FILTER (WHERE n < 0) = 0"})
    assert output.columns == {"day": NO_NULLS, "sku": NO_NULLS}
    assert output.checks == {
        "key_is_unique": "COUNT(*) = COUNT(DISTINCT (day, sku))",
        "positive": "COUNT(*) FILTER (WHERE n < 0) = 0",
    }
    assert "key_is_unique" not in entry(("day", "sku"), table=None).checks  # files only: no table to count


def test_an_entry_may_tighten_the_check_of_a_key_column():
    tighter = {"null_check": {"equal_to": 0}, "min": {"geq_to": 1}}
    assert entry(("return_id",), columns={"return_id": tighter}).columns == {"return_id": tighter}


def test_an_entry_is_its_dataset_table_and_announcing_task():
    output = entry(("return_id",))
    assert output.dataset == Dataset("s3://shopstream/gold/returns")
    assert (output.table_name, output.announce_task_id) == ("returns", "announce_returns")
    assert output == entry(("return_id",)), "entries compare by what they declare"


def test_the_registered_outputs_name_their_checks_and_tasks_once():
    for attribute in ("name", "uri", "announced_by"):
        values = [getattr(output, attribute) for output in outputs.PUBLISHED]
        assert len(values) == len(set(values)), attribute
    tables = [output.table for output in outputs.PUBLISHED if output.table]
    assert len(tables) == len(set(tables))


def test_published_by_is_a_dags_outputs_in_declaration_order():
    assert outputs.published_by("sales_core_pipeline") == (outputs.ORDERS, outputs.CUSTOMER_360)
    assert outputs.published_by("analytics_and_reporting_pipeline") == (
        outputs.DAILY_REPORTS,
        outputs.WEEKLY_ANALYTICS,
        outputs.CUSTOMER_FEATURES,
    )
    assert outputs.published_by("observability_pipeline") == ()
