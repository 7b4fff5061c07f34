"""quality_results: the results document of data_quality_checks' tasks, its summary, and its alerting.

The check tasks are the real ones, built by ``data_quality_checks`` in a DAG with the results
task; the run's task states are given as the run-state query returns them, and the lake records
what the task writes. A failed check fails the task without a second page.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from include.shopstream.ops import alerting
from include.shopstream.pipelines import quality_results
from include.shopstream.pipelines.quality import CHOOSER, GROUP, data_quality_checks
from include.shopstream.pipelines.quality_results import (
    ChecksFailed,
    alert_unless_checks_failed,
    describe,
    is_check,
    summarize,
    summary_lines,
)
from include.shopstream.platform.outputs import CUSTOMER_FEATURES, DAILY_REPORTS

LOGICAL = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)
RUN_ID = "dataset_triggered__2026-11-24T02:30:00+00:00"


@pytest.fixture(scope="module")
def dag():
    from include.shopstream.platform.compat import DAG

    with DAG("observability_unit", schedule=None, start_date=datetime(2026, 11, 1, tzinfo=UTC)) as dag:
        data_quality_checks() >> quality_results.quality_results()
    return dag


def checks_of(dag) -> list[str]:
    return sorted(t.task_id for t in dag.tasks if is_check(t))


def test_the_checks_are_the_groups_tasks_but_the_chooser(dag):
    checks = checks_of(dag)
    assert len(checks) == 19
    assert all(task_id.startswith(f"{GROUP}.") for task_id in checks)
    assert f"{GROUP}.{CHOOSER}" not in checks and "quality_results" not in checks


def test_each_kind_of_check_names_what_it_looks_at_and_its_checks(dag):
    def described(name):
        return describe(dag.get_task(f"{GROUP}.{name}"))

    assert described("daily_reports_columns") == {
        "on": "gold.daily_reports",
        "checks": [f"{column}.{check}" for column, kinds in DAILY_REPORTS.columns.items() for check in kinds],
    }
    assert described("daily_reports_table") == {
        "on": "gold.daily_reports",
        "checks": ["has_rows", *DAILY_REPORTS.checks],
    }
    assert described("daily_reports_freshness") == {"on": "gold.daily_reports", "checks": ["freshness"]}
    assert described("customer_features_file") == {"on": CUSTOMER_FEATURES.uri, "checks": ["file"]}


def test_every_check_has_an_outcome_and_the_counts_add_up(dag):
    checks = checks_of(dag)
    states = {
        checks[0]: "success",
        checks[1]: "failed",
        checks[2]: "upstream_failed",
        checks[3]: "skipped",
        checks[4]: None,
        checks[5]: "removed",
        f"{GROUP}.{CHOOSER}": "success",
        "quality_results": "running",
        **dict.fromkeys(checks[6:], "success"),
    }
    document = summarize(dag, states)
    assert [r["task"] for r in document["results"]] == checks
    assert [r["outcome"] for r in document["results"][:6]] == [
        "passed",
        "failed",
        "not run",
        "not triggered",
        "not run",
        "removed",
    ]
    assert document["counts"] == {"failed": 1, "not run": 2, "not triggered": 1, "passed": 14, "removed": 1}
    assert list(document["counts"]) == sorted(document["counts"])


def test_a_check_without_a_state_has_not_run(dag):
    document = summarize(dag, {})
    assert document["counts"] == {"not run": 19}


def test_the_summary_heads_with_the_counts_then_one_line_per_check():
    document = {
        "counts": {"failed": 1, "passed": 1},
        "results": [
            {"task": f"{GROUP}.orders_table", "outcome": "failed", "on": "gold.orders", "checks": ["has_rows", "x"]},
            {"task": f"{GROUP}.a_freshness", "outcome": "passed", "on": "", "checks": ["freshness"]},
        ],
    }
    assert summary_lines(document) == [
        "data quality: 2 check tasks: 1 failed, 1 passed",
        f"  failed        gold.orders                  {GROUP}.orders_table: has_rows, x",
        f"  passed        -                            {GROUP}.a_freshness: freshness",
    ]
    assert summary_lines({"counts": {}, "results": []}) == ["data quality: 0 check tasks: no checks"]


# -- the results task ---------------------------------------------------------------------------


class Lake:
    def __init__(self):
        self.objects: dict[str, str] = {}

    def load_string(self, body, key, bucket_name, replace):
        assert (bucket_name, replace) == ("shopstream", True)
        self.objects[key] = body


class TaskInstance:
    def __init__(self):
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


KEY = "quality/results/ds=2026-11-24/20261124T023000.json"


class Run:
    """publish_results as its task runs it, on a run whose tasks are in the states given."""

    def __init__(self, monkeypatch, dag):
        from include.shopstream.platform import lake, run_states

        self.dag, self.lake, self.ti, self.asked = dag, Lake(), TaskInstance(), []
        monkeypatch.setattr(run_states, "task_states", self.task_states)
        monkeypatch.setattr(lake, "lake_hook", lambda: self.lake)

    def task_states(self, dag_id, *, run_ids, context):
        self.asked.append((dag_id, run_ids))
        return {run_id: self.states for run_id in run_ids}

    def publish(self, states: dict) -> dict:
        self.states = states
        context = {"dag": self.dag, "run_id": RUN_ID, "logical_date": LOGICAL, "ti": self.ti}
        return quality_results.publish_results.function(**context)


@pytest.fixture
def run(monkeypatch, dag) -> Run:
    return Run(monkeypatch, dag)


def test_a_run_whose_checks_passed_writes_its_results_and_returns_their_link_and_counts(run, dag):
    states = dict.fromkeys(checks_of(dag), "success")
    assert run.publish(states) == {"results": f"s3://shopstream/{KEY}", "passed": 19}
    assert run.asked == [("observability_unit", [RUN_ID])]
    assert json.loads(run.lake.objects[KEY]) == {**summarize(dag, states), "run_id": RUN_ID}
    assert run.ti.pushed == {}


def test_a_failed_check_fails_the_results_task_naming_it_and_still_publishes_the_link(run, dag):
    from include.shopstream.platform.compat import AirflowFailException

    states = dict.fromkeys(checks_of(dag), "success") | {f"{GROUP}.daily_reports_table": "failed"}
    with pytest.raises(ChecksFailed) as failed:
        run.publish(states)
    assert str(failed.value) == (
        f"1 quality check task(s) failed: {GROUP}.daily_reports_table on gold.daily_reports"
        f" (results: s3://shopstream/{KEY})"
    )
    assert isinstance(failed.value, AirflowFailException), "no retry: the checks have run"
    assert list(run.lake.objects) == [KEY]
    # The link reads the return value, which a failed task has not got: it is pushed instead.
    assert run.ti.pushed == {"return_value": {"results": f"s3://shopstream/{KEY}", "failed": 1, "passed": 18}}


# -- alerting -----------------------------------------------------------------------------------


@pytest.fixture
def alerts(monkeypatch) -> list:
    sent = []
    monkeypatch.setattr(alerting.FailureNotifier, "send", lambda self, context: sent.append(context))
    return sent


def test_the_failed_checks_are_not_paged_again(alerts):
    alert_unless_checks_failed.send({"exception": ChecksFailed("1 quality check task(s) failed")})
    assert alerts == []


def test_any_other_failure_of_the_results_task_alerts_as_usual(alerts):
    context = {"exception": RuntimeError("the lake is down")}
    alert_unless_checks_failed.send(context)
    assert alerts == [context]
    assert isinstance(alert_unless_checks_failed, alerting.FailureNotifier)
