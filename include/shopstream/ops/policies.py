"""The platform's failure policy: retries and backoff for every DAG, in one place.

Read with the architecture table in docs/architecture.md: criticality decides the policy.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

from include.shopstream.ops import alerting, deadlines

OWNER = "shopstream-data"

# Test seam: the end-to-end tests run real retries with delays scaled down (e.g. 0.01).
# Production and `make run` leave it unset.
_DELAY_SCALE = float(os.environ.get("SHOPSTREAM_RETRY_DELAY_SCALE", "1"))


def minutes(value: float) -> timedelta:
    """A retry delay of ``value`` minutes (times the test seam's scale)."""
    return timedelta(minutes=value * _DELAY_SCALE)


START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")

# sales_core_pipeline (critical path): 3 retries, exponential backoff from 5 minutes; after the
# last retry a critical Slack alert and a PagerDuty incident, resolved by a later success.
SALES_CORE = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": minutes(5),
    "retry_exponential_backoff": True,
    "max_retry_delay": minutes(30),
    "on_failure_callback": alerting.critical_failure,
    # A success resolves the task's own incident and, for the ingest's last task, the 04:00 one.
    "on_success_callback": [alerting.resolve_incident, deadlines.resolve_when_met],
}

# ingest_deadline: the 04:00 check itself. It must not be lost to a passing fault: a check that
# cannot read the metadata database, or whose alert a channel did not accept, retries every
# minute (sending only what was not accepted). Its final failure reports under the deadline's
# own incident key, so a failed check never opens a second incident that nothing resolves.
DEADLINE_CHECK = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": minutes(1),
    "execution_timeout": timedelta(minutes=5),
    "priority_weight": 100,
    "on_failure_callback": deadlines.check_failed,
}

# alert_redelivery: the outbox's housekeeping every 5 minutes. A receiver that is down is its
# normal business, not a failure; a failure (the warehouse unreachable) retries soon, then pages
# and tells Slack straight, never through the outbox it keeps (alerting.alerts_not_getting_through).
ALERT_REDELIVERY = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": minutes(0.5),
    "execution_timeout": timedelta(minutes=4),
    "priority_weight": 100,
    "on_failure_callback": alerting.alerts_not_getting_through,
}

# inventory_mgmt_pipeline: the inventory API times out ~10% of the time; 5 retries, 10 minutes apart.
# A Slack warning on each of the first 3 failed tries, critical only when it fails for good.
INVENTORY = {
    "owner": OWNER,
    "retries": 5,
    "retry_delay": minutes(10),
    "on_retry_callback": alerting.warn_on_early_retries,
    "on_failure_callback": alerting.critical_failure_slack_only,
}

# analytics_and_reporting_pipeline (daily_reports is HIGH): as the critical path, fewer retries.
ANALYTICS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": minutes(5),
    "retry_exponential_backoff": True,
    "max_retry_delay": minutes(20),
    "on_failure_callback": alerting.critical_failure,
    "on_success_callback": alerting.resolve_incident,
}

# observability_pipeline (HIGH): checks are cheap; retry quickly, a real breach fails for good.
OBSERVABILITY = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": minutes(2),
    "on_failure_callback": alerting.critical_failure,
    "on_success_callback": alerting.resolve_incident,
}
