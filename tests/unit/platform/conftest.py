"""The platform's unit tests' shared fixture: an in-process moto S3 holding the lake's bucket."""

from __future__ import annotations

import pytest

from include.shopstream.platform.names import BUCKET


@pytest.fixture
def lake(monkeypatch):
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "aws://testing:testing@/?region_name=us-east-1")
    with moto.mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
