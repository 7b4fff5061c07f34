"""
### ingest_deadline

The on-call promise of the critical path: **the 02:00 ingest is done by 04:00 UTC**. Every day
at 04:00 this DAG checks `sales_core_pipeline`'s runs for the business date that ingest is about.
If `orders_etl` has not finished (still running, failed, or never started) it sends a critical
Slack alert and opens one PagerDuty incident for that business date; the ingest's success
resolves it. Checking here, not through Airflow's task SLA, is explained in the README
(Failure handling) and in `include/shopstream/deadlines.py`.
"""

from airflow.decorators import dag
from airflow.timetables.trigger import CronTriggerTimetable

from include.shopstream import deadlines, policies


@dag(
    dag_id="ingest_deadline",
    # A trigger timetable runs at 04:00 itself, not a day later at the end of an interval.
    schedule=CronTriggerTimetable(deadlines.INGEST.check_schedule, timezone="UTC"),
    start_date=policies.START_DATE,
    catchup=False,
    # No max_active_runs=1: in Airflow 2 a finished manual run leaves the next slot unset until
    # the file is parsed again, so a check started by hand could hold back the 04:00 one.
    default_args=policies.DEADLINE_CHECK,
    tags=["shopstream", "sales", "critical-path", "deadline"],
    doc_md=__doc__,
)
def ingest_deadline():
    deadlines.check_deadline(deadlines.INGEST.name)


ingest_deadline()
