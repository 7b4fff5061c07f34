"""Figure 4: DAG parse time, per DAG file and for the whole DagBag, each in a cold process.

Three views of it, all in fresh processes of the platform's Airflow environment:

- cold: ``DagBag(<file or folder>)`` right after ``import airflow``, what a process that
  has nothing preloaded pays (``airflow dags test``, a Celery worker without preload);
- the project's own share: ``import airflow`` and the SQL back-end's imports first
  (``bench.probe.BACKEND_IMPORTS``: ``astro.sql`` on Airflow 2; the Task SDK and the Postgres
  and Amazon providers' hooks on Airflow 3), then the DagBag; what is left is the project's
  code and the imports only it makes. Cold DagBag minus the back-end's imports is recorded
  beside it as a cross-check;
- ``astro dev parse``: the wall time of the command the Astro CLI runs for it,
  ``pytest .astro/test_dag_integrity_default.py``, here in the local environment (the CLI
  runs it in a container of the image, whose start it adds). The CLI's file is generated for
  Airflow 2; what it imports and calls is still there on Airflow 3, where it is timed the same way.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.platform import BenchPlatform
from bench.stats import BenchError, summarize
from localdev.stack import ROOT

GOAL_PER_FILE_S = 0.5
GOAL_ALL_S = 3.0
GOAL_PROJECT_S = 0.5
INTEGRITY_TEST = ROOT / ".astro" / "test_dag_integrity_default.py"


def astro_dev_parse(platform: BenchPlatform) -> float:
    """Seconds for ``pytest .astro/test_dag_integrity_default.py`` in a fresh process."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(INTEGRITY_TEST)],
        env=platform.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-10:])
        raise BenchError(f"`astro dev parse`'s test failed:\n{tail}")
    return seconds


def measure(platform: BenchPlatform, repeat: int) -> dict:
    """``repeat`` cold parses of each DAG file and of the folder, interleaved."""
    dags = ROOT / "dags"
    targets: dict[str, Path] = {path.name: path for path in sorted(dags.glob("*.py"))}
    targets["(whole DagBag)"] = dags
    parse_s: dict[str, list[float]] = {name: [] for name in targets}
    import_s: list[float] = []
    sdk_s: list[float] = []
    project_s: list[float] = []
    parse_command_s: list[float] = []
    for _ in range(repeat):
        for name, path in targets.items():
            answer = platform.probe("parse", str(path))
            if answer["errors"] or not answer["dags"]:
                raise BenchError(f"parsing {name} failed: {answer['errors'] or 'no DAG found'}")
            parse_s[name].append(answer["parse_s"])
            import_s.append(answer["import_airflow_s"])
        answer = platform.probe("project", str(dags))
        if answer["errors"] or not answer["dags"]:
            raise BenchError(f"parsing the DAG folder after the SDK failed: {answer['errors'] or 'no DAG found'}")
        sdk_s.append(answer["import_sdk_s"])
        project_s.append(answer["parse_s"])
        parse_command_s.append(astro_dev_parse(platform))
    files = {name: summarize(values) for name, values in parse_s.items() if name != "(whole DagBag)"}
    whole = summarize(parse_s["(whole DagBag)"])
    project = summarize(project_s)
    slowest = max(files, key=lambda name: files[name].median)
    return {
        "what": "DagBag(dag_folder=<file or folder>) in a fresh process after `import airflow` (timed apart)",
        "backend_imports": list(answer.get("backend_imports", [])),
        "per_file_s": {name: summary.as_dict() for name, summary in files.items()},
        "whole_dagbag_s": whole.as_dict(),
        "import_airflow_s": summarize(import_s).as_dict(),
        "import_sdk_s": summarize(sdk_s).as_dict(),
        "project_s": project.as_dict(),
        "project_by_difference_s": round(whole.median - statistics.median(sdk_s), 3),
        "astro_dev_parse_s": summarize(parse_command_s).as_dict(),
        "goals": {
            "per_file_under_s": GOAL_PER_FILE_S,
            "per_file_met": files[slowest].median < GOAL_PER_FILE_S,
            "slowest_file": slowest,
            "all_under_s": GOAL_ALL_S,
            "all_met": whole.median < GOAL_ALL_S,
            "project_under_s": GOAL_PROJECT_S,
            "project_met": project.median < GOAL_PROJECT_S,
        },
    }
