"""Import the pipelines' libraries once in the scheduler, before it forks its task processes.

With LocalExecutor every task runs in a process forked from the scheduler, and the first thing
that process does is parse its DAG file, which imports the Astro SDK, pandas and
``include/shopstream``: several seconds of CPU per task, for tasks that often take one second.
Imported once in the scheduler, before its executor and DAG file processors start, those
modules are inherited by every process it forks.

Every Airflow process loads this plugin, but only ``airflow scheduler`` (and ``airflow dags
backfill``, which runs its own executor) imports anything:
the webserver, the triggerer and the CLI stay as light as they were. A failed import is
logged and changes nothing else: the tasks then import what they need themselves.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import time

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

PACKAGE = "include.shopstream"
# The Airflow sub-commands whose process forks the task processes (LocalExecutor): the
# scheduler, and a backfill, which runs its own executor (`make run` backfills the history).
FORKING_COMMANDS = frozenset({("scheduler",), ("dags", "backfill")})


def pipeline_modules() -> list[str]:
    package = importlib.import_module(PACKAGE)
    return [f"{PACKAGE}.{module.name}" for module in pkgutil.iter_modules(package.__path__)]


def preload() -> list[str]:
    """Import every module of the pipelines package (and so the Astro SDK); return their names."""
    names = pipeline_modules()
    for name in names:
        importlib.import_module(name)
    return names


class Preloader:
    """An Airflow listener: when a scheduler or backfill starts, import the pipelines' modules."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = sys.argv if argv is None else argv
        self.done = False

    @hookimpl
    def on_starting(self, component) -> None:
        forks = any(tuple(self.argv[1 : 1 + len(command)]) == command for command in FORKING_COMMANDS)
        if self.done or not forks:
            return
        self.done = True
        started = time.perf_counter()
        try:
            names = preload()
        except Exception:  # the scheduler must start regardless; tasks import on their own
            log.warning("could not preload %s for the task processes", PACKAGE, exc_info=True)
            return
        log.info(
            "preloaded %d modules of %s for the task processes in %.1f s",
            len(names),
            PACKAGE,
            time.perf_counter() - started,
        )


class ShopStreamPreloadPlugin(AirflowPlugin):
    name = "shopstream_preload"
    listeners = [Preloader()]
