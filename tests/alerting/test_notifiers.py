"""Every task callback is a notifier that hands its alerts to the outbox and never raises.

Airflow 3's ``BaseNotifier`` re-raises what ``notify`` raises and Airflow 2's reads the context's
``dag`` before notifying; the platform's notifiers do neither, and a policy's callback stays the
very object the policy names after Airflow deep-copies ``default_args``.
"""

from __future__ import annotations

import copy

from include.shopstream.ops import alerting, deadlines, policies
from include.shopstream.pipelines import quality_results
from include.shopstream.platform.compat import BaseNotifier

POLICIES = (
    policies.SALES_CORE,
    policies.DEADLINE_CHECK,
    policies.ALERT_REDELIVERY,
    policies.INVENTORY,
    policies.ANALYTICS,
    policies.OBSERVABILITY,
)


def callbacks(policy: dict) -> list:
    """The callbacks a policy names, in order."""
    found = []
    for key, value in policy.items():
        if key.endswith("_callback"):
            found.extend(value if isinstance(value, list) else [value])
    return found


def test_every_callback_the_platform_names_is_an_outbox_notifier():
    named = [quality_results.alert_unless_checks_failed, *(c for policy in POLICIES for c in callbacks(policy))]
    assert len(named) >= 8
    assert all(isinstance(callback, BaseNotifier) for callback in named)
    assert all(isinstance(callback, alerting.OutboxNotifier) for callback in named)
    assert {deadlines.check_failed, deadlines.resolve_when_met, alerting.alerts_not_getting_through} <= set(named)


def test_a_deep_copy_of_a_policy_keeps_its_notifiers():
    for policy in POLICIES:
        copied, original = callbacks(copy.deepcopy(policy)), callbacks(policy)
        assert len(copied) == len(original)
        assert all(a is b for a, b in zip(copied, original, strict=True))
