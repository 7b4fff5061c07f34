"""Figure 1: orders_etl's time and memory against the floor for the same rows on Postgres.

The pipeline: ``airflow dags test sales_core_pipeline <date>`` runs the real DAG file's tasks
in one process, in dependency order, against the platform's connections (here pointed at
databases of their own); ``customer_360`` is marked successful instead of run, so the run is
orders_etl alone; so is ``drop_staging``, so that the run's staging tables are still there for
the memory reruns below (a task rerun alone reads its upstream's table of that run). Its time
is the sum of the task durations that Airflow records, so process start-up and DAG parsing
(figure 4) are not counted in it.

The baseline, the floor for this work: ``COPY (the same extract query) TO STDOUT`` from the
source, ``COPY .. FROM STDIN`` into a typed staging table in the warehouse, and one
``INSERT .. SELECT DISTINCT ON (order_id) .. WHERE <contract> ON CONFLICT (order_id) DO UPDATE``
into a table shaped like gold.orders, its foreign key to gold.customers included (a third of
the floor at 1M rows). Both start each run from an empty target table.

Memory: the peak RSS (``wait4``) of the tasks that hold rows in Python, each rerun alone with
``airflow tasks test`` in a process of its own, as a LocalExecutor task process would be.
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

from bench.platform import BenchPlatform, run_measured
from bench.stats import BenchError, label, summarize
from include.shopstream.platform.warehouse import sql
from localdev import seed
from localdev.generator import Scale, ShopStreamData

DAG_ID = "sales_core_pipeline"
GROUP = "orders_etl"
SOURCE_DB = "bench_source"
WAREHOUSE_DB = "bench_warehouse"
BUSINESS_DAY = date(2026, 11, 10)
# The run that covers BUSINESS_DAY: its data interval is 02:00 on that day to 02:00 the next.
LOGICAL_DATE = datetime.combine(BUSINESS_DAY + timedelta(days=1), clock(2), tzinfo=UTC)
INTERVAL = (LOGICAL_DATE - timedelta(days=1), LOGICAL_DATE)

# The tasks from the source to gold.orders: what the "extract, load, validate, merge" is.
ORDERS_PATH = (
    "extract_orders", "has_orders", "load_orders", "check_orders", "valid_orders", "rejected_orders",
    "quarantine_rejected", "enforce_bad_row_threshold", "merge_orders",
)  # fmt: skip
# The tasks that hold rows in Python (the others work inside Postgres); has_orders is an idle
# task process, the memory every task pays before it does anything.
MEMORY_TASKS = (
    "has_orders", "extract_customers", "load_customers", "extract_orders", "load_orders", "quarantine_rejected",
    "publish_orders",
)  # fmt: skip

# Tasks `airflow dags test` marks successful instead of running: customer_360, and the run's
# last task, which drops its staging tables (the memory reruns read them).
MARK_SUCCESS = r"customer_360\..*|drop_staging"

GOAL_RATIO = 1.5
GOAL_RSS_MIB = 1024

BASELINE_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.orders, bench.orders_stage;
CREATE TABLE bench.orders (LIKE gold.orders INCLUDING ALL);
-- LIKE copies the keys and CHECKs but not the foreign key, which the merge into gold.orders pays.
ALTER TABLE bench.orders ADD FOREIGN KEY (customer_id) REFERENCES gold.customers (customer_id);
CREATE TABLE bench.orders_stage (
    source_row_id bigint, order_id bigint, customer_id bigint, product_id bigint, sku text, category text,
    quantity integer, amount numeric(12, 2), status text, refunded_amount numeric(12, 2),
    created_at timestamptz, updated_at timestamptz
);
"""
BASELINE_MERGE = """
INSERT INTO bench.orders (order_id, customer_id, product_id, sku, category, quantity, amount, status,
                          refunded_amount, created_at, updated_at, loaded_at)
SELECT DISTINCT ON (order_id) order_id, customer_id, product_id, sku, category, quantity, amount, status,
       refunded_amount, created_at, updated_at, now()
FROM bench.orders_stage AS s
WHERE customer_id IS NOT NULL AND amount >= 0
  AND EXISTS (SELECT 1 FROM gold.customers AS c WHERE c.customer_id = s.customer_id)
  AND status IN ('placed', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')
ORDER BY order_id, source_row_id
ON CONFLICT (order_id) DO UPDATE SET
    customer_id = EXCLUDED.customer_id, product_id = EXCLUDED.product_id, sku = EXCLUDED.sku,
    category = EXCLUDED.category, quantity = EXCLUDED.quantity, amount = EXCLUDED.amount,
    status = EXCLUDED.status, refunded_amount = EXCLUDED.refunded_amount,
    created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, loaded_at = EXCLUDED.loaded_at
"""


# `airflow dags test` records no task start_date on Airflow 2; its log marks each task's start and
# end, on both profiles: ``[<time>] {file:line} INFO - [DAG TEST] ...`` on Airflow 2, structlog's
# ``<time> [info     ] [DAG TEST] ...`` on Airflow 3. The same marks time both.
DAG_TEST_MARK = re.compile(
    r"^\[?(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\]? .*?"
    r"(?:\[DAG TEST\] (?P<what>starting|end task) task_id=(?P<task>\S+)|(?P<api>Task started) )",
    re.M,
)


