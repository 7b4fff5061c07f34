"""The operator extra links: on the right tasks, registered, and surviving the webserver's round trip."""

from __future__ import annotations

import json
import subprocess
import sys

from include.shopstream.ops import links
from tests.conftest import PROJECT

LINKED = {
    ("analytics_and_reporting_pipeline", "daily_reports.write_report_files"): [
        "Daily report (CSV)",
        "Revenue chart, 30 days (PNG)",
    ],
    ("analytics_and_reporting_pipeline", "ml_feature_pipeline.write_features"): ["Customer features (Parquet)"],
    ("observability_pipeline", "quality_results"): ["Quality results (JSON)"],
}


def project_links(dagbag) -> dict[tuple[str, str], list[str]]:
    return {
        (dag.dag_id, task.task_id): [link.name for link in task.operator_extra_links]
        for dag in dagbag.dags.values()
        for task in dag.tasks
        if any(isinstance(link, links.LakeObjectLink) for link in task.operator_extra_links)
    }


def test_the_report_chart_features_and_quality_tasks_carry_their_links(dagbag):
    assert project_links(dagbag) == LINKED


def test_the_plugin_registers_every_link_class():
    sys.path.insert(0, str(PROJECT / "plugins"))
    try:
        import shopstream_links
    finally:
        sys.path.remove(str(PROJECT / "plugins"))
    assert {type(link) for link in shopstream_links.ShopStreamLinksPlugin.operator_extra_links} == set(links.ALL)
    assert len({link.name for link in links.ALL}) == len(links.ALL), "each button has its own name"


def test_the_links_survive_serialization_with_the_project_plugins(tmp_path):
    """What the webserver does: rebuild the serialized DAG; unregistered link classes would vanish."""
    script = (
        "import json\n"
        "from airflow.models import DagBag\n"
        "from include.shopstream.platform.compat import AIRFLOW_3\n"
        "if AIRFLOW_3:\n"
        "    from airflow.serialization.serialized_objects import DagSerialization as Serialization\n"
        "    bag = DagBag()\n"
        "else:\n"
        "    from airflow.serialization.serialized_objects import SerializedDAG as Serialization\n"
        "    bag = DagBag(include_examples=False)\n"
        "out = {}\n"
        "for dag in bag.dags.values():\n"
        "    rebuilt = Serialization.from_dict(Serialization.to_dict(dag))\n"
        "    for task in rebuilt.tasks:\n"
        "        if task.extra_links:\n"
        "            out[dag.dag_id + ' ' + task.task_id] = sorted(task.extra_links)\n"
        "print('LINKS ' + json.dumps(out))\n"
    )
    env = {
        **__import__("os").environ,
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "PYTHONPATH": str(PROJECT),
    }
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("LINKS "))
    rebuilt = json.loads(line.removeprefix("LINKS "))
    assert rebuilt == {f"{dag} {task}": sorted(names) for (dag, task), names in LINKED.items()}
