"""Questions for Airflow, asked in a fresh process of the platform's Airflow environment.

    python -m bench.probe parse <path>   # time a cold DagBag of one file or folder
    python -m bench.probe project <path> # time the SQL back-end's imports, then the DagBag: the project's own share
    python -m bench.probe graph          # every task's upstream tasks, per DAG
    python -m bench.probe facts          # versions and the scheduler settings in force

Each prints one line of JSON. Run by the benchmark, never by hand.
"""

from __future__ import annotations

import importlib
import json
import sys
import time

STARTED = time.perf_counter()

# What the SQL steps' back-end imports before any project code runs, per Airflow major version:
# the Astro SDK on Airflow 2; on Airflow 3 the Task SDK and the providers the providers' back-end
# reads and writes with. Timed apart, so that what the DagBag then takes is the project's own share.
BACKEND_IMPORTS = {
    2: ("astro.sql",),
    3: ("airflow.sdk", "airflow.providers.postgres.hooks.postgres", "airflow.providers.amazon.aws.hooks.s3"),
}

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
# Airflow 3 parses DAG files in a process of its own, with settings of its own.
AIRFLOW3_SETTINGS = (
    *(
        item
        for item in SCHEDULER_SETTINGS
        if item[1] not in ("min_file_process_interval", "dag_dir_list_interval", "parsing_processes")
    ),
    ("dag_processor", "min_file_process_interval"),
    ("dag_processor", "refresh_interval"),
    ("dag_processor", "parsing_processes"),
)


def _major() -> int:
    from airflow import __version__

    return int(__version__.split(".", 1)[0])


def _dagbag(path: str | None = None):
    """``DagBag(path)``, or with no path the class itself, imported: Airflow 3 keeps it in
    ``dag_processing`` and has no example DAGs to leave out."""
    if _major() >= 3:
        from airflow.dag_processing.dagbag import DagBag

        return DagBag if path is None else DagBag(dag_folder=path)
    from airflow.models.dagbag import DagBag

    return DagBag if path is None else DagBag(dag_folder=path, include_examples=False)


def parse(path: str, sdk_first: bool = False) -> dict:
    """A DagBag of ``path`` in this (cold) process: what the scheduler's DAG processor and
    ``astro dev parse`` pay for it. Airflow's own import is timed apart; with ``sdk_first``,
    so are the SQL back-end's imports (``BACKEND_IMPORTS``), and what the DagBag then takes is
    the project's own share."""
    _dagbag()

    imported = time.perf_counter()
    if sdk_first:
        for module in BACKEND_IMPORTS[_major()]:
            importlib.import_module(module)
    sdk_done = time.perf_counter()
    bag = _dagbag(path)
    parsed = time.perf_counter()
    return {
        "import_airflow_s": imported - STARTED,
        "import_sdk_s": sdk_done - imported,
        "parse_s": parsed - sdk_done,
        "dags": len(bag.dags),
        "backend_imports": list(BACKEND_IMPORTS[_major()]) if sdk_first else [],
        "errors": {str(k): str(v).splitlines()[-1] for k, v in bag.import_errors.items()},
    }


def project(path: str) -> dict:
    return parse(path, sdk_first=True)


def graph() -> dict:
    from airflow.configuration import conf

    bag = _dagbag(conf.get("core", "dags_folder"))
    return {
        dag_id: {task.task_id: sorted(task.upstream_task_ids) for task in dag.tasks} for dag_id, dag in bag.dags.items()
    }


def facts() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from airflow.configuration import conf

    from include.shopstream.platform import sql_steps

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    packages = (
        "apache-airflow", "apache-airflow-task-sdk", "astro-sdk-python",
        "apache-airflow-providers-postgres", "apache-airflow-providers-amazon",
    )  # fmt: skip

    def setting(section: str, key: str) -> str | None:
        try:
            return conf.get(section, key)
        except Exception:  # noqa: BLE001 - a setting this version does not have
            return None

    major = _major()
    settings = AIRFLOW3_SETTINGS if major >= 3 else SCHEDULER_SETTINGS
    return {
        "versions": {name: installed(name) for name in packages},
        "airflow_major": major,
        "sql_backend": sql_steps.BACKEND,
        "backend_imports": list(BACKEND_IMPORTS[major]),
        "scheduler_settings": {f"{section}.{key}": setting(section, key) for section, key in settings},
    }


def main(argv: list[str]) -> int:
    command, *args = argv
    answer = {"parse": parse, "project": project, "graph": graph, "facts": facts}[command](*args)
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
