"""Figure 3: one business day through all four DAGs on the real scheduler.

``sales_core_pipeline`` and ``inventory_mgmt_pipeline`` are triggered for their latest
complete data intervals while paused, then unpaused together (time zero); analytics and
observability follow through Datasets. Wall time runs from time zero to the end of the last
``observability_pipeline`` run. The critical path is the longest chain of task durations
(``task_instance`` start to end) through the task graphs, joined across DAGs where a run was
triggered by a producer task's Dataset event. Overhead ratio = wall / critical path.
How busy the machine's cores were over the day (``/proc/stat``, from time zero to the last
poll before the day ended) tells waiting apart from work: a gap on busy cores is CPU that the
orchestration and the tasks beside the path took.
"""

from __future__ import annotations

import graphlib
import os
import time
from datetime import UTC, datetime, timedelta

from bench.platform import BenchPlatform
from bench.stats import BenchError, summarize

SALES = "sales_core_pipeline"
INVENTORY = "inventory_mgmt_pipeline"
ANALYTICS = "analytics_and_reporting_pipeline"
OBSERVABILITY = "observability_pipeline"
DAGS = (SALES, INVENTORY, ANALYTICS, OBSERVABILITY)
TERMINAL = ("success", "failed")
GOAL_RATIO = 1.5


def latest_intervals(now: datetime) -> dict[str, datetime]:
    """The logical date of each scheduled DAG's latest complete data interval."""
    daily_end = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if daily_end > now:
        daily_end -= timedelta(days=1)
    four_hourly_end = now.replace(hour=now.hour - now.hour % 4, minute=0, second=0, microsecond=0)
    return {SALES: daily_end - timedelta(days=1), INVENTORY: four_hourly_end - timedelta(hours=4)}


def critical_path(
    tasks: list[dict], upstream: dict[str, dict[str, list[str]]], triggers: dict[tuple, list[tuple]]
) -> tuple[float, list[tuple]]:
    """The longest chain of task durations, and its tasks.

    ``tasks`` rows have dag_id, run_id, task_id and seconds; ``upstream`` is each DAG's task
    graph; ``triggers`` maps a consumer run (dag_id, run_id) to the producer tasks whose
    Dataset events started it.
    """
    seconds = {(t["dag_id"], t["run_id"], t["task_id"]): t["seconds"] for t in tasks}
    predecessors: dict[tuple, list[tuple]] = {}
    for dag_id, run_id, task_id in seconds:
        before = [(dag_id, run_id, up) for up in upstream[dag_id][task_id]]
        if not before:
            before = [node for node in triggers.get((dag_id, run_id), []) if node in seconds]
        predecessors[(dag_id, run_id, task_id)] = before
    longest: dict[tuple, tuple[float, list[tuple]]] = {}
    for node in graphlib.TopologicalSorter(predecessors).static_order():
        best = max((longest[p] for p in predecessors[node]), key=lambda item: item[0], default=(0.0, []))
        longest[node] = (best[0] + seconds[node], [*best[1], node])
    return max(longest.values(), key=lambda item: item[0])


def gaps(path: list[dict], zero: datetime, end: datetime) -> dict[str, float]:
    """Where the wall time between the critical path's tasks goes, from the metadata timestamps.

    ``to_queued``: a task's upstream ended (or time zero) until the scheduler queued it; this
    includes a Dataset-triggered run's creation. ``to_running``: queued until the task process
    started running it (the executor's pickup, the fork, the DAG file's parse, the task
    runner). ``after_last``: the path's last task ended until the last run ended.
    """
    to_queued = to_running = 0.0
    previous_end = zero
    for task in path:
        queued = task["queued_dttm"] or task["start_date"]
        to_queued += max(0.0, (queued - previous_end).total_seconds())
        to_running += max(0.0, (task["start_date"] - queued).total_seconds())
        previous_end = task["end_date"]
    return {
        "to_queued": round(to_queued, 3),
        "to_running": round(to_running, 3),
        "after_last": round(max(0.0, (end - previous_end).total_seconds()), 3),
        "edges": len(path),
    }


