"""airflow_settings.yaml is applied with the Astro CLI's semantics, atomically.

The expectations follow the Astro CLI v1.45 (settings/settings.go and settings/types.go): the
keys it decodes, how it turns them into the JSON it sends to Airflow's REST API, and what
that API (Airflow 2.10.5) does with a POST, or with a PATCH after a 409.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

from localdev.settings import Endpoint, SettingsError, load, parse, point_at
from tests.conftest import PROJECT

DESIGN_CONNECTIONS = {
    "shopstream_source",
    "shopstream_warehouse",
    "aws_default",
    "inventory_api",
    "slack_alerts",
    "pagerduty_alerts",
}

DUMP = textwrap.dedent(
    """
    import json
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session
    with create_session() as s:
        print(json.dumps({
            "connections": {c.conn_id: {"type": c.conn_type, "host": c.host, "port": c.port, "schema": c.schema,
                                        "login": c.login, "password": c.password, "extra": c.extra}
                            for c in s.query(Connection)},
            "variables": {v.key: v.val for v in s.query(Variable)},
            "pools": {p.pool: [p.slots, p.description] for p in s.query(Pool)},
        }))
    """
)


def dump(stack) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", DUMP], env=stack.airflow_env(), capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # Airflow 3 may log to stdout before it


def apply(stack, path, *endpoints: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "localdev.settings", "apply", str(path)]
    for endpoint in endpoints:
        argv += ["--endpoint", endpoint]
    return subprocess.run(argv, env=stack.airflow_env(), capture_output=True, text=True, cwd=PROJECT)


def write(tmp_path, document) -> str:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


# -- parsing and checking (no database) ------------------------------------------------------


def test_the_project_file_seeds_every_connection_the_design_names():
    settings = load(PROJECT / "airflow_settings.yaml")
    assert {c.conn_id for c in settings.connections} == DESIGN_CONNECTIONS
    aws = next(c for c in settings.connections if c.conn_id == "aws_default")
    assert json.loads(aws.extra)["endpoint_url"] == "http://moto:5000"


def test_the_project_file_seeds_the_names_the_code_uses():
    """The YAML spells the connection ids, Variables and pools again: exactly as names.py does."""
    from include.shopstream.platform import names

    def named(suffix: str) -> set[str]:
        return {value for key, value in vars(names).items() if key.endswith(suffix)}

    settings = load(PROJECT / "airflow_settings.yaml")
    assert {c.conn_id for c in settings.connections} == named("_CONN_ID")
    assert {name for name, _ in settings.variables} == named("_VARIABLE")
    assert {pool.name for pool in settings.pools} == named("_POOL") == {"shopstream_source_db", "inventory_api"}


# The keys of the CLI's Connection, Variables and Pools structs (mapstructure tags).
ASTRO_CLI_KEYS = {
    "connections": {
        "conn_id",
        "conn_type",
        "conn_host",
        "conn_schema",
        "conn_login",
        "conn_password",
        "conn_port",
        "conn_uri",
        "conn_extra",
    },
    "variables": {"variable_name", "variable_value"},
    "pools": {"pool_name", "pool_slot", "pool_description"},
}


def test_the_project_file_uses_only_keys_the_astro_cli_reads():
    document = yaml.safe_load((PROJECT / "airflow_settings.yaml").read_text())
    assert set(document) == {"airflow"} and set(document["airflow"]) <= set(ASTRO_CLI_KEYS)
    for section, entries in document["airflow"].items():
        for entry in entries:
            assert set(entry) <= ASTRO_CLI_KEYS[section], f"{section}: {sorted(set(entry) - ASTRO_CLI_KEYS[section])}"


def connection(**entry):
    return parse({"airflow": {"connections": [{"conn_id": "c", **entry}]}}).connections[0]


def test_a_conn_extra_map_becomes_the_json_the_cli_sends():
    # Go's json.Marshal: compact, keys sorted, HTML characters escaped.
    spec = connection(conn_type="http", conn_extra={"z": 1, "a": {"b": "<x>"}, "m": True})
    assert spec.extra == '{"a":{"b":"\\u003cx\\u003e"},"m":true,"z":1}'
    assert connection(conn_type="http", conn_extra='{"kept": "as written"}').extra == '{"kept": "as written"}'


def test_a_conn_uri_alone_is_split_into_fields_as_the_cli_splits_it():
    spec = connection(conn_uri="PostgreSQL://us%40er:p%3Ass@db.example:6432/shop?sslmode=require&app=a")
    assert spec.fields() == {
        "conn_type": "postgresql",
        "host": "db.example",
        "login": "us@er",
        "password": "p:ss",
        "port": 6432,
        "schema": "shop",
        "extra": '{"app": "a", "sslmode": "require"}',
    }


def test_a_conn_uri_is_ignored_when_any_other_field_is_set():
    spec = connection(conn_uri="postgres://u:p@elsewhere:1/x", conn_type="http", conn_host="api")
    assert spec.fields() == {"conn_type": "http", "host": "api"}


def test_scalars_are_read_as_the_cli_decodes_them():
    settings = parse(
        {
            "airflow": {
                "connections": [{"conn_id": "c", "conn_type": "http", "conn_port": "8080", "conn_login": 42}],
                "variables": [
                    {"variable_name": "flag", "variable_value": True},
                    {"variable_name": "ratio", "variable_value": 0.05},
                    {"variable_name": "big", "variable_value": 1e20},
                    {"variable_name": "count", "variable_value": 500},
                ],
                "pools": [{"pool_name": "p", "pool_slot": "3"}],
            }
        }
    )
    assert (settings.connections[0].port, settings.connections[0].login) == (8080, "42")
    assert dict(settings.variables) == {"flag": "1", "ratio": "0.05", "big": "100000000000000000000", "count": "500"}
    assert settings.pools[0].slots == 3


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"airflow": {"connections": [{"conn_type": "http"}]}}, "connections[0] has no conn_id"),
        (
            {"airflow": {"connections": [{"conn_id": "x", "conn_type": "http", "conn_port": "eighty"}]}},
            "connections[0] (conn_id 'x'): conn_port must be a port number",
        ),
        ({"airflow": {"connections": [{"conn_id": "x"}]}}, "connections[0] (conn_id 'x'): needs conn_type"),
        (
            {"airflow": {"connections": [{"conn_id": "x", "conn_type": "http", "conn_hots": "h"}]}},
            "unknown key(s) conn_hots",
        ),
        (
            {"airflow": {"connections": [{"conn_id": "x", "conn_type": "a"}, {"conn_id": "x", "conn_type": "b"}]}},
            "connections[1] (conn_id 'x') is defined twice",
        ),
        (
            {"airflow": {"connections": [{"conn_id": "x", "conn_type": "http", "conn_description": "d"}]}},
            "unknown key(s) conn_description",
        ),
        (
            {"airflow": {"variables": [{"variable_name": "v"}]}},
            "variables[0] (variable_name 'v'): needs a variable_value",
        ),
        (
            {"airflow": {"variables": [{"variable_name": "v", "variable_value": ""}]}},
            "variables[0] (variable_name 'v'): needs a variable_value",
        ),
        (
            {"airflow": {"variables": [{"variable_name": "v", "variable_value": {"a": 1}}]}},
            "variables[0] (variable_name 'v'): variable_value must be a plain value",
        ),
        (
            {"airflow": {"pools": [{"pool_name": "p", "pool_slot": 0}]}},
            "pools[0] (pool_name 'p'): pool_slot must be",
        ),
        (
            {"airflow": {"pools": [{"pool_name": "p", "pool_slot": "many"}]}},
            "pools[0] (pool_name 'p'): pool_slot must be",
        ),
        ({"airflow": {"pool": []}}, "unknown section(s) airflow.pool"),
        ({"connections": []}, "the top level must be a single 'airflow:' mapping"),
    ],
)
def test_a_malformed_entry_is_named_in_one_line(document, message):
    with pytest.raises(SettingsError) as caught:
        parse(document, source="settings.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("settings.yaml")
    assert "\n" not in str(caught.value)


def test_broken_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "airflow:\n  connections:\n    - conn_id: [unclosed\n")
    with pytest.raises(SettingsError, match=r"not valid YAML at line \d+"):
        load(path)


def test_compose_hosts_are_pointed_at_local_endpoints():
    settings = point_at(
        load(PROJECT / "airflow_settings.yaml"),
        {
            "shopstream-db": Endpoint("127.0.0.1", 6543, login="dev", password="pw"),
            "moto": Endpoint("127.0.0.1", 5999),
            "alert-sink": Endpoint("127.0.0.1", 8999),
        },
    )
    by_id = {c.conn_id: c for c in settings.connections}
    source = by_id["shopstream_source"]
    assert (source.host, source.port, source.login, source.password) == ("127.0.0.1", 6543, "dev", "pw")
    assert source.schema == "shopstream_source"
    assert json.loads(by_id["aws_default"].extra)["endpoint_url"] == "http://127.0.0.1:5999"
    assert by_id["slack_alerts"].host == "http://127.0.0.1:8999/slack"
    assert by_id["inventory_api"].host == "inventory-api", "hosts without an endpoint stay as they are"


# -- applying to a real metadata database ----------------------------------------------------


@pytest.mark.services
def test_apply_writes_connections_variables_and_pools(airflow_stack):
    result = apply(airflow_stack, PROJECT / "airflow_settings.yaml", "moto=127.0.0.1:5999")
    assert result.returncode == 0, result.stderr
    assert "applied 6 connections, 3 variables, 2 pools" in result.stdout

    state = dump(airflow_stack)
    assert set(state["connections"]) >= DESIGN_CONNECTIONS
    aws = state["connections"]["aws_default"]
    assert json.loads(aws["extra"]) == {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:5999"}
    assert aws["password"] == "local-dev-secret-key"
    assert state["variables"]["shopstream_bad_row_threshold"] == "0.05"
    assert state["pools"]["inventory_api"][0] == 2


@pytest.mark.services
def test_existing_objects_are_updated_as_the_cli_updates_them(airflow_stack, tmp_path):
    """Connection: PATCH of the fields the entry sets. Variable: POST (set anew). Pool: PATCH."""
    first = {
        "airflow": {
            "connections": [
                {
                    "conn_id": "update_me",
                    "conn_type": "http",
                    "conn_host": "old",
                    "conn_login": "u",
                    "conn_extra": {"a": 1},
                }
            ],
            "variables": [{"variable_name": "update_var", "variable_value": "old"}],
            "pools": [{"pool_name": "update_pool", "pool_slot": 1, "pool_description": "old"}],
        }
    }
    assert apply(airflow_stack, write(tmp_path, first)).returncode == 0
    second = {
        "airflow": {
            "connections": [{"conn_id": "update_me", "conn_type": "postgres", "conn_host": "new", "conn_port": 5432}],
            "variables": [{"variable_name": "update_var", "variable_value": "new"}],
            "pools": [{"pool_name": "update_pool", "pool_slot": 7}],
        }
    }
    assert apply(airflow_stack, write(tmp_path, second)).returncode == 0

    state = dump(airflow_stack)
    assert state["connections"]["update_me"] == {
        "type": "postgres",
        "host": "new",
        "port": 5432,
        "schema": None,
        "login": "u",  # not in the second entry: the CLI's PATCH leaves it
        "password": None,
        "extra": '{"a":1}',
    }
    assert state["variables"]["update_var"] == "new"
    assert state["pools"]["update_pool"] == [7, ""]


@pytest.mark.services
def test_a_malformed_file_changes_nothing(airflow_stack, tmp_path):
    before = dump(airflow_stack)
    document = {
        "airflow": {
            "connections": [
                {"conn_id": "would_be_added", "conn_type": "http"},
                {"conn_id": "broken", "conn_type": "http", "conn_port": -1},
            ],
            "variables": [{"variable_name": "would_be_set", "variable_value": "x"}],
        }
    }
    result = apply(airflow_stack, write(tmp_path, document))

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, "one line, no traceback"
    assert "connections[1] (conn_id 'broken'): conn_port must be a port number" in result.stderr
    assert dump(airflow_stack) == before
