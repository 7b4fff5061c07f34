"""The platform's failure policy: retries and backoff for every DAG, in one place.

Read with the README's architecture table: criticality decides the policy.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

OWNER = "shopstream-data"

# Test seam: the end-to-end tests run real retries with delays scaled down (e.g. 0.01).
# Production and `make run` leave it unset.
_DELAY_SCALE = float(os.environ.get("SHOPSTREAM_RETRY_DELAY_SCALE", "1"))


def minutes(value: float) -> timedelta:
    """A retry delay of ``value`` minutes (times the test seam's scale)."""
    return timedelta(minutes=value * _DELAY_SCALE)


START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")

# sales_core_pipeline (critical path): 3 retries, exponential backoff from 5 minutes.
SALES_CORE = {
    "owner": OWNER,
    "retries": 3,
    "retry_delay": minutes(5),
    "retry_exponential_backoff": True,
    "max_retry_delay": minutes(30),
}

# inventory_mgmt_pipeline: the inventory API times out ~10% of the time; 5 retries, 10 minutes apart.
INVENTORY = {
    "owner": OWNER,
    "retries": 5,
    "retry_delay": minutes(10),
}

# analytics_and_reporting_pipeline (daily_reports is HIGH): as the critical path, fewer retries.
ANALYTICS = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": minutes(5),
    "retry_exponential_backoff": True,
    "max_retry_delay": minutes(20),
}

# observability_pipeline (HIGH): checks are cheap; retry quickly, a real breach fails for good.
OBSERVABILITY = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": minutes(2),
}
