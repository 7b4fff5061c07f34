"""Operator extra links: what a task wrote to the lake, one click from its task instance in the UI.

A task that writes a report, a chart, the features or the quality results returns the object's
``s3://`` URI; its link reads that return value and answers a presigned URL for the object,
valid for an hour, through the Amazon provider's ``S3Hook`` on the lake connection (locally
the moto endpoint). Before the task has written anything the link is empty, and the UI shows
the button disabled.

A return value is data: task code writes it and a user with XCom edit rights can change it. So a
link presigns only an object of its own files in the output registry (``outputs.py``), in the
lake bucket; any other bucket or key gives no link, as the lake connection's credentials could
read far more than the reports.

The classes are registered by ``plugins/shopstream_links.py``: Airflow's webserver only
rebuilds links whose classes a plugin names. ``attach`` puts links on one task.
"""

from __future__ import annotations

import mimetypes
import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import attr

from include.shopstream.platform import outputs
from include.shopstream.platform.compat import BaseOperatorLink
from include.shopstream.platform.names import BUCKET

if TYPE_CHECKING:
    from include.shopstream.platform.compat import BaseOperator

PRESIGNED_SECONDS = 3600


def s3_uri_in(value: Any, field: str | None) -> str | None:
    """The ``s3://`` URI in a task's return value: a URI, a dict holding one, or an Astro SDK File."""
    if field is not None:
        value = value.get(field) if isinstance(value, dict) else None
    if value is not None and not isinstance(value, str):
        value = getattr(value, "path", None)
    if isinstance(value, str) and value.startswith("s3://") and "/" in value.removeprefix("s3://"):
        return value
    return None


# What a browser shows in the tab rather than saves; the rest opens as a download.
SHOWN_INLINE = ("image/png", "text/csv", "application/json")


def response_headers(key: str) -> dict[str, str]:
    """The Content-Type and Content-Disposition the presigned GET asks S3 to answer with.

    Objects are written without a content type (S3 then says ``binary/octet-stream`` and the
    browser downloads even the chart), so the link names it from the file's extension.
    """
    filename = key.rsplit("/", 1)[-1]
    kind = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    disposition = "inline" if kind in SHOWN_INLINE else "attachment"
    return {"ResponseContentType": kind, "ResponseContentDisposition": content_disposition(disposition, filename)}


# RFC 5987's attr-char: what ext-value carries unencoded.
_ATTR_CHARS = "!#$&+.^_`|~-"


def content_disposition(disposition: str, filename: str) -> str:
    """``disposition; filename="..."`` with a plain ASCII fallback, plus RFC 6266's ``filename*``
    (UTF-8, percent-encoded) when the name has anything else: quotes, ``;``, CR/LF or non-ASCII
    would otherwise end the parameter or the header early."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename).strip(".") or "download"
    header = f'{disposition}; filename="{fallback}"'
    if fallback != filename:
        header += "; filename*=UTF-8''" + quote(filename, safe=_ATTR_CHARS)
    return header


def lake_object(uri: str, files: tuple[outputs.LakeFile, ...]) -> str | None:
    """The key of ``uri`` if it is an object of one of ``files`` in the lake bucket, else None."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if bucket == BUCKET and any(file.holds(key) for file in files):
        return key
    return None


def presigned_url(uri: str, expires_in: int = PRESIGNED_SECONDS) -> str:
    """A GET URL for ``s3://bucket/key`` that a browser can open without credentials."""
    from include.shopstream.platform.lake import lake_hook

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    url = lake_hook().generate_presigned_url(
        client_method="get_object",
        params={"Bucket": bucket, "Key": key, **response_headers(key)},
        expires_in=expires_in,
    )
    return url or ""


@attr.s(auto_attribs=True)
class LakeObjectLink(BaseOperatorLink):
    """Opens the lake object named by the task's return value (``field`` of it, if a dict)."""

    name: ClassVar[str] = "Open in the lake"
    field: ClassVar[str | None] = None
    files: ClassVar[tuple[outputs.LakeFile, ...]] = ()  # what the link may open

    def uri(self, ti_key) -> str | None:
        from include.shopstream.platform.compat import xcom_value

        uri = s3_uri_in(xcom_value(ti_key), self.field)
        return uri if uri and lake_object(uri, self.files) else None

    def get_link(self, operator: BaseOperator, *, ti_key) -> str:
        uri = self.uri(ti_key)
        return presigned_url(uri) if uri else ""


class DailyReportLink(LakeObjectLink):
    name = "Daily report (CSV)"
    field = "csv"
    files = (outputs.DAILY_REPORT_CSV,)


class RevenueChartLink(LakeObjectLink):
    name = "Revenue chart, 30 days (PNG)"
    field = "chart"
    files = (outputs.REVENUE_CHART,)


class FeaturesLink(LakeObjectLink):
    name = "Customer features (Parquet)"
    files = (outputs.FEATURES_FILE,)


class QualityResultsLink(LakeObjectLink):
    name = "Quality results (JSON)"
    field = "results"
    files = (outputs.QUALITY_RESULTS,)


ALL = (DailyReportLink, RevenueChartLink, FeaturesLink, QualityResultsLink)


def attach(task, *links: LakeObjectLink):
    """Give ``task`` (an operator, or the output of a decorated task) these extra links."""
    operator = getattr(task, "operator", task)
    operator.operator_extra_links = (*operator.operator_extra_links, *links)
    return task
