"""The inventory simulator fails about the configured share of calls, reproducibly."""

from __future__ import annotations

import collections
import urllib.error
import urllib.request

import pytest

from localdev import inventory_api
from localdev.processes import free_port


def test_the_failure_share_matches_the_setting_for_a_fixed_seed():
    plan = inventory_api.FaultPlan(0.1, seed=2026)
    outcomes = collections.Counter(plan.draw() for _ in range(20_000))
    failed = outcomes["error"] + outcomes["timeout"]
    # Binomial(20000, 0.1): sd = 42 calls, so +/-200 is far outside chance for a correct plan.
    assert 1_800 <= failed <= 2_200
    assert abs(outcomes["error"] - outcomes["timeout"]) <= 200, "failures split between errors and stalls"


def test_a_fixed_seed_gives_the_same_sequence():
    plan_a, plan_b = inventory_api.FaultPlan(0.3, seed=7), inventory_api.FaultPlan(0.3, seed=7)
    assert [plan_a.draw() for _ in range(500)] == [plan_b.draw() for _ in range(500)]


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_the_extremes_never_or_always_fail(rate):
    plan = inventory_api.FaultPlan(rate, seed=1)
    outcomes = {plan.draw() for _ in range(1_000)}
    assert outcomes == ({"ok"} if rate == 0.0 else {"error", "timeout"})


def test_a_rate_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        inventory_api.FaultPlan(1.5)


@pytest.mark.services
def test_over_http_a_third_of_calls_fail_when_asked(tmp_path):
    service = inventory_api.start(
        free_port(), tmp_path / "inv.log", failure_rate=1 / 3, seed=11, skus=10, stall_seconds=2.0
    )
    results = collections.Counter()
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"{service.url}/v1/stock", timeout=0.5) as response:
                    results[response.status] += 1
            except urllib.error.HTTPError as err:
                results[err.code] += 1
            except TimeoutError:
                results["timeout"] += 1
    finally:
        service.stop()
    failed = results[503] + results["timeout"]
    assert results[200] + failed == 150
    # Binomial(150, 1/3): sd = 5.8 calls.
    assert 30 <= failed <= 70
    assert results[503] > 0 and results["timeout"] > 0
