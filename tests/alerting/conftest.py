"""A real alert sink (localdev/alert_sink.py) and the connections that point at it."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tests.alerting import pagerduty_schema

ROUTING_KEY = "local-dev-routing-key"


class Sink:
    def __init__(self, service) -> None:
        self.service = service
        self.url = service.url

    def messages(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/messages", timeout=5) as response:
            return json.load(response)

    def since(self, before: int) -> tuple[list[str], list[dict]]:
        """(Slack texts, PagerDuty events) received after the first ``before`` messages.

        Every PagerDuty event is checked against PagerDuty's published schema on the way.
        """
        new = self.messages()[before:]
        slack = [m["body"]["text"] for m in new if m["path"].startswith("/slack")]
        pager = [m["body"] for m in new if m["path"].startswith("/pagerduty")]
        for event in pager:
            assert pagerduty_schema.problems(event) == [], event
        return slack, pager

    def connections(self) -> dict[str, str]:
        """Airflow connections (as environment variables) that deliver to this sink."""
        return connections(slack=f"{self.url}/slack", pagerduty=f"{self.url}/pagerduty")


def connections(slack: str, pagerduty: str) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_SLACK_ALERTS": json.dumps(
            {"conn_type": "slackwebhook", "host": slack, "password": "local/dev/webhook"}
        ),
        "AIRFLOW_CONN_PAGERDUTY_ALERTS": json.dumps(
            {"conn_type": "pagerduty_events", "host": pagerduty, "password": ROUTING_KEY}
        ),
    }


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    from localdev import alert_sink
    from localdev.processes import free_port

    service = alert_sink.start(free_port(), tmp_path_factory.mktemp("sink") / "alert_sink.log")
    yield Sink(service)
    service.stop()


@pytest.fixture(scope="session")
def probe_airflow(airflow_stack) -> dict[str, str]:
    """Airflow's environment with a metadata database of the probes' own.

    The probes record runs and Dataset events of the real DAGs; in the platform's database they
    would show up in the pipeline tests that read the latest event.
    """
    from include.shopstream.platform.compat import AIRFLOW_3

    if AIRFLOW_3:
        pytest.skip(
            "the probes write run history through Airflow 2's models and run the check with DAG.test in"
            " their own process; on Airflow 3 the check reads that history through the Execution API,"
            " which end-to-end scenario 6 drives on a real scheduler"
        )
    database, warehouse = "airflow_probes", "airflow_probes_warehouse"
    airflow_stack.pg.ensure_database(database)
    airflow_stack.pg.ensure_database(warehouse)  # open incidents and the alert outbox live there
    env = {
        **airflow_stack.airflow_env(),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_stack.pg.url(database, driver="postgresql+psycopg2"),
        "AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE": airflow_stack.pg.url(warehouse),
    }
    airflow_stack.airflow("db", "migrate", env=env)
    return env


def run_probe(probe_airflow: dict, module: str, *args: str, stdin: str = "", env: dict | None = None) -> list[str]:
    """Run ``python -m tests.alerting.<module>`` against the probes' metadata database.

    Returns its output lines; fails the test with the probe's own error when it fails.
    """
    from tests.conftest import PROJECT

    result = subprocess.run(
        [sys.executable, "-m", f"tests.alerting.{module}", *args],
        input=stdin,
        env={**probe_airflow, **(env or {}), "PYTHONPATH": str(PROJECT)},
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.splitlines()
