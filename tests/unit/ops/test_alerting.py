"""What an alert says and where it goes (ops/alerting.py), without sending anything.

The texts, keys and PagerDuty events are checked against PagerDuty's published schema and the
limits its documentation adds (tests/alerting/pagerduty_schema.py), hostile inputs generated with
hypothesis; the callbacks run against a real TaskInstance with the outbox replaced by a recorder.
tests/alerting/ sends the same alerts over HTTP to a real sink.
"""

from __future__ import annotations

import copy
import logging
import string
from types import SimpleNamespace

import pendulum
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.shopstream.ops import alerting, outbox
from tests.alerting import pagerduty_schema
from tests.alerting.test_alert_delivery import failure_context

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


def as_sent(event: dict) -> dict:
    """``pagerduty_event``'s arguments as the Events API receives them."""
    event = dict(event)
    sent = {"routing_key": "k", "event_action": event.pop("action"), "dedup_key": event.pop("dedup_key")}
    if sent["event_action"] == "trigger":
        sent["payload"] = {k: event[k] for k in ("summary", "severity", "source", "custom_details")}
        sent["links"] = event["links"]
    return sent


# -- texts and keys -------------------------------------------------------------------------------


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
        assert pagerduty_schema.problems(as_sent(alerting.pagerduty_event(action, info, summary))) == []


@EXAMPLES
@given(a=st.tuples(IDS, IDS), b=st.tuples(IDS, IDS))
def test_keys_are_bounded_stable_and_tell_tasks_apart(a, b):
    key_a = alerting.dedup_key(details(*a))
    assert len(key_a) <= alerting.KEY_LIMIT
    assert key_a == alerting.dedup_key(details(*a))
    assert (key_a == alerting.dedup_key(details(*b))) == (a == b)
    assert key_a != alerting.dedup_key(details(*a, day="2026-11-26T02:00:00+00:00"))


def test_keys_are_stable_across_retries_and_reruns_and_tell_long_ids_apart():
    first = alerting.describe(failure_context(None, try_number=1))
    last = alerting.describe(failure_context(None, try_number=4))
    # A manual re-run of the same business date has another logical date and the same interval.
    rerun = alerting.describe(failure_context(None, logical_date=pendulum.datetime(2026, 11, 26, 9, 13, tz="UTC")))
    assert alerting.dedup_key(first) == alerting.dedup_key(last) == alerting.dedup_key(rerun)
    assert (
        alerting.dedup_key(first)
        == "shopstream/sales_core_pipeline/orders_etl.extract_orders/2026-11-25T02:00:00+00:00"
    )
    long_a = alerting.describe(failure_context(None, dag_id="d" * 250, task_id="a" * 250))
    long_b = alerting.describe(failure_context(None, dag_id="d" * 250, task_id="a" * 249 + "b"))
    assert alerting.dedup_key(long_a) != alerting.dedup_key(long_b)
    assert alerting.dedup_key(long_a) == alerting.dedup_key(dict(long_a))
    assert alerting.dedup_key(long_a).startswith("shopstream/" + "d" * 100)


def test_a_run_started_by_assets_without_a_logical_date_is_described_by_when_it_was_due():
    """Airflow 3 gives a run it started on Assets no logical date, ds or data interval."""
    due = pendulum.datetime(2026, 11, 26, 9, 13, tz="UTC")
    context = failure_context(None, dag_id="observability_pipeline", task_id="quality_results")
    for key in ("logical_date", "data_interval_start", "data_interval_end"):
        context.pop(key, None)
    context["dag_run"] = SimpleNamespace(run_after=due)
    described = alerting.describe(context)
    assert (described["logical_date"], described["business_date"]) == (due.isoformat(), due.isoformat())


def test_the_deadline_summary_and_time_are_readable():
    from datetime import UTC, datetime

    moment = datetime(2026, 11, 26, 4, tzinfo=UTC)
    assert alerting.clip("é" * 2000, alerting.SUMMARY_LIMIT).endswith("…")
    assert len(alerting.clip("é" * 2000, alerting.SUMMARY_LIMIT)) == alerting.SUMMARY_LIMIT
    assert alerting.error_text(TimeoutError(f"at {moment}")) == f"TimeoutError: at {moment}"


