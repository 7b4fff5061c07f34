"""A mocked S3 (moto server) for local development and tests.

moto keeps objects in memory only. So that a second ``make run`` picks up where the first
stopped, the local runner snapshots the buckets to the state folder when it stops and loads
them back when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localdev.processes import Service, launch

# moto accepts any credentials; these make the local nature of every request obvious.
ACCESS_KEY = "local-dev-access-key"
SECRET_KEY = "local-dev-secret-key"
REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint_url: str
    service: Service | None = None

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def ensure_bucket(self, name: str) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if name not in existing:
            client.create_bucket(Bucket=name)

    def snapshot(self, directory: Path) -> int:
        """Write every object of every bucket under ``directory``; return the object count."""
        client = self.client()
        count = 0
        for bucket in client.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                for obj in page.get("Contents", []):
                    target = directory / name / obj["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(name, obj["Key"], str(target))
                    count += 1
        return count

    def restore(self, directory: Path) -> int:
        """Upload a snapshot written by :meth:`snapshot`; return the object count."""
        if not directory.is_dir():
            return 0
        client = self.client()
        count = 0
        for bucket_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
            self.ensure_bucket(bucket_dir.name)
            for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
                client.upload_file(str(path), bucket_dir.name, path.relative_to(bucket_dir).as_posix())
                count += 1
        return count

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


def start(port: int, log_path: Path, host: str = "127.0.0.1") -> S3Server:
    """Start a moto server on ``host:port`` and wait until it answers."""
    service = launch(
        "mocked S3 (moto server)",
        "moto.server",
        ["-H", host, "-p", str(port)],
        log_path,
        host=host,
        port=port,
        setting="SHOPSTREAM_S3_PORT",
        health="/moto-api/",
        timeout=60,
    )
    return S3Server(endpoint_url=service.url, service=service)
