"""The alert outbox: an alert that Slack or PagerDuty does not accept is kept and sent again.

``deliver`` sends an alert at once; when the receiver does not take it, the alert lands in
``ops.alert_outbox`` in the warehouse, and the ``alert_redelivery`` DAG (``housekeeping``) sends
it again every 5 minutes until it is accepted. Why the warehouse: task code reaches it through
its connection on Airflow 2 and on Airflow 3, where tasks no longer reach the metadata database.

Order: every alert for a channel and key (a PagerDuty dedup key, or a Slack message's own key)
first cancels the pending one for that key, under a per-key lock held until its own outcome
is recorded, and a redelivery sends an entry under the same lock only while it is still
pending. So the latest alert for a key wins: a queued trigger is never sent after a later
resolve of the same incident, and a retried alert replaces its queued copy.

Open incidents are rows of ``ops.open_incident``: a trigger (sent or queued) opens one, a
resolve (sent or queued) closes it. The housekeeping also closes those whose task has since
succeeded without its success callback running (marked success in the UI, a Dataset-triggered
DAG re-run by hand): ``succeeded_since`` asks ``run_states``, which answers from the Task SDK on
Airflow 3 and from the metadata database on Airflow 2. Finished rows age out after
``KEEP_FINISHED``; pending ones never do.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from include.shopstream.ops import alerting
from include.shopstream.platform.names import WAREHOUSE_CONN_ID, sql

log = logging.getLogger(__name__)

OUTBOX = "ops.alert_outbox"
INCIDENTS = "ops.open_incident"
PENDING = "delivered_at IS NULL AND superseded_at IS NULL"

# An unreachable warehouse must not hold a failure callback past its delivery bound.
CONNECT_TIMEOUT_SECONDS = 5
# A redelivery holds a key's lock while it sends one alert (at most one channel's share of
# alerting.DELIVERY_BOUND_SECONDS); a callback for the same key waits that long, no longer.
LOCK_TIMEOUT_MS = 20_000
STATEMENT_TIMEOUT_MS = 25_000

STUCK_AFTER = timedelta(days=1)
KEEP_FINISHED = timedelta(days=14)
# One housekeeping run sends for at most this long, and stops trying a channel after this many
# failures in a row: a receiver that is down costs one run seconds, not a timeout per entry.
RUN_BUDGET_SECONDS = 120
FAILURES_BEFORE_PAUSE = 3

# The incident that says alerts are not getting through: an entry stuck for a day, or the
# housekeeping itself failing. Never queued: it must not feed the outbox it reports on.
OUTBOX_DAG = "alert_redelivery"
OUTBOX_TASK = "redeliver_alerts"
OUTBOX_INCIDENT = alerting.incident_key(OUTBOX_DAG, "alerts-not-getting-through")


def now() -> datetime:
    return datetime.now(UTC)


# -- the warehouse ---------------------------------------------------------------------------


def connect():
    """A psycopg2 connection to the warehouse, bounded in time, with the outbox's tables.

    After a failed attempt, this process does not try again for ``RECONNECT_AFTER_SECONDS``: a
    callback sends two alerts and looks up an incident, and each would wait out the timeout.
    """
    import psycopg2

    from include.shopstream.platform.compat import BaseHook

    global _unreachable_until
    if time.monotonic() < _unreachable_until:
        raise ConnectionError("the warehouse was unreachable moments ago; not trying again yet")
    conn_info = BaseHook.get_connection(WAREHOUSE_CONN_ID)
    try:
        conn = _connect(psycopg2, conn_info)
    except psycopg2.OperationalError:
        _unreachable_until = time.monotonic() + RECONNECT_AFTER_SECONDS
        raise
    where = (conn_info.host, conn_info.port, conn_info.schema)
    if where not in _tables_ready:
        try:
            with conn, conn.cursor() as cur:
                # CREATE INDEX IF NOT EXISTS locks the table before it looks: skip it when all is there.
                cur.execute(
                    "SELECT to_regclass('ops.open_incident'), to_regclass('ops.alert_outbox_one_pending_per_key')"
                )
                if None in cur.fetchone():
                    cur.execute(sql("alert_outbox.sql"))
        except Exception:
            conn.close()
            raise
        _tables_ready.add(where)
    return conn


def _connect(psycopg2, conn_info):
    ssl = {k: v for k, v in conn_info.extra_dejson.items() if k in ("sslmode", "sslrootcert", "sslcert", "sslkey")}
    return psycopg2.connect(
        host=conn_info.host,
        port=conn_info.port or 5432,
        user=conn_info.login,
        password=conn_info.password,
        dbname=conn_info.schema,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}",
        application_name="shopstream-alert-outbox",
        **ssl,
    )


# The warehouses whose outbox tables this process has made sure of, and until when (monotonic)
# it does not try a warehouse that could not be reached.
_tables_ready: set[tuple] = set()
_unreachable_until = 0.0
RECONNECT_AFTER_SECONDS = 60


def _lock(cur, channel: str, key: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{channel}:{key}",))


def _entry_summary(channel: str, body: dict[str, Any]) -> str:
    return json.dumps({"channel": channel, "body": body}, default=str)


# -- sending ----------------------------------------------------------------------------------


def _send(channel: str, body: dict[str, Any], what: str) -> str | None:
    """Send one alert; ``None`` when the receiver took it, else the error (logged with its cause)."""
    try:
        if channel == "slack":
            alerting.post_slack(body["text"])
        else:
            alerting.send_pagerduty_event(body)
    except Exception as error:  # an undeliverable alert must not mask the task's own state
        log.exception("could not %s", what)
        return alerting.error_text(error)
    return None


def deliver(
    channel: str,
    key: str,
    body: dict[str, Any],
    what: str,
    *,
    queue: bool = True,
    details: dict[str, Any] | None = None,
) -> bool:
    """Send an alert now; unless the receiver takes it, keep it in the outbox (``queue``).

    ``body`` is a Slack message (``{"text": ...}``) or the keyword arguments of a PagerDuty
    event; a PagerDuty trigger that went out or was queued opens ``key``'s incident (``details``
    say which task it is about), a resolve closes it. Returns whether the receiver took it now.
    Never raises; an alert that can be neither sent nor queued is written to the log whole.
    """
    moment = now()
    conn = None
    try:
        conn = connect()
        with conn.cursor() as cur:
            _lock(cur, channel, key)
            cur.execute(
                f"UPDATE {OUTBOX} SET superseded_at = %s WHERE channel = %s AND dedup_key = %s AND {PENDING}",
                (moment, channel, key),
            )
    except Exception:  # the alert still goes out; only its safety net is missing
        log.exception("the alert outbox is unreachable; sending without it")
        if conn is not None:
            conn.close()
        conn = None
    error = _send(channel, body, what)
    if conn is None:
        if error is not None:
            log.error(
                "this alert was neither delivered nor queued, only this log has it: %s", _entry_summary(channel, body)
            )
        return error is None
    try:
        with conn, conn.cursor() as cur:
            kept = error is None
            if error is not None and queue:
                cur.execute(
                    f"INSERT INTO {OUTBOX} (channel, dedup_key, action, body, created_at, last_attempt_at, last_error)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (channel, key, body.get("action", "post"), json.dumps(body), moment, moment, error),
                )
                entry = cur.fetchone()[0]
                kept = True
                log.warning("kept as outbox entry %s; the alert_redelivery DAG sends it again every 5 minutes", entry)
            elif error is not None:
                log.error("this alert is not queued, only this log has it: %s", _entry_summary(channel, body))
            if channel == "pagerduty" and kept:
                _record_incident(cur, body, details or {}, moment)
    except Exception:
        log.exception("could not record the alert in the outbox: %s", _entry_summary(channel, body))
    finally:
        conn.close()
    return error is None


def _record_incident(cur, event: dict[str, Any], details: dict[str, Any], moment: datetime) -> None:
    if event["action"] == "trigger":
        cur.execute(
            f"INSERT INTO {INCIDENTS} (dedup_key, dag_id, task_id, business_date, opened_at, note)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO UPDATE SET dag_id = EXCLUDED.dag_id,"
            " task_id = EXCLUDED.task_id, business_date = EXCLUDED.business_date, note = EXCLUDED.note,"
            f" resolved_at = NULL, opened_at = CASE WHEN {INCIDENTS}.resolved_at IS NULL"
            f" THEN {INCIDENTS}.opened_at ELSE EXCLUDED.opened_at END",
            (
                event["dedup_key"],
                details.get("dag"),
                details.get("task"),
                details.get("business_date") or None,
                moment,
                details.get("log_url"),
            ),
        )
    elif event["action"] == "resolve":
        cur.execute(
            f"UPDATE {INCIDENTS} SET resolved_at = %s WHERE dedup_key = %s AND resolved_at IS NULL",
            (moment, event["dedup_key"]),
        )


# -- open incidents ---------------------------------------------------------------------------


def remember(key: str, note: str) -> None:
    """Record ``key`` as open (a trigger normally does it itself; this keeps ``note`` too)."""
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {INCIDENTS} (dedup_key, opened_at, note) VALUES (%s, %s, %s)"
                " ON CONFLICT (dedup_key) DO UPDATE SET note = EXCLUDED.note, resolved_at = NULL",
                (key, now(), note),
            )
    finally:
        conn.close()


def is_open(key: str) -> bool:
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {INCIDENTS} WHERE dedup_key = %s AND resolved_at IS NULL", (key,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def forget(key: str) -> None:
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"UPDATE {INCIDENTS} SET resolved_at = %s WHERE dedup_key = %s AND resolved_at IS NULL", (now(), key)
            )
    finally:
        conn.close()


@dataclass(frozen=True)
class Incident:
    key: str
    dag_id: str
    task_id: str
    business_date: str
    opened_at: datetime


def succeeded_since(incidents: list[Incident]) -> dict[str, str]:
    """The incidents whose task has succeeded since: ``{key: the run it succeeded in}``.

    A task succeeded for an incident when it succeeded in a run of the same data interval
    (a retry, a clear, a manual re-run of the date, or marked success in the UI, which no success
    callback sees), or, in a Dataset-triggered DAG, whose intervals are those of its events, in
    any run that ended after the incident was opened. ``run_states.succeeded_in`` answers it
    without a metadata-database session in task code on Airflow 3 (by logical date only, see
    there).
    """
    from include.shopstream.platform import run_states

    found: dict[str, str] = {}
    for incident in incidents:
        run_id = run_states.succeeded_in(
            incident.dag_id, incident.task_id, incident.business_date, ended_after=incident.opened_at
        )
        if run_id is not None:
            found[incident.key] = run_id
    return found


# -- housekeeping (the alert_redelivery DAG) ---------------------------------------------------


def _late(channel: str, body: dict[str, Any], created_at: datetime, moment: datetime) -> dict[str, Any]:
    """The alert as sent late: Slack says when it was meant to go, PagerDuty carries the time."""
    created_at = created_at.astimezone(UTC)  # the session's time zone is the server's choice
    if channel == "slack":
        late = f":hourglass: *LATE*: meant for {created_at:%Y-%m-%d %H:%M:%S} UTC, {_age(moment - created_at)} ago"
        return {**body, "text": f"{late}\n{body['text']}"}
    if body.get("action") == "trigger":
        return {**body, "custom_details": {**body.get("custom_details", {}), "first_sent_at": created_at.isoformat()}}
    return body


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    return " ".join(f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n) or "under a minute"


def redeliver(budget_seconds: float = RUN_BUDGET_SECONDS) -> dict[str, int]:
    """Send the pending alerts again, least recently tried first; record each attempt."""
    started = time.monotonic()
    conn = connect()
    counts: Counter[str] = Counter()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"SELECT id, channel, dedup_key FROM {OUTBOX} WHERE {PENDING} ORDER BY last_attempt_at, id")
            pending = cur.fetchall()
        failures: Counter[str] = Counter()
        for entry, channel, key in pending:
            if failures[channel] >= FAILURES_BEFORE_PAUSE or time.monotonic() - started > budget_seconds:
                counts["not tried"] += 1
                continue
            with conn, conn.cursor() as cur:
                _lock(cur, channel, key)
                cur.execute(f"SELECT body, created_at, attempts FROM {OUTBOX} WHERE id = %s AND {PENDING}", (entry,))
                row = cur.fetchone()
                if row is None:  # a later alert for the key replaced it, or another run sent it
                    counts["replaced"] += 1
                    continue
                body, created_at, attempts = row
                moment = now()
                what = f"redeliver outbox entry {entry} ({channel} {key}, attempt {attempts + 1})"
                error = _send(channel, _late(channel, body, created_at, moment), what)
                cur.execute(
                    f"UPDATE {OUTBOX} SET attempts = attempts + 1, last_attempt_at = %s, last_error = %s,"
                    " delivered_at = %s WHERE id = %s",
                    (moment, error, None if error else moment, entry),
                )
            counts["failed" if error else "delivered"] += 1
            failures[channel] = failures[channel] + 1 if error else 0
    finally:
        conn.close()
    log.info("redelivery: %s", dict(counts) or "nothing pending")
    return dict(counts)


def report_stuck() -> list[int]:
    """Report the entries pending for over ``STUCK_AFTER``: in the log every run, once to people.

    The report goes straight to Slack and PagerDuty (one incident, ``OUTBOX_INCIDENT``), never
    through the outbox; it is sent again each run until one of them takes it. Nothing is dropped.
    Once nothing is stuck, the incident is resolved. Returns the stuck entries' ids.
    """
    moment = now()
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT id, channel, dedup_key, created_at, attempts, last_error, reported_at FROM {OUTBOX}"
                f" WHERE {PENDING} AND created_at <= %s ORDER BY id",
                (moment - STUCK_AFTER,),
            )
            stuck = cur.fetchall()
        for entry, channel, key, created_at, attempts, error, _ in stuck:
            log.error(
                "outbox entry %s (%s, %s) not accepted since %s UTC after %s attempts; last error: %s",
                entry, channel, key, f"{created_at.astimezone(UTC):%Y-%m-%d %H:%M}", attempts, error,
            )  # fmt: skip
        unreported = [row for row in stuck if row[6] is None]
        if unreported:
            channels = sorted({row[1] for row in unreported})
            headline = (
                f"{len(unreported)} alert(s) to {' and '.join(channels)} not accepted for over"
                f" {_age(STUCK_AFTER)}; still retried every 5 minutes (ops.alert_outbox, ids"
                f" {', '.join(str(row[0]) for row in unreported[:20])})"
            )
            details = _outbox_details(moment, error=unreported[-1][5])
            told = alerting.slack("critical", headline, details, queue=False)
            told = alerting.pagerduty("trigger", details, summary=headline, key=OUTBOX_INCIDENT, queue=False) or told
            if told:
                with conn, conn.cursor() as cur:
                    cur.execute(
                        f"UPDATE {OUTBOX} SET reported_at = %s WHERE id = ANY(%s)", (moment, [r[0] for r in unreported])
                    )
        elif not stuck and alerting.incident_is_open(OUTBOX_INCIDENT):
            alerting.resolve(OUTBOX_INCIDENT, _outbox_details(moment), "alerts are getting through again")
        return [row[0] for row in stuck]
    finally:
        conn.close()


def _outbox_details(moment: datetime, error: str | None = None) -> dict[str, Any]:
    return {
        "dag": OUTBOX_DAG,
        "task": OUTBOX_TASK,
        "logical_date": moment.isoformat(),
        "business_date": "",
        "try_number": 0,
        "max_tries": 0,
        "log_url": f"{alerting._base_url()}/dags/{OUTBOX_DAG}/grid",
        "error": error,
    }


def reconcile() -> list[str]:
    """Resolve the open incidents whose task has since succeeded; return their keys."""
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                f"SELECT dedup_key, dag_id, task_id, business_date, opened_at FROM {INCIDENTS}"
                " WHERE resolved_at IS NULL AND dag_id IS NOT NULL AND task_id IS NOT NULL AND business_date <> ''"
            )
            # Only a failed task's own incident (its key names the task and interval); the 04:00
            # deadline's incidents follow the deadline's rules (deadlines.py), the outbox's its own.
            incidents = [
                incident
                for incident in (Incident(*row) for row in cur.fetchall())
                if incident.key == alerting.incident_key(incident.dag_id, incident.task_id, incident.business_date)
            ]
    finally:
        conn.close()
    done = succeeded_since(incidents) if incidents else {}
    for incident in incidents:
        if incident.key in done:
            details = {"dag": incident.dag_id, "task": incident.task_id, "business_date": incident.business_date}
            summary = f"{incident.dag_id}.{incident.task_id} succeeded in {done[incident.key]}"
            log.info("resolving %s: %s", incident.key, summary)
            alerting.resolve(incident.key, details, summary)
    return sorted(done)


def prune() -> dict[str, int]:
    """Delete delivered or replaced alerts and resolved incidents older than ``KEEP_FINISHED``."""
    cutoff = now() - KEEP_FINISHED
    conn = connect()
    try:
        with conn, conn.cursor() as cur:
            cur.execute(f"DELETE FROM {OUTBOX} WHERE delivered_at < %s OR superseded_at < %s", (cutoff, cutoff))
            alerts = cur.rowcount
            cur.execute(f"DELETE FROM {INCIDENTS} WHERE resolved_at < %s", (cutoff,))
            return {"alerts": alerts, "incidents": cur.rowcount}
    finally:
        conn.close()


def housekeeping() -> dict[str, Any]:
    """One run of the alert_redelivery DAG: redeliver, report what is stuck, reconcile, prune."""
    result = {"redelivered": redeliver(), "stuck": report_stuck(), "resolved": reconcile(), "pruned": prune()}
    log.info("alert housekeeping: %s", result)
    return result


def redeliver_alerts_task():
    """The alert_redelivery DAG's one task (a factory: the decorator needs Airflow at import)."""
    from include.shopstream.platform.compat import task

    @task(task_id=OUTBOX_TASK)
    def redeliver_alerts() -> dict[str, Any]:
        """Send queued alerts again, report those stuck for a day, resolve incidents whose task succeeded."""
        return housekeeping()

    return redeliver_alerts()
