"""The business date of a run: the day its data interval starts, computed here and nowhere else.

Alerts, the ingest deadline, the Dataset events' ``ds`` and the lake partitions (as a template,
``outputs.BUSINESS_DATE``) all read it from the same moment, the run's data interval start.
"""

from __future__ import annotations

from datetime import date, datetime

# The context entry (and template variable) the business date is read from.
INTERVAL_START = "data_interval_start"

# The scheduled run that starts at 02:00 on the 24th (logical date 2026-11-23T02:00) covers the
# 23rd; so does a manual run with logical date 2026-11-24T02:00. A manual run at midnight,
# `airflow dags test sales_core_pipeline 2026-11-24`, gets the interval ending at the latest 02:00
# before it (22nd 02:00 to 23rd 02:00): business date the 22nd.


def interval_start(context) -> datetime:
    """The moment a run's business date is the day of: its data interval start. A run Airflow 3
    started on Assets has no data interval (nor logical date); the moment it became due stands in
    (``compat.run_moment``)."""
    start = context.get(INTERVAL_START)
    if start is not None:
        return start
    from include.shopstream.platform.compat import run_moment

    return run_moment(context)


def business_date_of(moment: datetime) -> date:
    """The business date of a data interval that starts at ``moment``."""
    return moment.date()


def business_date(context) -> date:
    """The business date of the run whose task context is ``context``."""
    return business_date_of(interval_start(context))
