"""Figure 4: DAG parse time, per DAG file and for the whole DagBag, each in a cold process."""

from __future__ import annotations

from pathlib import Path

from bench.platform import BenchPlatform
from bench.stats import BenchError, summarize
from localdev.stack import ROOT

GOAL_PER_FILE_S = 0.5
GOAL_ALL_S = 3.0


def measure(platform: BenchPlatform, repeat: int) -> dict:
    """``repeat`` cold parses of each DAG file and of the folder, interleaved."""
    dags = ROOT / "dags"
    targets: dict[str, Path] = {path.name: path for path in sorted(dags.glob("*.py"))}
    targets["(whole DagBag)"] = dags
    parse_s: dict[str, list[float]] = {name: [] for name in targets}
    import_s: list[float] = []
    for _ in range(repeat):
        for name, path in targets.items():
            answer = platform.probe("parse", str(path))
            if answer["errors"] or not answer["dags"]:
                raise BenchError(f"parsing {name} failed: {answer['errors'] or 'no DAG found'}")
            parse_s[name].append(answer["parse_s"])
            import_s.append(answer["import_airflow_s"])
    files = {name: summarize(values) for name, values in parse_s.items() if name != "(whole DagBag)"}
    whole = summarize(parse_s["(whole DagBag)"])
    slowest = max(files, key=lambda name: files[name].median)
    return {
        "what": "DagBag(dag_folder=<file or folder>) in a fresh process after `import airflow` (timed apart)",
        "per_file_s": {name: summary.as_dict() for name, summary in files.items()},
        "whole_dagbag_s": whole.as_dict(),
        "import_airflow_s": summarize(import_s).as_dict(),
        "goals": {
            "per_file_under_s": GOAL_PER_FILE_S,
            "per_file_met": files[slowest].median < GOAL_PER_FILE_S,
            "slowest_file": slowest,
            "all_under_s": GOAL_ALL_S,
            "all_met": whole.median < GOAL_ALL_S,
        },
    }
