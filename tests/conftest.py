"""Shared fixtures: Airflow settings for in-process parsing, and the local services.

The service fixtures use the same launchers as `make run` (localdev/), on free loopback ports
and in temporary folders, so tests never touch a developer's running platform.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent

# In-process Airflow (DagBag parsing) must be configured before airflow is first imported.
# setdefault: under `astro dev pytest` the container's own settings stay in force.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="shopstream-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(PROJECT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES", "airflow.* astro.*")
os.environ.setdefault("AIRFLOW__ASTRO_SDK__AUTO_ADD_INLETS_OUTLETS", "False")


# What `make test` installs from requirements.lock and the deployment image does not have.
DEV_TOOLS = ("pgserver", "moto", "testcontainers", "ruff", "hypothesis", "time_machine", "playwright")

# Registered here rather than in pyproject.toml, which the deployment image does not hold.
MARKERS = (
    "services: starts local services (embedded Postgres, moto S3, simulators); needs no Docker",
    "timeout(seconds): pytest-timeout's limit for one test (registered here too for runs without the plugin)",
    "xdist_group(name): run these tests on one pytest-xdist worker, in order (make test runs two workers)",
    "devtools: needs the development tools of requirements.lock (ruff, pgserver, moto, testcontainers, ...)",
    "network: needs the Python package index (pip and uv as configured on this machine);"
    " fails, never skips, when it cannot be reached",
    "e2e: the Dataset chain on a real scheduler; Postgres and S3 from Docker or the local launchers"
    " (SHOPSTREAM_TEST_BACKEND)",
)


def pytest_configure(config):
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


# The image holds only what .dockerignore lets in, so under `astro dev pytest` these test modules
# lack what they import or read: the local platform and benchmarks (localdev/, bench/) or the
# repository's own files (README.md, docs/, requirements.lock, Dockerfile, .dockerignore, .github/). They are not
# collected there (the pytest header says so); `make test` runs them.
REPOSITORY_ONLY = [
    "localdev",
    "pipelines",
    "e2e",
    "test_bench.py",
    "test_project.py",
    "test_build_context.py",
    "test_deploy_workflow.py",
    "dags/test_documented_dates.py",
]
IN_IMAGE = not (PROJECT / "localdev").is_dir()
collect_ignore = REPOSITORY_ONLY if IN_IMAGE else []


def missing_dev_tools() -> list[str]:
    return [name for name in DEV_TOOLS if importlib.util.find_spec(name) is None]


def imports_at_top(path: Path) -> set[str]:
    """The top-level packages a Python file imports outside any function."""
    names = set()
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def pytest_ignore_collect(collection_path, config):
    """Under `astro dev pytest`, a test module that imports a missing development tool is not collected."""
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    missing = set(missing_dev_tools())
    if missing and imports_at_top(collection_path) & missing:
        return True
    return None


def pytest_report_header(config):
    missing = missing_dev_tools()
    if missing:
        lines = [
            f"tests marked services or devtools, and test modules that import them: deselected or not collected,"
            f" this environment lacks {', '.join(missing)} (the deployment image under `astro dev pytest`);"
            " `make test` runs them"
        ]
        if IN_IMAGE:
            lines.append(
                f"not collected, they need files the image leaves out: tests/{', tests/'.join(REPOSITORY_ONLY)}"
            )
        return lines
    from tests.e2e import backends

    return backends.describe()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under `astro dev pytest` (no dev tools), deselect what needs them, visibly."""
    check_groups_hold(config, items)
    if not missing_dev_tools():
        return
    needs_tools = [item for item in items if item.get_closest_marker("services") or item.get_closest_marker("devtools")]
    if needs_tools:
        config.hook.pytest_deselected(items=needs_tools)
        items[:] = [item for item in items if item not in needs_tools]


SCATTERED = pytest.StashKey[str]()


def check_groups_hold(config, items) -> None:
    """Fail grouped tests when `--dist loadgroup` would scatter their group across workers.

    The end-to-end scenarios build on each other on one scheduler. pytest-xdist groups a test by
    suffixing its nodeid with ``@group``, which pytest 9.2 ignores (hence the pin in
    requirements-dev.in); without that the scenarios would run on two schedulers and fail late.
    """
    if not getattr(config.option, "loadgroup", False):  # set on pytest-xdist workers under --dist loadgroup
        return
    for item in items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            item.stash[SCATTERED] = (
                "--dist loadgroup cannot keep this test's xdist_group on one worker: this pytest and"
                " pytest-xdist disagree on nodeids. Install requirements.lock (`make venv`)."
            )


def pytest_runtest_setup(item):
    if SCATTERED in item.stash:
        pytest.fail(item.stash[SCATTERED], pytrace=False)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """An embedded Postgres for this test session."""
    from localdev import postgres
    from localdev.processes import free_port

    state = tmp_path_factory.mktemp("postgres")
    server = postgres.start_embedded(state / "data", free_port(), state / "postgres.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def airflow_stack(pg_server, tmp_path_factory):
    """A :class:`localdev.stack.Stack` whose Airflow metadata database is migrated, no processes running."""
    from localdev.processes import free_port
    from localdev.stack import METADATA_DB, Ports, Stack

    stack = Stack(state_dir=tmp_path_factory.mktemp("stack"), ports=Ports(webserver=free_port()))
    stack.pg = pg_server
    pg_server.ensure_database(METADATA_DB)
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    env = stack.airflow_env()
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    stack.airflow("db", "migrate", env=env)
    return stack
