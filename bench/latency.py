"""Figure 2: Dataset trigger latency, from a producer task's end to its consumer run's start.

Two benchmark-only DAGs go into the scheduler's DAG folder beside the platform's: a producer
that catches up over the last ``events`` minutes (one run at a time, each run's one task
recording a Dataset event, as the platform's ``announce_*`` tasks do) and a consumer
scheduled on that Dataset. The scheduler runs with the platform's settings on LocalExecutor.

The baseline, the sensor approach the design rejects, is computed, not measured: an
``ExternalTaskSensor`` that pokes every 60 s (its default) sees the upstream end after a wait
spread evenly over the interval, so p50 = 30 s and p95 = 57 s, before the scheduler has even
started the task after the sensor. Measuring it would take an hour for 20 events.

On Airflow 3 a Dataset is an Asset: the same DAGs (written with ``include.shopstream.platform.compat``'s
names) and the same query on the metadata's Asset tables (``Profile.sql``) measure the same thing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.platform import BenchPlatform
from bench.stats import BenchError, percentile, summarize

PRODUCER = "bench_latency_producer"
CONSUMER = "bench_latency_consumer"
SENSOR_POKE_INTERVAL_S = 60.0
GOAL_P95_S = 1.0

# Airflow's DAG discovery skips a file without the words "airflow" and "dag" in it (safe mode): this
# one imports through compat, so its docstring carries them.
DAG_FILE = '''"""Benchmark-only DAGs (bench.latency): Dataset events and their consumer, on airflow 2 or 3."""

from datetime import datetime, timedelta

from include.shopstream.platform.compat import DAG, Dataset, EmptyOperator, task

EVENT = Dataset("s3://shopstream/bench/latency")
START = datetime.fromisoformat("{start}")

with DAG(
    "{producer}",
    schedule=timedelta(minutes=1),
    start_date=START,
    end_date=START + timedelta(minutes={last}),
    catchup=True,
    max_active_runs=1,
    is_paused_upon_creation=False,
    tags=["benchmark"],
):

    @task(outlets=[EVENT])
    def produce():
        pass

    produce()

with DAG(
    "{consumer}", schedule=[EVENT], start_date=START, catchup=False, is_paused_upon_creation=False, tags=["benchmark"]
):
    EmptyOperator(task_id="consume")
'''

LATENCIES = """
SELECT extract(epoch FROM dr.start_date - ti.end_date) AS seconds
FROM dataset_event e
JOIN task_instance ti ON ti.dag_id = e.source_dag_id AND ti.task_id = e.source_task_id
     AND ti.run_id = e.source_run_id AND ti.map_index = e.source_map_index
JOIN dagrun_dataset_event link ON link.event_id = e.id
JOIN dag_run dr ON dr.id = link.dag_run_id
WHERE e.source_dag_id = %s AND dr.dag_id = %s AND dr.start_date IS NOT NULL
ORDER BY e.id
"""


def write_dags(platform: BenchPlatform, events: int) -> None:
    """The producer catches up over the ``events`` minutes before now: ``events`` runs."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=events)
    (platform.dags_folder / "bench_latency.py").write_text(
        DAG_FILE.format(start=start.isoformat(), last=events - 1, producer=PRODUCER, consumer=CONSUMER)
    )


def measure(platform: BenchPlatform, events: int, scheduler_settings: dict) -> dict:
    """Wait for ``events`` producer events to have started a consumer run; their latencies."""
    deadline = time.monotonic() + 120 + 30 * events
    seconds: list[float] = []
    while time.monotonic() < deadline:
        seconds = [float(row["seconds"]) for row in platform.metadata(LATENCIES, (PRODUCER, CONSUMER))]
        if len(seconds) >= events:
            break
        time.sleep(2)
    else:
        raise BenchError(f"only {len(seconds)} of {events} Dataset events started a consumer run in time")
    merged = platform.metadata(
        "SELECT count(*) AS n FROM dag_run WHERE dag_id = %s AND start_date IS NOT NULL", (CONSUMER,)
    )[0]["n"]
    p50, p95 = percentile(seconds, 50), percentile(seconds, 95)
    sensor_p50, sensor_p95 = SENSOR_POKE_INTERVAL_S * 0.50, SENSOR_POKE_INTERVAL_S * 0.95
    return {
        "what": "producer task_instance.end_date -> consumer dag_run.start_date, LocalExecutor, metadata timestamps",
        "events": len(seconds),
        "consumer_runs": merged,
        "p50_s": round(p50, 3),
        "p95_s": round(p95, 3),
        "latency_s": summarize(seconds).as_dict(),
        "baseline": {
            "what": "ExternalTaskSensor, default poke_interval 60 s",
            "how": "computed from the poke interval (uniform wait in [0, 60 s)), not measured; a lower bound",
            "p50_s": sensor_p50,
            "p95_s": sensor_p95,
        },
        "ratio_p95_to_sensor": round(p95 / sensor_p95, 4),
        "scheduler_settings": scheduler_settings,
        "goals": {"p95_under_s": GOAL_P95_S, "p95_met": p95 <= GOAL_P95_S},
    }