@EXAMPLES
@given(text=TEXT, limit=st.integers(min_value=1, max_value=3000))
def test_a_clipped_text_keeps_its_start_and_is_marked_only_when_cut(text, limit):
    clipped = alerting.clip(text, limit)
    if len(text) <= limit:
        assert clipped == text
    else:
        assert len(clipped) == limit and clipped == text[: limit - 1] + "…"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (None, None),
        ("", "(an empty error message)"),
        ("  \n\t\n", "(an empty error message)"),
        ("Detected zombie job\nsecond line", "Detected zombie job"),
        (ValueError("  \n  "), "ValueError"),
        (KeyError("order_id"), "KeyError: 'order_id'"),
        (RuntimeError("  padded  \nnext"), "RuntimeError: padded"),
        (RuntimeError("x" * 600), "RuntimeError: " + "x" * 485 + "…"),
    ],
    ids=["none", "empty string", "blank string", "string", "blank message", "key", "padded", "long"],
)
def test_an_error_is_told_as_its_type_and_first_line(error, line):
    assert alerting.error_text(error) == line


def test_a_key_of_exactly_the_limit_is_kept_and_one_longer_is_cut_and_hashed():
    fits = alerting.incident_key("d" * (alerting.KEY_LIMIT - len("shopstream/")))
    assert fits == "shopstream/" + "d" * (alerting.KEY_LIMIT - len("shopstream/"))
    longer = alerting.incident_key("d" * (alerting.KEY_LIMIT - len("shopstream/") + 1))
    assert len(longer) == alerting.KEY_LIMIT
    head, digest = longer.rsplit("~", 1)
    assert len(digest) == 16 and set(digest) <= set(string.hexdigits.lower())
    assert ("shopstream/" + "d" * 300).startswith(head)
    assert alerting.incident_key("a", "b", "2026-11-25") == "shopstream/a/b/2026-11-25"


def test_the_limits_are_within_pagerdutys():
    assert alerting.KEY_LIMIT <= pagerduty_schema.DEDUP_KEY_LIMIT
    assert alerting.SUMMARY_LIMIT <= pagerduty_schema.SUMMARY_LIMIT


# -- what an alert says ---------------------------------------------------------------------------


def test_a_task_failure_is_described_from_its_task_instance():
    described = alerting.describe(failure_context(RuntimeError("boom\ntrace"), try_number=2))
    assert described == {
        "dag": "sales_core_pipeline",
        "task": "orders_etl.extract_orders",
        "logical_date": "2026-11-25T02:00:00+00:00",
        "business_date": "2026-11-25T02:00:00+00:00",
        "try_number": 2,
        "max_tries": 4,
        "log_url": described["log_url"],
        "error": "RuntimeError: boom",
    }
    assert described["log_url"].startswith("http://localhost:8080/")


def test_fields_that_cannot_be_read_are_replaced_and_the_alert_still_goes(caplog):
    with caplog.at_level(logging.ERROR, logger=alerting.__name__):
        described = alerting.describe({"task_instance": object(), "exception": TimeoutError()})
    assert described == {
        "dag": "unknown-dag",
        "task": "unknown-task",
        "logical_date": "",
        "business_date": "",
        "try_number": 0,
        "max_tries": 0,
        "log_url": "http://localhost:8080/home",
        "error": "TimeoutError",
    }
    assert sum("could not read an alert field" in r.getMessage() for r in caplog.records) == 7


def test_a_slack_alert_says_the_severity_where_the_error_and_the_log():
    text = alerting.slack_text("critical", "h" * 400, details("sales_core_pipeline", "t", error="ValueError: x"))
    assert text.split("\n") == [
        ":rotating_light: *CRITICAL*: " + "h" * 299 + "…",
        "DAG `sales_core_pipeline` | task `t` | logical date 2026-11-25T02:00:00+00:00 | try 4 of 4",
        "Error: ValueError: x",
        "Log: http://localhost:8080/dags/sales_core_pipeline/grid",
    ]


def test_a_slack_alert_without_a_try_or_an_error_says_neither():
    text = alerting.slack_text("warning", "late", {**details("d", "t"), "try_number": 0, "max_tries": 0})
    assert text.split("\n")[0] == ":warning: *WARNING*: late"
    assert "| try" not in text and "Error:" not in text
    assert alerting.slack_text("other", "x", details("d", "t")).startswith(" *OTHER*: x")