def cpu_ticks() -> tuple[int, int] | None:
    """The machine's (busy, total) CPU ticks so far, from ``/proc/stat``; None where there is none."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def busy_share(samples: list[tuple[datetime, tuple[int, int] | None]], end: datetime) -> float | None:
    """How busy every core was from the first sample to the last one taken before ``end``."""
    before = [ticks for at, ticks in samples if at <= end]
    if len(before) < 2 or before[0] is None or before[-1] is None or before[-1][1] == before[0][1]:
        return None
    return round((before[-1][0] - before[0][0]) / (before[-1][1] - before[0][1]), 3)


class EndToEnd:
    def __init__(self, platform: BenchPlatform, upstream: dict[str, dict[str, list[str]]]) -> None:
        self.platform = platform
        self.upstream = upstream

    def run_once(self, back: int, timeout: float = 1200) -> dict:
        """Trigger the day ``back`` days before the latest, wait for the cascade, measure it."""
        metadata = self.platform.metadata
        dates = {dag: when - timedelta(days=back) for dag, when in latest_intervals(datetime.now(UTC)).items()}
        first_run = metadata("SELECT coalesce(max(id), 0) AS id FROM dag_run")[0]["id"]
        self.platform.set_paused(DAGS, True)
        self.platform.set_paused((ANALYTICS, OBSERVABILITY), False)
        for dag_id, logical_date in dates.items():
            run_id = f"manual__{logical_date.isoformat()}"
            self.platform.airflow(*self.platform.profile.trigger_args(dag_id, logical_date, run_id))
        zero = datetime.now(UTC)
        cpu = [(zero, cpu_ticks())]
        self.platform.set_paused((SALES, INVENTORY), False)
        runs: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(2)
            cpu.append((datetime.now(UTC), cpu_ticks()))
            runs = metadata(
                "SELECT dag_id, run_id, state, end_date FROM dag_run WHERE id > %s AND dag_id = ANY(%s)",
                (first_run, list(DAGS)),
            )
            # Observability runs on ANY event: a queued event is a run about to start. (Analytics
            # needs two datasets: a lone event of one of them waits there by design.)
            queued = metadata(
                "SELECT count(*) AS n FROM dataset_dag_run_queue WHERE target_dag_id = %s", (OBSERVABILITY,)
            )
            by_dag = {dag: [r for r in runs if r["dag_id"] == dag] for dag in DAGS}
            if queued[0]["n"] == 0 and all(by_dag.values()) and all(r["state"] in TERMINAL for r in runs):
                break
        else:
            states = ", ".join(f"{r['dag_id']}: {r['state']}" for r in runs) or "no runs"
            raise BenchError(f"the day did not get through all four DAGs within {timeout:.0f}s ({states})")
        self.platform.set_paused((SALES, INVENTORY), True)
        run_ids = [r["run_id"] for r in runs]
        tasks = metadata(
            "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.queued_dttm, ti.start_date, ti.end_date,"
            " coalesce(extract(epoch FROM ti.end_date - ti.start_date), 0) AS seconds"
            " FROM task_instance ti WHERE ti.dag_id = ANY(%s) AND ti.run_id = ANY(%s)",
            (list(DAGS), run_ids),
        )
        for task in tasks:
            task["seconds"] = float(task["seconds"])
        links = metadata(
            "SELECT dr.dag_id, dr.run_id, e.source_dag_id, e.source_run_id, e.source_task_id"
            " FROM dagrun_dataset_event link JOIN dag_run dr ON dr.id = link.dag_run_id"
            " JOIN dataset_event e ON e.id = link.event_id WHERE dr.dag_id = ANY(%s) AND dr.run_id = ANY(%s)",
            (list(DAGS), run_ids),
        )
        triggers: dict[tuple, list[tuple]] = {}
        for link in links:
            triggers.setdefault((link["dag_id"], link["run_id"]), []).append(
                (link["source_dag_id"], link["source_run_id"], link["source_task_id"])
            )
        path_s, path = critical_path(tasks, self.upstream, triggers)
        end = max(r["end_date"] for r in runs if r["dag_id"] == OBSERVABILITY)
        wall = (end - zero).total_seconds()
        by_node = {(t["dag_id"], t["run_id"], t["task_id"]): t for t in tasks}
        return {
            "business_day": f"{dates[SALES]:%Y-%m-%d}",
            "wall_s": round(wall, 3),
            "critical_path_s": round(path_s, 3),
            "ratio": round(wall / path_s, 4),
            "critical_path": [f"{dag}.{task}" for dag, _, task in path],
            "runs": {dag: sorted(r["state"] for r in runs if r["dag_id"] == dag) for dag in DAGS},
            "tasks": len(tasks),
            # A task that failed for good: the day is measured all the same, and says so.
            "failed_tasks": sorted({f"{t['dag_id']}.{t['task_id']}" for t in tasks if t["state"] == "failed"}),
            "task_seconds_total": round(sum(t["seconds"] for t in tasks), 3),
            "gaps_s": gaps([by_node[node] for node in path], zero, end),
            "cpu_busy_share": busy_share(cpu, end),
        }


def _median_or_none(values: list[float | None]) -> dict | None:
    known = [value for value in values if value is not None]
    return summarize(known).as_dict() if known else None


def measure(platform: BenchPlatform, upstream: dict[str, dict[str, list[str]]], repeat: int) -> dict:
    """``repeat`` days (the latest complete one, then each day before it), one after another."""
    bench = EndToEnd(platform, upstream)
    runs = []
    for back in range(repeat):
        runs.append(bench.run_once(back))
        print(
            f"  day {runs[-1]['business_day']} ({back + 1}/{repeat}): wall {runs[-1]['wall_s']:.1f}s,"
            f" critical path {runs[-1]['critical_path_s']:.1f}s",
            flush=True,
        )
    ratio = summarize([r["ratio"] for r in runs])
    gap_names = ("to_queued", "to_running", "after_last")
    return {
        "what": (
            "sales + inventory triggered (time zero) -> end of the last observability run, against the "
            "longest chain of task durations across the four DAGs (joined by the Dataset events that triggered runs)"
        ),
        "wall_s": summarize([r["wall_s"] for r in runs]).as_dict(),
        "critical_path_s": summarize([r["critical_path_s"] for r in runs]).as_dict(),
        "ratio": ratio.as_dict(),
        "gaps_s": {name: summarize([r["gaps_s"][name] for r in runs]).as_dict() for name in gap_names},
        "critical_path_tasks": len(runs[0]["critical_path"]),
        "failed_tasks": sorted({task for r in runs for task in r["failed_tasks"]}),
        "failed_runs": sum(state == "failed" for r in runs for states in r["runs"].values() for state in states),
        "cpu_busy_share": _median_or_none([r["cpu_busy_share"] for r in runs]),
        "cores": os.cpu_count(),
        "days": [
            {**r, "wall_s": round(r["wall_s"], 3), "critical_path_s": round(r["critical_path_s"], 3)} for r in runs
        ],
        "goals": {"ratio_at_most": GOAL_RATIO, "ratio_met": ratio.median <= GOAL_RATIO},
    }
