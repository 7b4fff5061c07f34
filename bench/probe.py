"""Questions for Airflow, asked in a fresh process of the platform's Airflow environment.

    python -m bench.probe parse <path>   # time a cold DagBag of one file or folder
    python -m bench.probe project <path> # time `import astro.sql`, then the DagBag: the project's own share
    python -m bench.probe graph          # every task's upstream tasks, per DAG
    python -m bench.probe facts          # versions and the scheduler settings in force

Each prints one line of JSON. Run by the benchmark, never by hand.
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()

SCHEDULER_SETTINGS = (
    ("core", "executor"),
    ("core", "parallelism"),
    ("scheduler", "scheduler_heartbeat_sec"),
    ("scheduler", "scheduler_idle_sleep_time"),
    ("scheduler", "min_file_process_interval"),
    ("scheduler", "dag_dir_list_interval"),
    ("scheduler", "parsing_processes"),
    ("scheduler", "job_heartbeat_sec"),
    ("core", "execute_tasks_new_python_interpreter"),
)


def parse(path: str, sdk_first: bool = False) -> dict:
    """A DagBag of ``path`` in this (cold) process: what the scheduler's DAG processor and
    ``astro dev parse`` pay for it. Airflow's own import is timed apart; with ``sdk_first``,
    so is ``import astro.sql``, and what the DagBag then takes is the project's own share."""
    from airflow.models.dagbag import DagBag

    imported = time.perf_counter()
    if sdk_first:
        import astro.sql  # noqa: F401
    sdk_done = time.perf_counter()
    bag = DagBag(dag_folder=path, include_examples=False)
    parsed = time.perf_counter()
    return {
        "import_airflow_s": imported - STARTED,
        "import_sdk_s": sdk_done - imported,
        "parse_s": parsed - sdk_done,
        "dags": len(bag.dags),
        "errors": {str(k): str(v).splitlines()[-1] for k, v in bag.import_errors.items()},
    }


def project(path: str) -> dict:
    return parse(path, sdk_first=True)


def graph() -> dict:
    from airflow.models.dagbag import DagBag

    bag = DagBag(include_examples=False)
    return {
        dag_id: {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks} for dag_id, dag in bag.dags.items()
    }


def facts() -> dict:
    from importlib.metadata import version

    from airflow.configuration import conf

    return {
        "versions": {name: version(name) for name in ("apache-airflow", "astro-sdk-python")},
        "scheduler_settings": {f"{section}.{key}": conf.get(section, key) for section, key in SCHEDULER_SETTINGS},
    }


def main(argv: list[str]) -> int:
    command, *args = argv
    answer = {"parse": parse, "project": project, "graph": graph, "facts": facts}[command](*args)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
