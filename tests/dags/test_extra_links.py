"""The operator extra links: on the right tasks, registered, and surviving the webserver's round trip."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from types import SimpleNamespace
from urllib.parse import unquote

import pytest

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


@pytest.mark.parametrize(
    ("value", "field", "uri"),
    [
        ({"csv": "s3://shopstream/reports/daily/ds=2026-11-16/daily_report.csv"}, "csv",
         "s3://shopstream/reports/daily/ds=2026-11-16/daily_report.csv"),
        ({"csv": "s3://shopstream/x.csv"}, "chart", None),
        ("s3://shopstream/features/customer/ds=2026-11-16/features.parquet", None,
         "s3://shopstream/features/customer/ds=2026-11-16/features.parquet"),
        (SimpleNamespace(path="s3://shopstream/f.parquet"), None, "s3://shopstream/f.parquet"),
        (None, None, None),
        (None, "csv", None),
        ("s3://", None, None),
        ("s3://bucket-only", None, None),
        ("/tmp/local.csv", None, None),
        ({"csv": 42}, "csv", None),
        (["s3://shopstream/x"], None, None),
    ],
)  # fmt: skip
def test_the_uri_comes_from_the_return_value_or_the_link_is_empty(value, field, uri):
    assert links.s3_uri_in(value, field) == uri


def test_a_task_that_returned_nothing_has_an_empty_link(monkeypatch):
    from airflow.models.xcom import XCom

    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda **_: None))
    presigned = []
    monkeypatch.setattr(links, "presigned_url", lambda uri: presigned.append(uri) or "http://x")
    assert links.DailyReportLink().get_link(None, ti_key=object()) == ""
    assert presigned == []
    report = "s3://shopstream/reports/daily/ds=2026-11-16/daily_report.csv"
    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda **_: {"csv": report}))
    assert links.DailyReportLink().get_link(None, ti_key=object()) == "http://x"
    assert presigned == [report]


@pytest.mark.parametrize(
    ("key", "kind", "disposition"),
    [
        ("reports/daily/ds=2026-11-16/revenue_30d.png", "image/png", 'inline; filename="revenue_30d.png"'),
        ("reports/daily/ds=2026-11-16/daily_report.csv", "text/csv", 'inline; filename="daily_report.csv"'),
        ("quality/results/ds=2026-11-16/20261116T060000.json", "application/json",
         'inline; filename="20261116T060000.json"'),
        ("features/customer/ds=2026-11-16/features.parquet", "application/octet-stream",
         'attachment; filename="features.parquet"'),
    ],
)  # fmt: skip
def test_the_link_names_the_content_type_so_the_chart_opens_in_the_tab(key, kind, disposition):
    # Objects are written without a content type; S3 would answer binary/octet-stream and the
    # browser would download the chart instead of showing it (the browser test met exactly that).
    assert links.response_headers(key) == {"ResponseContentType": kind, "ResponseContentDisposition": disposition}


REPORT = "reports/daily/ds=2026-11-16/daily_report.csv"


@pytest.mark.parametrize(
    ("link", "value"),
    [
        (links.DailyReportLink, {"csv": f"s3://elsewhere/{REPORT}"}),
        (links.DailyReportLink, {"csv": f"s3://shopstream-private/{REPORT}"}),
        (links.DailyReportLink, {"csv": "s3://shopstream/raw/orders/ds=2026-11-16/part-00000.csv"}),
        (links.DailyReportLink, {"csv": "s3://shopstream/quarantine/orders/ds=2026-11-16/rejected.csv"}),
        (links.DailyReportLink, {"csv": "s3://shopstream/reports/daily/ds=2026-11-16/revenue_30d.png"}),
        (links.DailyReportLink, {"csv": "s3://shopstream/reports/daily/ds=2026-11-16/../../../raw/x.csv"}),
        (links.DailyReportLink, {"csv": f"s3://shopstream//{REPORT}"}),
        (links.DailyReportLink, {"csv": "s3://shopstream/reports/daily/daily_report.csv"}),
        (links.DailyReportLink, {"csv": "s3://shopstream/reports/daily/ds=/daily_report.csv"}),
        (links.RevenueChartLink, {"chart": f"s3://shopstream/{REPORT}"}),
        (links.FeaturesLink, "s3://shopstream/gold/orders/ds=2026-11-16/orders.parquet"),
        (links.FeaturesLink, "s3://shopstream/features/customer/ds=2026-11-16/other.parquet"),
        (links.QualityResultsLink, {"results": "s3://shopstream/quality/results/ds=2026-11-16/.."}),
        (links.QualityResultsLink, {"results": "s3://shopstream/quality/results/ds=2026-11-16/a/b.json"}),
        (links.QualityResultsLink, {"results": "s3://other/quality/results/ds=2026-11-16/r.json"}),
    ],
)  # fmt: skip
def test_a_return_value_naming_anything_but_the_links_own_lake_files_gives_no_link(monkeypatch, link, value):
    from airflow.models.xcom import XCom

    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda **_: value))
    presigned = []
    monkeypatch.setattr(links, "presigned_url", lambda uri: presigned.append(uri) or "http://x")
    assert link().get_link(None, ti_key=object()) == ""
    assert presigned == [], "nothing was signed"


@pytest.mark.parametrize(
    ("link", "value"),
    [
        (links.DailyReportLink, {"csv": f"s3://shopstream/{REPORT}"}),
        (links.RevenueChartLink, {"chart": "s3://shopstream/reports/daily/ds=2026-11-16/revenue_30d.png"}),
        (links.FeaturesLink, "s3://shopstream/features/customer/ds=2026-11-16/features.parquet"),
        (links.QualityResultsLink, {"results": "s3://shopstream/quality/results/ds=2026-11-16/20261116T060000.json"}),
    ],
)  # fmt: skip
def test_each_link_opens_its_own_files(monkeypatch, link, value):
    from airflow.models.xcom import XCom

    monkeypatch.setattr(XCom, "get_value", staticmethod(lambda **_: value))
    monkeypatch.setattr(links, "presigned_url", lambda uri: f"signed {uri}")
    assert link().get_link(None, ti_key=object()).startswith("signed s3://shopstream/")


@pytest.mark.parametrize(
    "filename",
    [
        'a"b.json',
        "a;b=c.json",
        "a\r\nSet-Cookie: x=1.json",
        "r\u00e9sultats \u2013 \u65e5\u672c.json",
        '"; x.json',
        "..json",
    ],
)
def test_the_filename_in_content_disposition_is_escaped(filename):
    header = links.response_headers(f"quality/results/ds=2026-11-16/{filename}")["ResponseContentDisposition"]
    assert header.isascii() and header.isprintable(), header
    assert "\r" not in header and "\n" not in header
    disposition, fallback, extended = header.split("; ")
    assert disposition in ("inline", "attachment")
    assert re.fullmatch(r'filename="[A-Za-z0-9._-]+"', fallback), header
    assert extended.startswith("filename*=UTF-8''")
    assert re.fullmatch(r"[A-Za-z0-9!#$&+.^_`|~%-]+", extended.removeprefix("filename*=UTF-8''")), "RFC 5987 attr-chars"
    assert unquote(extended.removeprefix("filename*=UTF-8''")) == filename, "filename* carries the name itself"
