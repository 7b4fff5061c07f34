"""The Dataset events that triggered a run, read from the task's context (no database session).

A run the scheduler started on Datasets has them in ``triggering_dataset_events``; any other run
(started by hand, by ``airflow dags test`` or by the REST API) has none, and the entry is not
read at all, so ``airflow dags test`` never depends on it.
"""

from __future__ import annotations

from datetime import date, datetime


def triggering_events(context) -> dict[str, list[tuple[datetime, dict]]]:
    """Dataset URI -> [(timestamp, extra), ...] of the events that triggered this run ({} if none did)."""
    from include.shopstream.platform.compat import EVENT_TRIGGERED, TRIGGERING_EVENTS

    if context["dag_run"].run_type != EVENT_TRIGGERED:
        return {}
    return {
        uri: [(event.timestamp, dict(event.extra or {})) for event in events]
        for uri, events in context[TRIGGERING_EVENTS].items()
    }


def newest_event_times(context) -> dict[str, datetime]:
    """Dataset URI -> the timestamp of its newest event among those that triggered this run."""
    return {uri: max(ts for ts, _ in events) for uri, events in triggering_events(context).items() if events}


def business_date_reported(context) -> date:
    """The business date a Dataset-triggered run reports on.

    Producers put ``{"ds": ...}`` on their Dataset events; a consumer reports on the newest
    date among its triggering events, or on its own business date when run by hand.
    """
    from include.shopstream.platform.business_dates import business_date

    dates = [extra["ds"] for events in triggering_events(context).values() for _, extra in events if extra.get("ds")]
    return max(map(date.fromisoformat, dates)) if dates else business_date(context)
