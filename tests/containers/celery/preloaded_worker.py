"""``airflow <args>`` after importing the pipelines' modules, as the scheduler's preload plugin does.

worker-2 of the Celery stack starts with ``python preloaded_worker.py celery worker``: the Celery
worker's pool processes are forked from this process, and each task's process is forked from a
pool process (Airflow 2.10's default, ``execute_tasks_new_python_interpreter = False``), so they
all inherit the Astro SDK, pandas and include/shopstream instead of importing them per task.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

PACKAGE = "include.shopstream"


def preload() -> int:
    package = importlib.import_module(PACKAGE)
    names = [f"{PACKAGE}.{module.name}" for module in pkgutil.iter_modules(package.__path__)]
    for name in names:
        importlib.import_module(name)
    return len(names)


if __name__ == "__main__":
    started = time.perf_counter()
    count = preload()
    print(f"preloaded {count} modules of {PACKAGE} in {time.perf_counter() - started:.1f} s", flush=True)
    from airflow.__main__ import main

    sys.argv = ["airflow", *sys.argv[1:]]
    sys.exit(main())