def test_a_trigger_carries_the_details_within_the_limits_and_a_resolve_only_the_key():
    info = {**details("d", "t", error="e" * 3000), "try_number": 4, "note": None}
    trigger = alerting.pagerduty_event("trigger", info, "s" * 2000)
    assert trigger["dedup_key"] == "shopstream/d/t/2026-11-25T02:00:00+00:00"
    assert (trigger["severity"], trigger["source"]) == ("critical", "shopstream-airflow")
    assert len(trigger["summary"]) == alerting.SUMMARY_LIMIT
    assert len(trigger["custom_details"]["error"]) == alerting.DETAIL_LIMIT
    assert (trigger["custom_details"]["try_number"], trigger["custom_details"]["note"]) == (4, None)
    assert trigger["links"] == [{"href": info["log_url"], "text": "Airflow log"}]
    assert pagerduty_schema.problems(as_sent(trigger)) == []
    resolve = alerting.pagerduty_event("resolve", info, "done", key="shopstream/other")
    assert "custom_details" not in resolve and "links" not in resolve
    assert as_sent(resolve) == {"routing_key": "k", "event_action": "resolve", "dedup_key": "shopstream/other"}


def test_the_events_endpoint_is_the_connections_host_as_a_url():
    assert alerting.events_endpoint(None) is None and alerting.events_endpoint("") is None
    assert alerting.events_endpoint("https://events.example.test//") == "https://events.example.test"
    with pytest.raises(ValueError, match=r"must be a URL with a scheme, got 'alert-sink:8082'"):
        alerting.events_endpoint("alert-sink:8082")


# -- handing alerts to the outbox -----------------------------------------------------------------


class Handed(list):
    """What reaches ``outbox.deliver``, which takes everything unless ``accept`` is false."""

    accept = True

    def deliver(self, channel, key, body, what, *, queue=True, details=None) -> bool:
        self.append({"channel": channel, "key": key, "body": body, "what": what, "queue": queue, "details": details})
        return self.accept


@pytest.fixture
def handed(monkeypatch) -> Handed:
    calls = Handed()
    monkeypatch.setattr(outbox, "deliver", calls.deliver)
    return calls


def test_a_slack_alert_sent_again_replaces_its_queued_copy_and_another_try_does_not(handed):
    info = details("sales_core_pipeline", "t")
    assert alerting.slack("critical", "failed", info) is True
    alerting.slack("critical", "failed", info)
    alerting.slack("critical", "failed", {**info, "try_number": 5})
    alerting.slack("warning", "failed", info, queue=False)
    first, again, other_try, warning = handed
    assert first["channel"] == "slack" and first["body"] == {"text": alerting.slack_text("critical", "failed", info)}
    assert first["key"] == again["key"] != other_try["key"] != warning["key"]
    assert first["key"].startswith("shopstream/slack/4/") and len(first["key"]) <= alerting.KEY_LIMIT
    assert first["what"] == "deliver the critical Slack alert for sales_core_pipeline.t"
    assert (first["queue"], warning["queue"]) == (True, False)


def test_a_page_says_what_failed_under_the_tasks_key(handed):
    info = details("d", "t", error="ValueError: x")
    handed.accept = False
    assert alerting.pagerduty("trigger", info) is False
    alerting.pagerduty("trigger", {**info, "error": None})
    alerting.pagerduty("trigger", info, summary="custom", key="shopstream/own", queue=False)
    first, no_error, own = handed
    assert (first["channel"], first["key"], first["details"]) == ("pagerduty", alerting.dedup_key(info), info)
    assert first["body"] == alerting.pagerduty_event("trigger", info, "d.t failed: ValueError: x")
    assert first["what"] == f"trigger the PagerDuty incident {alerting.dedup_key(info)}"
    assert no_error["body"]["summary"] == "d.t failed: no error text"
    assert (own["key"], own["body"]["summary"], own["queue"]) == ("shopstream/own", "custom", False)


# -- the callbacks --------------------------------------------------------------------------------


