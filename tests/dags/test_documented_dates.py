"""Dates the documentation states, checked against Airflow's own timetable of the DAG.

A manual run (`airflow dags test`, a trigger) of a cron DAG gets the data interval that
``dag.timetable.infer_manual_data_interval`` gives its logical date; the business date is that
interval's start (include/shopstream/platform/business_dates.py).
"""

from __future__ import annotations

import json
import re

import pendulum

from tests.conftest import PROJECT

README = (PROJECT / "README.md").read_text()
FAILURE_HANDLING = (PROJECT / "docs" / "failure-handling.md").read_text()
BUSINESS_DATES = (PROJECT / "include" / "shopstream" / "platform" / "business_dates.py").read_text()


def business_date(scheduled, dag_id: str, logical_date: str) -> str:
    moment = pendulum.parse(logical_date, tz="UTC")
    interval = scheduled[dag_id].timetable.infer_manual_data_interval(run_after=moment)
    return interval.start.date().isoformat()


def test_the_readme_dags_test_example_states_the_business_date_airflow_gives(scheduled):
    (example,) = re.findall(r'ARGS="dags test sales_core_pipeline (\S+)"\s+# business date (\S+)', README)
    logical_date, stated = example
    assert business_date(scheduled, "sales_core_pipeline", logical_date) == stated


def test_the_readme_names_the_logical_date_of_the_23rd(scheduled):
    (logical_date,) = re.findall(r"For business date the 23rd, pass\s+`([^`]+)`", README)
    assert business_date(scheduled, "sales_core_pipeline", logical_date) == "2026-11-23"


def test_the_business_dates_module_states_the_business_dates_airflow_gives(scheduled):
    comment = " ".join(line.lstrip("# ") for line in BUSINESS_DATES.splitlines() if line.startswith("#"))
    midnight = re.search(r"`airflow dags test sales_core_pipeline (\S+)`.*?business date the (\d+)", comment)
    assert midnight, f"business_dates.py states no business date for the README's example: {comment[:600]}"
    assert business_date(scheduled, "sales_core_pipeline", midnight.group(1))[-2:] == midnight.group(2)
    manual = re.search(r"so does a manual run with logical date (\S+?)\.\s", comment)
    assert manual, comment[:600]
    assert business_date(scheduled, "sales_core_pipeline", manual.group(1)) == "2026-11-23"


def test_the_documented_alert_example_agrees_with_itself_and_with_airflow(scheduled):
    from urllib.parse import parse_qs, urlsplit

    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    from include.shopstream.platform.compat import AIRFLOW_3

    section = FAILURE_HANDLING[FAILURE_HANDLING.index("What the sink receives for a failed") :]
    slack = json.loads(section.split("POST /slack/local/dev/webhook\n", 1)[1].split("\n", 1)[0])["text"]
    event = json.loads(section.split("POST /pagerduty/v2/enqueue\n", 1)[1].split("\n```", 1)[0])
    details = event["payload"]["custom_details"]
    logical = pendulum.parse(details["logical_date"])
    assert f"logical date {details['logical_date']}" in slack
    assert f"Log: {details['log_url']}" in slack
    assert event["links"][0]["href"] == details["log_url"]

    run_id = parse_qs(urlsplit(details["log_url"]).query)["dag_run_id"][0]
    run_type = DagRunType(run_id.split("__", 1)[0])
    if AIRFLOW_3:
        expected = DagRun.generate_run_id(run_type=run_type, logical_date=logical, run_after=logical)
    else:
        expected = DagRun.generate_run_id(run_type, logical)
    assert run_id == expected, "a run's id carries its logical date"
    if run_type == DagRunType.MANUAL:
        interval = scheduled[details["dag"]].timetable.infer_manual_data_interval(run_after=logical)
        start = interval.start
    else:  # a scheduled run's logical date is its data interval's start
        start = logical
    assert pendulum.parse(details["business_date"]) == start
    assert event["dedup_key"] == f"shopstream/{details['dag']}/{details['task']}/{details['business_date']}"