def task_durations(log: str, group: str = GROUP) -> dict[str, float]:
    """Seconds from each task's start to its ``[DAG TEST] end task`` line.

    The start is its ``[DAG TEST] starting`` line; on Airflow 3, the in-process Execution API's
    ``Task started`` that follows it (``dags test`` runs one task at a time), where Airflow
    records the task's start. Between the two, the first task of a ``dags test`` process
    imports and builds that API (about 4 s, once per process; a deployment's API server has
    done it before any task), which is the command's start-up, not the task's work.
    """
    started: dict[str, datetime] = {}
    seconds: dict[str, float] = {}
    latest = None
    for match in DAG_TEST_MARK.finditer(log):
        at = datetime.fromisoformat(match["at"])
        if match["api"]:
            if latest in started:
                started[latest] = at
                latest = None
            continue
        task = match["task"]
        if not task.startswith(f"{group}."):
            latest = None
            continue
        if match["what"] == "starting":
            latest = task
            started[task] = at
        elif task in started:
            seconds[task.removeprefix(f"{group}.")] = (at - started.pop(task)).total_seconds()
            latest = None
    return seconds


def data_for(orders_per_day: int) -> ShopStreamData:
    """The generator at ``orders_per_day``: 1% contract-breaking rows, as `make run` seeds."""
    return ShopStreamData(
        seed=7,
        scale=Scale(
            customers=max(500, orders_per_day // 20), products=1000, orders_per_day=orders_per_day, bad_share=0.01
        ),
    )


class EtlBench:
    def __init__(self, platform: BenchPlatform) -> None:
        self.platform = platform
        pg = platform.stack.pg
        for database in (SOURCE_DB, WAREHOUSE_DB):
            pg.ensure_database(database)
        # The platform's connections, pointed at databases of the benchmark's own (an
        # AIRFLOW_CONN_* variable wins over the metadata database's connection of that id).
        self.env = platform.env(
            AIRFLOW_CONN_SHOPSTREAM_SOURCE=pg.url(SOURCE_DB),
            AIRFLOW_CONN_SHOPSTREAM_WAREHOUSE=pg.url(WAREHOUSE_DB),
        )
        self.warehouse(sql("warehouse_schema.sql") + BASELINE_SCHEMA)

    def warehouse(self, statement: str, params=None) -> list[dict]:
        return self.platform.stack.query(WAREHOUSE_DB, statement, params)

    def seed(self, orders_per_day: int) -> int:
        """Replace the source's contents with ``BUSINESS_DAY``'s orders (and the next day's
        up to 02:00, the end of the run's data interval); return the rows the run extracts."""
        self.platform.stack.query(SOURCE_DB, "DROP TABLE IF EXISTS orders, customers, products, seed_progress")
        seed.seed(
            self.platform.stack.pg.url(SOURCE_DB),
            [BUSINESS_DAY, BUSINESS_DAY + timedelta(days=1)],
            data_for(orders_per_day),
            until=INTERVAL[1],
        )
        self.platform.stack.query(SOURCE_DB, "ANALYZE")
        rows = self.platform.stack.query(
            SOURCE_DB, "SELECT count(*) AS n FROM orders WHERE updated_at >= %s AND updated_at < %s", INTERVAL
        )
        return rows[0]["n"]

    def run_pipeline(self, tag: str) -> dict:
        """One `airflow dags test` of orders_etl; the task durations Airflow recorded."""
        self.warehouse("TRUNCATE gold.orders, gold.customers, staging.held_orders, bench.orders")
        measured = run_measured(
            [
                sys.executable, "-m", "airflow", "dags", "test", DAG_ID, LOGICAL_DATE.isoformat(),
                "--mark-success-pattern", MARK_SUCCESS,
            ],
            self.env,
            self.platform.logs / f"etl-{tag}.log",
        )  # fmt: skip
        seconds = task_durations(measured.log.read_text(errors="replace"))
        states = self.platform.metadata(
            "SELECT ti.task_id, ti.state FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
            " WHERE dr.dag_id = %s AND dr.execution_date = %s AND ti.task_id LIKE %s",
            (DAG_ID, LOGICAL_DATE, f"{GROUP}.%"),
        )
        failed = [t["task_id"] for t in states if t["state"] != "success"]
        if measured.returncode != 0 or failed or not states or not set(ORDERS_PATH) <= seconds.keys():
            raise BenchError(
                f"orders_etl did not succeed ({', '.join(failed) or 'exit ' + str(measured.returncode)});"
                f" log {measured.log}:\n{measured.tail()}"
            )
        merged = self.warehouse("SELECT count(*) AS n FROM gold.orders")[0]["n"]
        return {
            "orders_path_s": sum(seconds[t] for t in ORDERS_PATH),
            "group_s": sum(seconds.values()),
            "process_wall_s": measured.wall_s,
            "process_peak_rss_mib": measured.peak_rss_mib,
            "tasks_s": seconds,
            "merged": merged,
        }

    def run_baseline(self) -> dict:
        """COPY out, COPY in, one INSERT .. ON CONFLICT: the floor for the same rows."""
        self.warehouse("TRUNCATE bench.orders, bench.orders_stage")
        pg = self.platform.stack.pg
        source, warehouse = pg.connect(SOURCE_DB), pg.connect(WAREHOUSE_DB)
        try:
            started = time.perf_counter()
            with source.cursor() as out, warehouse.cursor() as into, tempfile.TemporaryFile() as buffer:
                extract = out.mogrify(
                    sql("orders_extract.sql"), {"start": INTERVAL[0], "end": INTERVAL[1], "after": 0, "limit": None}
                ).decode()
                out.copy_expert(f"COPY ({extract}) TO STDOUT", buffer)
                buffer.seek(0)
                into.copy_expert("COPY bench.orders_stage FROM STDIN", buffer)
                into.execute(BASELINE_MERGE)
                merged = into.rowcount
            warehouse.commit()
            seconds = time.perf_counter() - started
        finally:
            source.close()
            warehouse.close()
        return {"seconds": seconds, "merged": merged}

    def task_memory(self, tag: str) -> dict[str, float]:
        """Peak RSS (MiB) of each of MEMORY_TASKS rerun alone in a process of its own."""
        peaks = {}
        for task in MEMORY_TASKS:
            measured = run_measured(
                [sys.executable, "-m", "airflow", "tasks", "test", DAG_ID, f"{GROUP}.{task}", LOGICAL_DATE.isoformat()],
                self.env,
                self.platform.logs / f"etl-{tag}-{task}.log",
            )
            if measured.returncode != 0:
                raise BenchError(f"`airflow tasks test` of {task} failed; log {measured.log}:\n{measured.tail()}")
            peaks[task] = measured.peak_rss_mib
        return peaks

    def measure_scale(self, orders_per_day: int, repeat: int) -> dict:
        name = label(orders_per_day)
        print(f"  orders_etl at {name} orders/day: seeding...", flush=True)
        rows = self.seed(orders_per_day)
        pipeline, baseline = [], []
        for attempt in range(1, repeat + 1):
            pipeline.append(self.run_pipeline(f"{name}-{attempt}"))
            baseline.append(self.run_baseline())
            print(
                f"  orders_etl at {name}, run {attempt}/{repeat}: pipeline {pipeline[-1]['orders_path_s']:.1f}s,"
                f" baseline {baseline[-1]['seconds']:.1f}s",
                flush=True,
            )
        if pipeline[-1]["merged"] != baseline[-1]["merged"]:
            raise BenchError(
                f"the pipeline merged {pipeline[-1]['merged']} orders, the baseline {baseline[-1]['merged']}:"
                " they did not do the same work"
            )
        memory = self.task_memory(name)
        path = summarize([p["orders_path_s"] for p in pipeline])
        floor = summarize([b["seconds"] for b in baseline])
        ratio = summarize([p["orders_path_s"] / b["seconds"] for p, b in zip(pipeline, baseline, strict=True)])
        heaviest = max(memory, key=memory.get)
        return {
            "orders_per_day": orders_per_day,
            "rows_extracted": rows,
            "rows_merged": pipeline[-1]["merged"],
            "pipeline_s": path.as_dict(),
            "pipeline_rows_per_s": round(rows / path.median),
            "baseline_s": floor.as_dict(),
            "baseline_rows_per_s": round(rows / floor.median),
            "ratio": ratio.as_dict(),
            "orders_etl_group_s": summarize([p["group_s"] for p in pipeline]).as_dict(),
            "dags_test_process_wall_s": summarize([p["process_wall_s"] for p in pipeline]).as_dict(),
            "dags_test_process_peak_rss_mib": summarize([p["process_peak_rss_mib"] for p in pipeline]).as_dict(1),
            "task_s_median": {
                task: round(statistics.median(run["tasks_s"][task] for run in pipeline), 3)
                for task in pipeline[0]["tasks_s"]
            },
            "task_peak_rss_mib": {task: round(value, 1) for task, value in memory.items()},
            "peak_task_rss_mib": round(memory[heaviest], 1),
            "peak_task": heaviest,
            "idle_task_rss_mib": round(memory["has_orders"], 1),
        }


def measure(platform: BenchPlatform, scales: list[int], repeat: int) -> dict:
    bench = EtlBench(platform)
    results = [bench.measure_scale(n, repeat) for n in scales]
    largest = results[-1]
    return {
        "what": (
            "orders_etl's tasks from extract_orders to merge_orders (sum of Airflow's task durations, "
            "`airflow dags test`) against COPY out + COPY in + one INSERT .. ON CONFLICT of the same rows"
        ),
        "scales": results,
        "goals": {
            "ratio_at_most": GOAL_RATIO,
            "ratio_scale": label(largest["orders_per_day"]),
            "ratio_met": largest["ratio"]["median"] <= GOAL_RATIO,
            "ratio_goal_applies_at": "1M",
            "peak_rss_under_mib": GOAL_RSS_MIB,
            "peak_rss_met": largest["peak_task_rss_mib"] < GOAL_RSS_MIB,
        },
    }
