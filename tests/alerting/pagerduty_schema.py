"""PagerDuty's published Events API v2 schema, and the limits its documentation adds.

``pagerduty-events-v2.openapi.json`` is ``reference/events-v2/openapiv3.json`` of the public
PagerDuty/api-schema repository, as of its commit 91a06fb (2026-08-14; the file last changed on
2025-09-24). The OpenAPI document states no lengths; PagerDuty's Events API v2 documentation
does: ``dedup_key`` at most 255 characters, ``payload.summary`` at most 1024.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

DEDUP_KEY_LIMIT = 255
SUMMARY_LIMIT = 1024


@cache
def _validator():
    from openapi_schema_validator import OAS30Validator

    spec = json.loads((Path(__file__).with_name("pagerduty-events-v2.openapi.json")).read_text())
    body = spec["paths"]["/enqueue"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return OAS30Validator({**body, "components": spec["components"]})


def problems(event: dict) -> list[str]:
    """Everything that PagerDuty would reject or cut in ``event`` (empty when it is valid)."""
    found = [f"schema: {error.message} at {list(error.absolute_path)}" for error in _validator().iter_errors(event)]
    key = event.get("dedup_key")
    if key is not None and len(key) > DEDUP_KEY_LIMIT:
        found.append(f"dedup_key has {len(key)} characters (limit {DEDUP_KEY_LIMIT})")
    summary = (event.get("payload") or {}).get("summary")
    if summary is not None and len(summary) > SUMMARY_LIMIT:
        found.append(f"summary has {len(summary)} characters (limit {SUMMARY_LIMIT})")
    if event.get("event_action") == "trigger" and not event.get("payload"):
        found.append("a trigger needs a payload")
    if event.get("event_action") in ("resolve", "acknowledge") and set(event) != {
        "routing_key",
        "event_action",
        "dedup_key",
    }:
        found.append(f"a {event['event_action']} should carry only the key, got {sorted(event)}")
    return found