class Recorder:
    """``alerting``'s senders and incident book, recorded; each send accepted unless refused."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.open: set[str] = set()
        self.accept = True

    def slack(self, severity, headline, details, *, queue=True) -> bool:
        self.calls.append(("slack", severity, headline, queue))
        return self.accept

    def pagerduty(self, action, details, summary="", key=None, *, queue=True) -> bool:
        self.calls.append(("pagerduty", action, key or alerting.dedup_key(details), queue))
        return self.accept

    def remember(self, key, note) -> None:
        self.calls.append(("remember", key))


@pytest.fixture
def sent(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(alerting, "slack", recorder.slack)
    monkeypatch.setattr(alerting, "pagerduty", recorder.pagerduty)
    monkeypatch.setattr(alerting, "remember_incident", recorder.remember)
    monkeypatch.setattr(alerting, "incident_is_open", lambda key: key in recorder.open)
    return recorder


KEY = "shopstream/sales_core_pipeline/orders_etl.extract_orders/2026-11-25T02:00:00+00:00"
HEADLINE = "sales_core_pipeline.orders_etl.extract_orders"


def test_a_final_failure_alerts_slack_and_pages_and_records_the_incident_it_opened(sent):
    alerting.critical_failure(failure_context(RuntimeError("boom")))
    assert sent.calls == [
        ("slack", "critical", f"{HEADLINE} failed for good", True),
        ("pagerduty", "trigger", KEY, True),
        ("remember", KEY),
    ]


def test_a_page_that_was_neither_sent_nor_kept_records_no_incident(sent):
    sent.accept = False
    alerting.critical_failure(failure_context(RuntimeError("boom")))
    assert [call[0] for call in sent.calls] == ["slack", "pagerduty"]


def test_a_medium_criticality_failure_alerts_slack_only(sent):
    alerting.critical_failure_slack_only(failure_context(RuntimeError("boom")))
    assert sent.calls == [("slack", "critical", f"{HEADLINE} failed for good", True)]


def test_the_first_three_failed_tries_warn_and_later_ones_are_silent(sent):
    for try_number in (1, 2, 3, 4, 5):
        alerting.warn_on_early_retries(failure_context(RuntimeError("timeout"), try_number=try_number))
    assert sent.calls == [("slack", "warning", f"{HEADLINE} failed, retrying", True)] * 3


def test_a_success_resolves_only_an_incident_that_is_open(monkeypatch, sent):
    resolved = []
    monkeypatch.setattr(alerting, "pagerduty", lambda action, details, summary="", key=None: resolved.append(key))
    alerting.resolve_incident(failure_context(None))
    assert resolved == []
    sent.open.add(KEY)
    alerting.resolve_incident(failure_context(None))
    assert resolved == [KEY]


def test_the_redeliverys_own_failure_pages_straight_and_tells_slack_once(sent):
    context = failure_context(RuntimeError("warehouse gone"), dag_id="alert_redelivery", task_id="redeliver_alerts")
    alerting.alerts_not_getting_through(context)
    sent.open.add(outbox.OUTBOX_INCIDENT)
    alerting.alerts_not_getting_through(context)
    headline = "alert_redelivery.redeliver_alerts failed: alerts that were not accepted are not being sent again"
    page = ("pagerduty", "trigger", "shopstream/alert_redelivery/alerts-not-getting-through", False)
    assert sent.calls == [("slack", "critical", headline, False), page, page]


class Broken(alerting.OutboxNotifier):
    failing = "the broken callback failed"

    def send(self, context) -> None:
        raise RuntimeError("a bug while alerting")


def test_a_notifier_that_breaks_logs_and_returns(caplog):
    with caplog.at_level(logging.ERROR):
        Broken()({"exception": RuntimeError("the task's own failure")})  # no "dag", no "ti"
    (record,) = [r for r in caplog.records if r.getMessage() == "the broken callback failed"]
    assert record.name == __name__ and record.exc_info


def test_a_notifier_is_its_own_deep_copy():
    notifier = alerting.FailureNotifier(page=False)
    assert copy.deepcopy(notifier) is notifier
    assert copy.deepcopy({"on_failure_callback": [notifier]})["on_failure_callback"][0] is notifier


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: alerting.remember_incident("k", "note"), "remember"),
        (lambda: alerting.incident_is_open("k"), "is_open"),
        (lambda: alerting.forget_incident("k"), "forget"),
    ],
    ids=["remember", "is open", "forget"],
)
def test_an_unreachable_incident_book_is_logged_and_never_raised(monkeypatch, caplog, call, name):
    def unreachable(*args):
        raise ConnectionError("the warehouse was unreachable")

    monkeypatch.setattr(outbox, name, unreachable)
    with caplog.at_level(logging.ERROR, logger=alerting.__name__):
        answer = call()
    assert answer in (None, False)
    (record,) = caplog.records
    assert record.getMessage().endswith(" incident k") and record.exc_info


def test_a_finished_task_has_the_time_to_deliver_its_alerts():
    """Airflow ends a task's process ``[core] task_success_overtime`` seconds after its state is
    final (20 s by default; on Airflow 3 whatever the state); the callbacks deliver in that time: a
    failure its page, a success up to two resolves, each bounded by DELIVERY_BOUND_SECONDS (30 s).
    The platform's setting (make run and both images) leaves them that time and a margin."""
    from localdev.airflow_env import PLATFORM_AIRFLOW_CONFIG

    overtime = float(PLATFORM_AIRFLOW_CONFIG["AIRFLOW__CORE__TASK_SUCCESS_OVERTIME"])
    assert overtime >= 2 * alerting.DELIVERY_BOUND_SECONDS + 10
