"""How one alert reaches Slack or PagerDuty: the providers' hooks, each try bounded in time.

``alerting.post_slack`` and ``alerting.send_pagerduty_event`` use these; the outbox calls those.
A module of its own because the pagerduty and slack_sdk libraries take a second or more to import,
and ``alerting`` is imported by every DAG file (through ``policies``): only a callback or the
redelivery that sends something imports this.
"""

from __future__ import annotations

from http.client import HTTPException
from typing import Any
from urllib.error import URLError

import pagerduty
from airflow.providers.pagerduty.hooks.pagerduty_events import PagerdutyEventsHook, prepare_event_data
from slack_sdk.http_retry import RetryHandler

from include.shopstream.ops.alerting import HTTP_TIMEOUT_SECONDS, events_endpoint


class RetryOnceOnServerOrNetworkError(RetryHandler):
    """Retry a Slack post once on a 5xx answer, a timeout or a dropped connection; never on 4xx."""

    def __init__(self) -> None:
        super().__init__(max_retry_count=1)

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        if response is not None:
            return response.status_code >= 500
        return isinstance(error, URLError | TimeoutError | ConnectionError | HTTPException)


class BoundedEventsClient(pagerduty.EventsApiV2Client):
    """The pagerduty library's Events API v2 client: the connection's endpoint, each request bounded.

    Each request waits at most ``HTTP_TIMEOUT_SECONDS`` and is tried at most twice (on 429, 5xx
    and network errors); the library's own client would retry a 429 without limit.
    """

    # The library's one way to set the base URL, this property's setter, refuses the local sink's plain http.
    url = property(lambda self: self._endpoint, lambda self, value: setattr(self, "_endpoint", value))

    def __init__(self, routing_key: str, endpoint: str | None) -> None:
        super().__init__(routing_key, base_url=endpoint)
        self.timeout = HTTP_TIMEOUT_SECONDS
        self.retry = dict.fromkeys((429, 500, 502, 503, 504), 1)
        self.max_network_attempts = 1
        self.sleep_timer = 0.5


class BoundedPagerdutyEventsHook(PagerdutyEventsHook):
    """The PagerDuty provider's Events API hook, sending through ``BoundedEventsClient``.

    The provider's own ``send_event`` builds a client with a 60 s timeout, unlimited retries on
    429 and PagerDuty's endpoint hard-wired; this one keeps the provider's connection handling and
    event shape (``prepare_event_data``) and builds the client from the connection instead: its
    host, when set, is the Events API base URL (the local alert sink; plain http is accepted
    there). Production connections name no host and reach PagerDuty itself.
    """

    def __init__(self, conn_id: str) -> None:
        super().__init__(pagerduty_events_conn_id=conn_id)
        self.endpoint = events_endpoint(self.get_connection(conn_id).host)

    def send_event(self, **event: Any) -> str:
        data = prepare_event_data(**event)
        if data["action"] != "trigger":  # PagerDuty reads only the key of a resolve
            data = {"action": data["action"], "dedup_key": data["dedup_key"]}
        return BoundedEventsClient(self.integration_key, self.endpoint).send_event(**data)
