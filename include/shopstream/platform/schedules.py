"""The crons (UTC) of the schedules that more than one module reads.

sales_core_pipeline starts the day's ingest at 02:00; the ingest deadline (``deadlines.py``)
works out from the same cron which data interval a 04:00 deadline is about.
"""

from __future__ import annotations

SALES_CORE = "0 2 * * *"
