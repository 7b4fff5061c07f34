"""The operator extra links (ops/links.py): which return values give a link, and what it asks S3.

A link presigns only an object of its own files in the lake bucket; hostile return values and
file names are generated with hypothesis. Presigning is botocore's own, offline, with a
connection of made-up credentials; tests/dags/test_extra_links.py checks the links on the DAGs'
tasks and through the webserver's serialization.
"""

from __future__ import annotations

import json
import re
import time
from datetime import date
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.shopstream.ops import links
from include.shopstream.platform import outputs

EXAMPLES = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


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


@EXAMPLES
@given(filename=st.text(max_size=200))
def test_any_file_name_gives_a_header_that_ends_where_it_should(filename):
    header = links.content_disposition("attachment", filename)
    assert header.isascii() and header.isprintable(), header
    disposition, fallback, *extended = header.split("; ")
    assert disposition == "attachment"
    assert re.fullmatch(r'filename="[A-Za-z0-9._-]+"', fallback), header
    if extended:
        [extended] = extended
        value = extended.removeprefix("filename*=UTF-8''")
        assert fallback != f'filename="{filename}"'
        assert re.fullmatch(r"[A-Za-z0-9!#$&+.^_`|~%-]*", value), "RFC 5987 attr-chars"
        assert unquote(value, errors="strict") == filename
    else:
        assert fallback == f'filename="{filename}"', "a plain name is given once, as it is"


@pytest.mark.parametrize(
    ("filename", "header"),
    [
        ("daily_report.csv", 'inline; filename="daily_report.csv"'),
        ("...", "inline; filename=\"download\"; filename*=UTF-8''..."),
        ("", "inline; filename=\"download\"; filename*=UTF-8''"),
        (".env", "inline; filename=\"env\"; filename*=UTF-8''.env"),
        ("a b.csv", "inline; filename=\"a_b.csv\"; filename*=UTF-8''a%20b.csv"),
    ],
)
def test_a_name_without_a_plain_part_falls_back_to_download(filename, header):
    assert links.content_disposition("inline", filename) == header


@pytest.mark.parametrize("name", ["report.html", "chart.svg", "page.htm", "script.js", "notes.txt", "no-extension"])
def test_only_pictures_csv_and_json_open_in_the_tab_everything_else_downloads(name):
    headers = links.response_headers(f"quality/results/ds=2026-11-16/{name}")
    assert headers["ResponseContentDisposition"].startswith("attachment; ")


FILES = {
    links.DailyReportLink: r"reports/daily/ds=[^/]+/daily_report\.csv",
    links.RevenueChartLink: r"reports/daily/ds=[^/]+/revenue_30d\.png",
    links.FeaturesLink: r"features/customer/ds=[^/]+/features\.parquet",
    links.QualityResultsLink: r"quality/results/ds=[^/]+/(?!\.\.?$)[^/]+",
}
BUCKETS = st.just("shopstream") | st.sampled_from(["shopstream-private", "Shopstream", "other", "", "shopstream.evil"])
PREFIXES = st.sampled_from(["reports/daily", "features/customer", "quality/results", "reports", "raw/orders", ""])
PARTITIONS = st.sampled_from(["ds=", "ds=..", "ds", "ts=20261116", "", "ds=2026-11-16/extra", "DS=2026-11-16"])
NAMES = st.sampled_from(["daily_report.csv", "revenue_30d.png", "features.parquet", "r.json", "..", ".", "", "a/b"])


@st.composite
def keys(draw, file: outputs.LakeFile) -> str:
    """A key like one of ``file``'s objects, each part right or else wrong or hostile; or any text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=80))
    prefix = draw(st.just(file.prefix) | PREFIXES)
    partition = draw(st.just("ds=2026-11-16") | PARTITIONS)
    name = draw(st.just(file.name or "20261116T060000.json") | NAMES)
    return f"{prefix}/{partition}/{name}"


@EXAMPLES
@given(data=st.data(), link=st.sampled_from(list(FILES)), bucket=BUCKETS)
def test_a_link_names_only_an_object_of_its_own_files_in_the_lake_bucket(data, link, bucket):
    key = data.draw(keys(link.files[0]))
    found = links.lake_object(f"s3://{bucket}/{key}", link.files)
    own = bucket == "shopstream" and re.fullmatch(FILES[link], key) is not None
    assert found == (key if own else None)


@EXAMPLES
@given(day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)))
def test_a_link_opens_what_its_task_writes_on_any_date(day):
    for link, file in (
        (links.DailyReportLink, outputs.DAILY_REPORT_CSV),
        (links.RevenueChartLink, outputs.REVENUE_CHART),
        (links.FeaturesLink, outputs.FEATURES_FILE),
    ):
        assert links.lake_object(file.uri_for(day), link.files) == file.key_for(day)
    results = outputs.QUALITY_RESULTS.uri_for(day, f"{day:%Y%m%d}T060000.json")
    assert links.lake_object(results, links.QualityResultsLink.files) is not None


def test_a_presigned_link_names_the_object_its_type_and_an_hour(monkeypatch):
    connection = {
        "conn_type": "aws",
        "login": "AKIDUNITTEST",
        "password": "secret",
        "extra": {"region_name": "us-east-1", "endpoint_url": "http://127.0.0.1:9"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    url = links.presigned_url("s3://shopstream/reports/daily/ds=2026-11-16/revenue_30d.png")
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert (parts.netloc, unquote(parts.path)) == (
        "127.0.0.1:9",
        "/shopstream/reports/daily/ds=2026-11-16/revenue_30d.png",
    )
    assert query["response-content-type"] == "image/png"
    assert query["response-content-disposition"] == 'inline; filename="revenue_30d.png"'
    assert query["AWSAccessKeyId"] == "AKIDUNITTEST" and query["Signature"]
    assert abs(int(query["Expires"]) - (time.time() + links.PRESIGNED_SECONDS)) < 60


def test_attach_adds_links_to_an_operator_and_to_a_decorated_tasks_operator():
    import pendulum

    from include.shopstream.platform.compat import DAG, EmptyOperator, task

    @task
    def write_features() -> str:
        return "s3://shopstream/features/customer/ds=2026-11-16/features.parquet"

    with DAG("links_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        plain = EmptyOperator(task_id="plain")
        written = write_features()
    report, chart, features = links.DailyReportLink(), links.RevenueChartLink(), links.FeaturesLink()
    assert links.attach(plain, report) is plain
    links.attach(plain, chart)
    assert [type(link) for link in plain.operator_extra_links] == [links.DailyReportLink, links.RevenueChartLink]
    assert links.attach(written, features) is written
    assert list(written.operator.operator_extra_links) == [features]
