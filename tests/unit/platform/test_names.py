"""names: the connections, schemas, lake bucket, SQL files and Variables, spelled once.

What is spelled here is what the rest reads: the lake's URIs are built from the bucket, the SQL
steps find their files on the search path the DAGs set, the schemas are those the warehouse
script creates, and the default threshold is the one the local settings seed.
"""

from __future__ import annotations

import ast
import string

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from include.shopstream.platform import names, outputs
from tests.conftest import PROJECT

pytestmark = pytest.mark.devtools

EXAMPLES = settings(max_examples=200, deadline=None, derandomize=True)
SEGMENTS = st.text(alphabet=string.ascii_lowercase + string.digits + "_-=.", min_size=1, max_size=20)
KEYS = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)


@EXAMPLES
@given(key=KEYS, folder=st.booleans())
def test_a_lake_uri_is_its_key_in_the_lakes_bucket(key, folder):
    key = key + "/" if folder else key
    uri = names.lake_uri(key)
    assert uri == f"s3://{names.BUCKET}/{key}"
    assert uri.removeprefix("s3://").split("/", 1) == [names.BUCKET, key]
    assert uri.endswith("/") is folder


def test_the_lake_is_the_shopstream_bucket():
    assert names.lake_uri("gold/orders") == "s3://shopstream/gold/orders"


def test_the_sql_files_are_in_the_include_folder_and_on_the_template_search_path():
    assert names.SQL_DIR == PROJECT / "include" / "shopstream" / "sql"
    assert names.SQL_DIR.is_absolute()
    assert [str(names.SQL_DIR)] == names.TEMPLATE_SEARCHPATH
    assert sorted(names.SQL_DIR.glob("*.sql")), "the folder holds the SQL files"


def test_sql_reads_a_files_text_by_its_name():
    for path in sorted(names.SQL_DIR.glob("*.sql")):
        assert names.sql(path.name) == path.read_text()


def test_sql_of_a_file_that_is_not_there_fails():
    with pytest.raises(FileNotFoundError):
        names.sql("no_such_step.sql")


def dag_keywords(path) -> dict[str, ast.expr]:
    """The keywords of the ``@dag(...)`` decorator of a DAG file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "dag":
                    return {keyword.arg: keyword.value for keyword in decorator.keywords}
    return {}


@pytest.mark.parametrize("dag_id", sorted({output.dag_id for output in outputs.PUBLISHED}))
def test_each_dag_that_runs_sql_steps_searches_the_sql_folder(dag_id):
    searchpath = dag_keywords(PROJECT / "dags" / f"{dag_id}.py").get("template_searchpath")
    assert isinstance(searchpath, ast.Name) and searchpath.id == "TEMPLATE_SEARCHPATH"


def test_the_staging_and_gold_schemas_are_those_the_warehouse_script_creates():
    script = names.sql("warehouse_schema.sql")
    for schema in (names.STAGING, names.GOLD):
        assert f"CREATE SCHEMA IF NOT EXISTS {schema};" in script
    tables = [output.table for output in outputs.PUBLISHED if output.table]
    assert tables and all(table.split(".")[0] == names.GOLD for table in tables)


def test_the_default_bad_row_threshold_is_the_one_the_settings_seed():
    document = yaml.safe_load((PROJECT / "airflow_settings.yaml").read_text())
    seeded = {v["variable_name"]: v["variable_value"] for v in document["airflow"]["variables"]}
    assert float(seeded[names.BAD_ROW_THRESHOLD_VARIABLE]) == names.DEFAULT_BAD_ROW_THRESHOLD
    assert 0 < names.DEFAULT_BAD_ROW_THRESHOLD < 1
