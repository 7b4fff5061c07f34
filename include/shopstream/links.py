"""Operator extra links: what a task wrote to the lake, one click from its task instance in the UI.

A task that writes a report, a chart, the features or the quality results returns the object's
``s3://`` URI; its link reads that return value and answers a presigned URL for the object,
valid for an hour, through the Amazon provider's ``S3Hook`` on the lake connection (locally
the moto endpoint). Before the task has written anything the link is empty, and the UI shows
the button disabled.

The classes are registered by ``plugins/shopstream_links.py``: Airflow's webserver only
rebuilds links whose classes a plugin names. ``attach`` puts links on one task.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any, ClassVar

import attr
from airflow.models.baseoperatorlink import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.models.baseoperator import BaseOperator
    from airflow.models.taskinstancekey import TaskInstanceKey

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
    return {"ResponseContentType": kind, "ResponseContentDisposition": f'{disposition}; filename="{filename}"'}


def presigned_url(uri: str, expires_in: int = PRESIGNED_SECONDS) -> str:
    """A GET URL for ``s3://bucket/key`` that a browser can open without credentials."""
    from include.shopstream.lake import lake_hook

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

    def uri(self, ti_key: TaskInstanceKey) -> str | None:
        from airflow.models.xcom import XCom

        return s3_uri_in(XCom.get_value(ti_key=ti_key, key="return_value"), self.field)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        uri = self.uri(ti_key)
        return presigned_url(uri) if uri else ""


class DailyReportLink(LakeObjectLink):
    name = "Daily report (CSV)"
    field = "csv"


class RevenueChartLink(LakeObjectLink):
    name = "Revenue chart, 30 days (PNG)"
    field = "chart"


class FeaturesLink(LakeObjectLink):
    name = "Customer features (Parquet)"


class QualityResultsLink(LakeObjectLink):
    name = "Quality results (JSON)"
    field = "results"


ALL = (DailyReportLink, RevenueChartLink, FeaturesLink, QualityResultsLink)


def attach(task, *links: LakeObjectLink):
    """Give ``task`` (an operator, or the output of a decorated task) these extra links."""
    operator = getattr(task, "operator", task)
    operator.operator_extra_links = (*operator.operator_extra_links, *links)
    return task
