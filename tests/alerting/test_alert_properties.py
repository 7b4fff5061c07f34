"""Hostile alert inputs, generated: any exception text and any ids Airflow allows.

Whatever the text and ids, an alert's error is one line within its limit, its PagerDuty event
validates against PagerDuty's schema, and its incident key is within the limit, the same for the
same task and business date and different for different ones.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.shopstream.ops import alerting
from tests.alerting import pagerduty_schema

pytestmark = pytest.mark.devtools

# Airflow's ids: letters, digits, dashes, dots and underscores, at most 250 characters.
IDS = st.text(alphabet=string.ascii_letters + string.digits + "-._", min_size=1, max_size=250)
TEXT = st.text(max_size=20_000)  # any unicode, newlines, blanks, control characters
EXAMPLES = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def details(dag_id: str, task_id: str, day: str = "2026-11-25T02:00:00+00:00", error: str | None = None) -> dict:
    return {
        "dag": dag_id,
        "task": task_id,
        "logical_date": day,
        "business_date": day,
        "try_number": 4,
        "max_tries": 4,
        "log_url": f"http://localhost:8080/dags/{dag_id}/grid",
        "error": error,
    }


@EXAMPLES
@given(text=TEXT, kind=st.sampled_from([ValueError, RuntimeError, TimeoutError, KeyError, str]))
def test_any_exception_text_gives_one_line_within_the_limit(text, kind):
    line = alerting.error_text(kind(text))
    assert line
    assert "\n" not in line and "\r" not in line
    assert len(line) <= alerting.ERROR_LIMIT


@EXAMPLES
@given(dag_id=IDS, task_id=IDS, text=TEXT)
def test_any_ids_and_text_give_a_valid_pagerduty_event(dag_id, task_id, text):
    info = details(dag_id, task_id, error=alerting.error_text(RuntimeError(text)))
    summary = f"{dag_id}.{task_id} failed: {info['error']}"
    for action in ("trigger", "resolve"):
        event = alerting.pagerduty_event(action, info, summary)
        sent = {"routing_key": "k", "event_action": event.pop("action"), "dedup_key": event.pop("dedup_key")}
        if action == "trigger":
            sent["payload"] = {k: event[k] for k in ("summary", "severity", "source", "custom_details")}
            sent["links"] = event["links"]
        assert pagerduty_schema.problems(sent) == []


@EXAMPLES
@given(a=st.tuples(IDS, IDS), b=st.tuples(IDS, IDS))
def test_keys_are_bounded_stable_and_tell_tasks_apart(a, b):
    key_a = alerting.dedup_key(details(*a))
    assert len(key_a) <= alerting.KEY_LIMIT
    assert key_a == alerting.dedup_key(details(*a))
    assert (key_a == alerting.dedup_key(details(*b))) == (a == b)
    assert key_a != alerting.dedup_key(details(*a, day="2026-11-26T02:00:00+00:00"))
