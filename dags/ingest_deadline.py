"""
### ingest_deadline

The on-call promise of the critical path: **the 02:00 ingest is done by 04:00 UTC**. Every day
at 04:00 this DAG judges `sales_core_pipeline`'s runs for the business date that ingest is about,
and every earlier deadline since the last successful scheduled check (at most three days back),
by whether `orders_etl.announce_orders` succeeded, in any run of that date, by the due time:

- done by 04:00: nothing is sent;
- done after 04:00: a Slack warning that says when, and by how much it missed; no page;
- not done (still running, failed, or never started): a critical Slack alert and one PagerDuty
  incident for that business date; the ingest's success resolves it;
- the sales DAG had no run created before that 04:00 (the platform did not exist yet; on
  Airflow 3: no event of the orders Dataset before it): nothing is sent.

A check triggered by hand judges the date its logical date names, and pages even for a date
before the platform's first run. Each check task returns, and logs, one line per date judged.
The check reads the runs through `include/shopstream/platform/run_states.py`, never in a session of its
own; the orders Dataset is its inlet. Why a DAG and not Airflow's task SLA, and why Airflow 3's
Deadline Alerts complement this check rather than replace it (a deadline exists only for a run
that was created), is explained in docs/failure-handling.md (The 04:00 page) and in
`include/shopstream/ops/deadlines.py`.
"""

from include.shopstream.ops import deadlines, policies

# airflow: the DAG processor's safe mode reads only files that name it; compat imports it.
from include.shopstream.platform.compat import CronTriggerTimetable, dag


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
