"""One-shot set-up of the compose services for `astro dev start`: the lake's bucket.

Standard library only, so it runs in a plain ``python:3.11-slim`` container.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

BUCKET = "shopstream"


def create_bucket(endpoint: str, bucket: str = BUCKET, attempts: int = 60) -> None:
    """Create ``bucket`` on a moto server (which does not check signatures), retrying until it answers."""
    for _ in range(attempts):
        try:
            request = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")
            with urllib.request.urlopen(request, timeout=5):
                print(f"bucket {bucket} ready at {endpoint}")
                return
        except urllib.error.HTTPError as err:
            if err.code == 409:  # already exists and owned by us
                print(f"bucket {bucket} already exists at {endpoint}")
                return
            raise
        except OSError:
            time.sleep(1)
    sys.exit(f"error: the mocked S3 at {endpoint} did not answer")


if __name__ == "__main__":
    create_bucket(os.environ.get("S3_ENDPOINT_URL", "http://moto:5000"))
