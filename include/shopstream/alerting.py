"""Alerts to Slack (connection ``slack_alerts``) and PagerDuty (``pagerduty_alerts``).

Every callback here is safe: an alert that cannot be delivered is logged and never hides or
replaces the task's own failure. PagerDuty incidents carry a stable dedup key (one per DAG,
task and logical date), so retries and re-runs never open a second incident, and a later
successful try resolves it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

SLACK_CONN_ID = "slack_alerts"
PAGERDUTY_CONN_ID = "pagerduty_alerts"
ICONS = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":white_check_mark:"}


def describe(context) -> dict[str, Any]:
    """What every alert says: DAG, task, logical date, try number, log URL and the error."""
    ti = context["ti"]
    error = context.get("exception")
    return {
        "dag": ti.dag_id,
        "task": ti.task_id,
        "logical_date": context["logical_date"].isoformat(),
        "try_number": ti.try_number,
        "max_tries": ti.max_tries + 1,
        "log_url": ti.log_url,
        "error": str(error).splitlines()[0][:500] if error else None,
    }


def dedup_key(details: dict[str, Any]) -> str:
    """One PagerDuty incident per task and logical date."""
    return f"shopstream/{details['dag']}/{details['task']}/{details['logical_date']}"


def slack(severity: str, headline: str, details: dict[str, Any]) -> None:
    """Post one message through the Slack provider's webhook hook; never raise."""
    lines = [
        f"{ICONS.get(severity, '')} *{severity.upper()}*: {headline}",
        f"DAG `{details['dag']}` | task `{details['task']}` | logical date {details['logical_date']}"
        f" | try {details['try_number']} of {details['max_tries']}",
    ]
    if details.get("error"):
        lines.append(f"Error: {details['error']}")
    lines.append(f"Log: {details['log_url']}")
    try:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(slack_webhook_conn_id=SLACK_CONN_ID).send(text="\n".join(lines))
    except Exception:  # an undeliverable alert must not mask the task's own state
        log.exception("could not deliver the %s Slack alert for %s.%s", severity, details["dag"], details["task"])


def pagerduty(action: str, details: dict[str, Any], summary: str = "") -> bool:
    """Trigger or resolve the task's incident through the PagerDuty Events API v2.

    Returns whether PagerDuty took the event; never raises.
    """
    try:
        from airflow.providers.pagerduty.hooks.pagerduty_events import prepare_event_data

        event = prepare_event_data(
            summary=summary or f"{details['dag']}.{details['task']} failed",
            severity="critical",
            source="shopstream-airflow",
            action=action,
            dedup_key=dedup_key(details),
            custom_details=details,
            links=[{"href": details["log_url"], "text": "Airflow log"}],
        )
        _events_client().send_event(**event)
    except Exception:  # an undeliverable alert must not mask the task's own state
        log.exception("could not %s the PagerDuty incident %s", action, dedup_key(details))
        return False
    return True


def _events_client():
    """The PagerDuty provider's client, keyed by the connection's integration key.

    Seam for local development and tests: when the connection names a host (the local alert
    sink), events go there, over plain HTTP if need be. Production connections name no host
    and reach PagerDuty's own https endpoint exactly as the provider would.
    """
    import pagerduty
    from airflow.hooks.base import BaseHook

    conn = BaseHook.get_connection(PAGERDUTY_CONN_ID)
    client = pagerduty.EventsApiV2Client(conn.password)
    if conn.host:
        client._url = conn.host.rstrip("/")  # the public setter insists on https://
    return client


# -- callbacks ------------------------------------------------------------------------------


def critical_failure(context) -> None:
    """A task failed for good: a critical Slack alert and a PagerDuty incident."""
    details = describe(context)
    slack("critical", f"{details['dag']}.{details['task']} failed for good", details)
    if pagerduty("trigger", details):
        _remember_incident(details)


def critical_failure_slack_only(context) -> None:
    """A task failed for good (medium criticality): a critical Slack alert, no page."""
    details = describe(context)
    slack("critical", f"{details['dag']}.{details['task']} failed for good", details)


def warn_on_early_retries(context, warnings: int = 3) -> None:
    """A Slack warning for each of the first ``warnings`` failed tries, silence after that."""
    details = describe(context)
    if details["try_number"] <= warnings:
        slack("warning", f"{details['dag']}.{details['task']} failed, retrying", details)


def resolve_incident(context) -> None:
    """A task succeeded: resolve the incident that an earlier failure of it opened, if any."""
    details = describe(context)
    if _incident_is_open(details) and pagerduty(
        "resolve", details, summary=f"{details['dag']}.{details['task']} succeeded"
    ):
        _forget_incident(details)


# Open incidents are remembered as Airflow Variables (visible in the UI under Admin), so that
# a success resolves exactly the incidents that failures opened, across retries and re-runs.
INCIDENT_PREFIX = "shopstream_open_incident::"


def _remember_incident(details: dict[str, Any]) -> None:
    from airflow.models import Variable

    try:
        Variable.set(INCIDENT_PREFIX + dedup_key(details), details["log_url"])
    except Exception:  # bookkeeping must not mask the task's own state
        log.exception("could not record the open incident %s", dedup_key(details))


def _incident_is_open(details: dict[str, Any]) -> bool:
    from airflow.models import Variable

    try:
        return Variable.get(INCIDENT_PREFIX + dedup_key(details), default_var=None) is not None
    except Exception:  # bookkeeping must not mask the task's own state
        log.exception("could not look up the incident %s", dedup_key(details))
        return False


def _forget_incident(details: dict[str, Any]) -> None:
    from airflow.models import Variable

    try:
        Variable.delete(INCIDENT_PREFIX + dedup_key(details))
    except Exception:  # bookkeeping must not mask the task's own state
        log.exception("could not forget the incident %s", dedup_key(details))


def sla_missed(dag, task_list, blocking_task_list, slas, blocking_tis) -> None:
    """The 02:00 ingest had not finished by 04:00: tell Slack and page."""
    late = sorted({sla.task_id for sla in slas})
    logical = min((sla.execution_date for sla in slas), default=None)
    details = {
        "dag": dag.dag_id,
        "task": ", ".join(late),
        "logical_date": logical.isoformat() if logical else "",
        "try_number": 0,
        "max_tries": 0,
        "log_url": f"{_base_url()}/dags/{dag.dag_id}/grid",
        "error": f"not finished within its SLA: {', '.join(late)}",
    }
    slack("critical", f"{dag.dag_id}: the ingest missed its SLA", details)
    pagerduty("trigger", {**details, "task": "sla:" + details["task"]}, summary=f"{dag.dag_id} missed its SLA")


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("webserver", "base_url", fallback="http://localhost:8080").rstrip("/")
