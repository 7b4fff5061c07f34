"""plugins/: the preload listener imports the pipelines in the scheduler, and only there."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT


@pytest.fixture(scope="module")
def preload_plugin():
    spec = importlib.util.spec_from_file_location("shopstream_preload", PROJECT / "plugins" / "shopstream_preload.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def preload_calls(preload_plugin, monkeypatch):
    calls = []
    monkeypatch.setattr(preload_plugin, "preload", lambda: calls.append(1) or ["include.shopstream.pipelines.orders"])
    return calls


@pytest.mark.parametrize(
    "argv",
    [
        ["airflow", "webserver"],
        ["airflow", "triggerer"],
        ["airflow", "dags", "trigger", "sales_core_pipeline"],
        ["airflow", "dags", "test", "sales_core_pipeline"],
        ["airflow", "backfill"],
        ["airflow"],
        ["python", "-c"],
    ],
)
def test_only_the_scheduler_preloads(preload_plugin, preload_calls, argv):
    preload_plugin.Preloader(argv=argv).on_starting(component=None)
    assert preload_calls == []


def test_the_scheduler_preloads_once(preload_plugin, preload_calls):
    listener = preload_plugin.Preloader(argv=["/usr/local/bin/airflow", "scheduler", "--num-runs", "1"])
    listener.on_starting(component=None)
    # A LocalTaskJob forked from the scheduler starts with the same argv: no second import.
    listener.on_starting(component=None)
    assert preload_calls == [1]


def test_a_backfill_preloads_for_its_own_executor(preload_plugin, preload_calls):
    argv = ["/usr/local/bin/airflow", "dags", "backfill", "sales_core_pipeline", "--start-date", "2026-11-01"]
    preload_plugin.Preloader(argv=argv).on_starting(component=None)
    assert preload_calls == [1]


def test_a_failed_preload_is_logged_and_the_scheduler_goes_on(preload_plugin, monkeypatch, caplog):
    def broken():
        raise ImportError("No module named 'astro'")

    monkeypatch.setattr(preload_plugin, "preload", broken)
    with caplog.at_level(logging.WARNING, logger=preload_plugin.log.name):
        preload_plugin.Preloader(argv=["airflow", "scheduler"]).on_starting(component=None)
    assert "could not preload include.shopstream" in caplog.text
    assert "No module named 'astro'" in caplog.text


def test_preload_imports_every_pipeline_module_and_the_sql_back_end(preload_plugin):
    names = preload_plugin.preload()
    package = PROJECT / "include" / "shopstream"
    on_disk = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    on_disk |= {path.parent.name for path in package.glob("*/__init__.py")}
    assert {name.rsplit(".", 1)[1] for name in names} == on_disk
    assert all(name in sys.modules for name in names)
    from include.shopstream.platform import sql_steps

    # The back-end the tasks use, and with the SDK's, the SDK itself.
    assert sql_steps._backend.__name__ in sys.modules
    if sql_steps.BACKEND == "astro":
        assert "astro.sql" in sys.modules


def test_airflow_loads_the_plugin_with_its_listener():
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"), "PYTHONPATH": str(PROJECT)}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert "shopstream_preload" in plugins, plugins
    assert any("Preloader" in listener for listener in plugins["shopstream_preload"]["listeners"])
