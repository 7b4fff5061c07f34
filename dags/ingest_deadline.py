"""
### ingest_deadline

The on-call promise of the critical path: **the 02:00 ingest is done by 04:00 UTC**. Every day
at 04:00 this DAG judges `sales_core_pipeline`'s runs for the business date that ingest is about,
and every earlier deadline since the last successful check (at most three days back), by
whether `orders_etl.announce_orders` succeeded by the due time:

- done by 04:00: nothing is sent;
- done after 04:00: a Slack warning that says when, and by how much it missed; no page;
- not done (still running, failed, or never started): a critical Slack alert and one PagerDuty
  incident for that business date; the ingest's success resolves it;
- the sales DAG had no run before that 04:00 (the platform did not exist yet): nothing is sent.

A check triggered by hand judges the date its logical date names, and pages even for a date
before the platform's first run. Each check task returns, and logs, one line per date judged.
Why a DAG and not Airflow's task SLA is explained in the README (Failure handling) and in
`include/shopstream/deadlines.py`.
"""

from airflow.decorators import dag
from airflow.timetables.trigger import CronTriggerTimetable

from include.shopstream import deadlines, policies


@dag(
    dag_id="ingest_deadline",
    # A trigger timetable runs at 04:00 itself, not a day later at the end of an interval.
    schedule=CronTriggerTimetable(deadlines.INGEST.check_schedule, timezone="UTC"),
    start_date=policies.START_DATE,
    # After downtime only the latest 04:00 check is created; it judges the deadlines it missed.
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
