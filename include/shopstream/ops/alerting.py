"""Alerts to Slack (connection ``slack_alerts``) and PagerDuty (``pagerduty_alerts``).

The task callbacks are notifiers (Airflow's ``BaseNotifier``; ``OutboxNotifier`` below) whose
``notify`` hands each alert to the alert outbox (``outbox.py``), which sends it through the Slack
and PagerDuty providers' hooks (``alert_transport.py``). Every callback is safe: whatever the
exception it reports, it delivers an alert; an alert that cannot be delivered is logged with its
cause, kept in the outbox and sent again until it is accepted, and never hides or replaces the
task's own failure. Delivery is bounded in time (``DELIVERY_BOUND_SECONDS``), so a slow Slack or
PagerDuty never holds a task slot for minutes.

The providers' own notifiers (``SlackWebhookNotifier``, ``PagerdutyNotifier``) send at once with
no outbox: an alert their receiver does not take is only logged (Airflow 2) or raised (Airflow
3), never kept and sent again. As the transport they would only wrap the hooks used here, and the
PagerDuty one builds the provider's stock hook: 60 s a try, a 429 retried without limit, and
PagerDuty's own endpoint only.

PagerDuty incidents carry a stable dedup key (one per DAG, task and business date), so retries
and re-runs never open a second incident, and a later successful try resolves it. Open
incidents are rows of ``ops.open_incident`` in the warehouse, beside the outbox. Every event
keeps the Events API v2 limits (``tests/alerting/`` validates them against PagerDuty's schema).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from include.shopstream.platform.compat import BaseNotifier, run_moment
from include.shopstream.platform.names import PAGERDUTY_CONN_ID, SLACK_CONN_ID

log = logging.getLogger(__name__)

ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":white_check_mark:"}
SOURCE = "shopstream-airflow"

# PagerDuty Events API v2: dedup_key at most 255 characters, summary at most 1024.
KEY_LIMIT = 200
SUMMARY_LIMIT = 1024
ERROR_LIMIT = 500
DETAIL_LIMIT = 2000

# The time bound of one alert: Slack (two tries) and PagerDuty (two tries), each try with this
# connect/read timeout, plus their short pauses between tries. tests/alerting measures it.
HTTP_TIMEOUT_SECONDS = 5
DELIVERY_BOUND_SECONDS = 4 * HTTP_TIMEOUT_SECONDS + 10


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_text(error: object) -> str | None:
    """One readable line for any exception: its type and the first non-empty line of its text.

    Exceptions with an empty message (a bare ``assert``, ``TimeoutError()``), messages whose first
    line is blank, and exceptions whose ``__str__`` itself raises all still give a line.
    """
    if error is None:
        return None
    if isinstance(error, str):  # Airflow passes a string for some failures (e.g. zombies)
        name, text = "", error
    else:
        name = type(error).__name__
        try:
            text = str(error)
        except Exception:  # a broken __str__ must not cost the alert
            log.exception("could not read the text of a %s", name)
            text = ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = f"{name}: {first}" if name and first else (first or name or "(an empty error message)")
    return clip(line, ERROR_LIMIT)


def _field(read, fallback: Any) -> Any:
    try:
        return read()
    except Exception:
        log.exception("could not read an alert field; using %r", fallback)
        return fallback


def describe(context) -> dict[str, Any]:
    """What every alert says: DAG, task, dates, try number, log URL and the error.

    Never raises: a field that cannot be read is replaced, so the alert still goes out.
    """
    from include.shopstream.platform.business_dates import interval_start

    ti = context.get("ti") or context.get("task_instance")
    return {
        "dag": _field(lambda: ti.dag_id, "unknown-dag"),
        "task": _field(lambda: ti.task_id, "unknown-task"),
        "logical_date": _field(lambda: run_moment(context).isoformat(), ""),
        # The business date the run is about, as the moment its data interval starts: retries,
        # clears and a manual re-run of the same interval share it, so they share one incident;
        # a DAG that runs several times a day gets one per run; and the outbox finds the runs
        # that resolve it by that moment (run_states.succeeded_in).
        "business_date": _field(lambda: interval_start(context).isoformat(), ""),
        "try_number": _field(lambda: ti.try_number, 0),
        "max_tries": _field(lambda: ti.max_tries + 1, 0),
        "log_url": _field(lambda: ti.log_url, f"{_base_url()}/home"),
        "error": error_text(context.get("exception")),
    }


def incident_key(*parts: str) -> str:
    """A PagerDuty dedup key: readable, stable for the same parts, never over ``KEY_LIMIT``.

    Long parts (DAG and task ids may each be 250 characters) are cut and the whole is told
    apart by a hash of the full key.
    """
    key = "/".join(("shopstream", *parts))
    if len(key) <= KEY_LIMIT:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: KEY_LIMIT - len(digest) - 1]}~{digest}"


def dedup_key(details: dict[str, Any]) -> str:
    """One PagerDuty incident per task and business date."""
    return incident_key(details["dag"], details["task"], details["business_date"])


# -- Slack ----------------------------------------------------------------------------------


def slack(severity: str, headline: str, details: dict[str, Any], *, queue: bool = True) -> bool:
    """Post one message through the Slack provider's webhook hook.

    Returns whether Slack took it now; never raises. One it did not take stays in the outbox
    (unless ``queue`` is false) and is sent again, marked late.
    """
    from include.shopstream.ops import outbox

    text = slack_text(severity, headline, details)
    # The same alert sent again (a retried check) replaces its queued copy; another try's is another.
    identity = "\x1f".join(
        str(part) for part in (severity, headline, details.get("dag"), details.get("task"), details.get("logical_date"))
    )
    key = incident_key("slack", f"{details.get('try_number')}", hashlib.sha256(identity.encode()).hexdigest()[:32])
    what = f"deliver the {severity} Slack alert for {details['dag']}.{details['task']}"
    return outbox.deliver("slack", key, {"text": text}, what, queue=queue)


def slack_text(severity: str, headline: str, details: dict[str, Any]) -> str:
    """What one Slack alert says: severity, headline, where, the error and the log."""
    where = f"DAG `{details['dag']}` | task `{details['task']}` | logical date {details['logical_date']}"
    if details.get("max_tries"):  # a deadline is no task try
        where += f" | try {details['try_number']} of {details['max_tries']}"
    lines = [f"{ICONS.get(severity, '')} *{severity.upper()}*: {clip(headline, 300)}", where]
    if details.get("error"):
        lines.append(f"Error: {details['error']}")
    lines.append(f"Log: {details['log_url']}")
    return "\n".join(lines)


def post_slack(text: str) -> None:
    """Post ``text`` through the Slack provider's webhook hook; raises when Slack does not take it.

    Each try waits at most ``HTTP_TIMEOUT_SECONDS``; a 5xx, a timeout or a dropped connection is
    tried once more, a 4xx never.
    """
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    from include.shopstream.ops.alert_transport import RetryOnceOnServerOrNetworkError

    SlackWebhookHook(
        slack_webhook_conn_id=SLACK_CONN_ID,
        timeout=HTTP_TIMEOUT_SECONDS,
        retry_handlers=[RetryOnceOnServerOrNetworkError()],
    ).send(text=text)


# -- PagerDuty ------------------------------------------------------------------------------


def pagerduty_hook():
    """The PagerDuty provider's Events API hook for ``pagerduty_alerts``, bounded in time.

    The connection's host, when set, is the Events API base URL (``events_endpoint``); each request
    waits at most ``HTTP_TIMEOUT_SECONDS`` and is tried at most twice (``alert_transport``).
    """
    from include.shopstream.ops.alert_transport import BoundedPagerdutyEventsHook

    return BoundedPagerdutyEventsHook(PAGERDUTY_CONN_ID)


def events_endpoint(host: str | None) -> str | None:
    """The Events API base URL a connection's host names (``None``: PagerDuty's own).

    The host may name the service root (``http://alert-sink:8082/pagerduty``); the client adds
    ``/v2/enqueue``.
    """
    if not host:
        return None
    if "://" not in host:
        raise ValueError(f"the PagerDuty connection's host must be a URL with a scheme, got {host!r}")
    return host.rstrip("/")


def pagerduty_event(action: str, details: dict[str, Any], summary: str, key: str | None = None) -> dict[str, Any]:
    """The keyword arguments of one Events API v2 event, within the API's limits.

    A resolve carries only what PagerDuty reads from it (the key); a trigger carries the
    summary, critical severity, a link to the log and the details.
    """
    key = key or dedup_key(details)
    event: dict[str, Any] = {
        "action": action,
        "dedup_key": key,
        "summary": clip(summary, SUMMARY_LIMIT),
        "severity": "critical",
        "source": SOURCE,
    }
    if action == "trigger":
        event["custom_details"] = {
            name: clip(value, DETAIL_LIMIT) if isinstance(value, str) else value for name, value in details.items()
        }
        event["links"] = [{"href": details["log_url"], "text": "Airflow log"}]
    return event


def pagerduty(
    action: str, details: dict[str, Any], summary: str = "", key: str | None = None, *, queue: bool = True
) -> bool:
    """Trigger or resolve an incident through the PagerDuty provider's Events API hook.

    Returns whether PagerDuty took the event now; never raises. One it did not take stays in the
    outbox (unless ``queue`` is false) and is sent again; a later event for the same key replaces
    it. A trigger sent or kept opens the incident, a resolve sent or kept closes it.
    """
    from include.shopstream.ops import outbox

    summary = summary or f"{details['dag']}.{details['task']} failed: {details.get('error') or 'no error text'}"
    event = pagerduty_event(action, details, summary, key)
    what = f"{action} the PagerDuty incident {event['dedup_key']}"
    return outbox.deliver("pagerduty", event["dedup_key"], event, what, queue=queue, details=details)


def send_pagerduty_event(event: dict[str, Any]) -> None:
    """Send one event (``pagerduty_event``'s arguments); raises when PagerDuty does not take it."""
    pagerduty_hook().send_event(**event)


# -- callbacks ------------------------------------------------------------------------------


class OutboxNotifier(BaseNotifier):
    """A task callback whose ``notify`` hands its alerts to the outbox (``slack``, ``pagerduty``).

    It never raises: whatever goes wrong while it alerts is logged as ``failing`` (by the logger of
    the subclass's module) and never hides or replaces the task's own state. Subclasses say what
    to send in ``send``.
    """

    failing = "the alert callback failed"

    def notify(self, context) -> None:
        try:
            self.send(context)
        except Exception:  # a bug here must not hide the task's failure, nor fail a success
            logging.getLogger(type(self).__module__).exception(self.failing)

    def send(self, context) -> None:
        raise NotImplementedError

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render (no template fields): skipping it spares a Jinja environment per alert,
        and an alert never depends on the context holding its ``dag``, which Airflow 2 reads here.
        """

    def __deepcopy__(self, memo) -> OutboxNotifier:
        # Airflow deep-copies default_args; a notifier keeps no state, so a task's callback stays
        # the very one its policy names.
        return self


class FailureNotifier(OutboxNotifier):
    """A task failed for good: a critical Slack alert and, when ``page``, a PagerDuty incident."""

    failing = "the failure alert callback failed"

    def __init__(self, *, page: bool = True) -> None:
        super().__init__()
        self.page = page

    def send(self, context) -> None:
        details = describe(context)
        slack("critical", f"{details['dag']}.{details['task']} failed for good", details)
        if self.page and pagerduty("trigger", details):
            remember_incident(dedup_key(details), details["log_url"])


class RetryWarningNotifier(OutboxNotifier):
    """A Slack warning for each of the first ``warnings`` failed tries, silence after that."""

    failing = "the retry alert callback failed"

    def __init__(self, *, warnings: int) -> None:
        super().__init__()
        self.warnings = warnings

    def send(self, context) -> None:
        details = describe(context)
        if details["try_number"] <= self.warnings:
            slack("warning", f"{details['dag']}.{details['task']} failed, retrying", details)


class ResolveNotifier(OutboxNotifier):
    """A task succeeded: resolve the incident that an earlier failure of it opened, if any."""

    failing = "the resolve callback failed"

    def send(self, context) -> None:
        details = describe(context)
        resolve(dedup_key(details), details, f"{details['dag']}.{details['task']} succeeded")


class RedeliveryFailureNotifier(OutboxNotifier):
    """The alert_redelivery DAG failed: page, and tell Slack once, both straight, never queued.

    Queuing them would feed the outbox that is failing; PagerDuty folds the repeated triggers
    of every failed run into one incident (``outbox.OUTBOX_INCIDENT``), which the next run that
    finds nothing stuck resolves.
    """

    failing = "the redelivery failure callback failed"

    def send(self, context) -> None:
        from include.shopstream.ops import outbox

        details = describe(context)
        headline = f"{details['dag']}.{details['task']} failed: alerts that were not accepted are not being sent again"
        if not incident_is_open(outbox.OUTBOX_INCIDENT):
            slack("critical", headline, details, queue=False)
        pagerduty("trigger", details, summary=headline, key=outbox.OUTBOX_INCIDENT, queue=False)


# The callbacks policies.py names.
critical_failure = FailureNotifier()
critical_failure_slack_only = FailureNotifier(page=False)  # medium criticality: no page
warn_on_early_retries = RetryWarningNotifier(warnings=3)
resolve_incident = ResolveNotifier()
alerts_not_getting_through = RedeliveryFailureNotifier()


def resolve(key: str, details: dict[str, Any], summary: str) -> None:
    """Resolve the incident ``key`` if this platform opened it and it is still open."""
    if incident_is_open(key):
        pagerduty("resolve", details, summary=summary, key=key)


# Open incidents are rows of the warehouse's ops.open_incident (outbox.py), so that a success
# resolves exactly the incidents that failures opened, across retries and re-runs, and the
# housekeeping can resolve those whose success no callback saw.


def remember_incident(key: str, note: str) -> None:
    from include.shopstream.ops import outbox

    try:
        outbox.remember(key, note)
    except Exception:  # bookkeeping must not mask the task's own state
        log.exception("could not record the open incident %s", key)


def incident_is_open(key: str) -> bool:
    from include.shopstream.ops import outbox

    try:
        return outbox.is_open(key)
    except Exception:  # bookkeeping must not mask the task's own state
        log.exception("could not look up the incident %s", key)
        return False


def forget_incident(key: str) -> None:
    from include.shopstream.ops import outbox

    try:
        outbox.forget(key)
    except Exception:  # bookkeeping must not mask the task's own state
        log.exception("could not forget the incident %s", key)


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("webserver", "base_url", fallback="http://localhost:8080").rstrip("/")
