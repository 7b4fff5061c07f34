"""tests/containers/remove-leftovers.sh, which CI runs before anything else: it removes what a killed
earlier run left in the Docker engine, and nothing that is still someone's.

Containers are created, never started: the script sees them as a killed run leaves them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

from tests.conftest import PROJECT

# Deselected under `astro dev pytest`, whose image has no Docker engine and no localdev/.
pytestmark = pytest.mark.services

SCRIPT = PROJECT / "tests" / "containers" / "remove-leftovers.sh"
# Above Linux's largest pid (4194304), so no process ever has it: a pytest that is gone.
GONE_PID = "4194305"


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture
def engine():
    """The image to create containers from (the end-to-end tests' Postgres), when an engine answers."""
    from tests.e2e import backends

    if shutil.which("docker") is None or backends.choose() != "docker":
        pytest.skip(f"needs a Docker engine (end-to-end backend: {backends.choose()})")
    return backends.POSTGRES_IMAGE


def test_a_killed_runs_stacks_and_test_containers_go_and_live_ones_stay(engine):
    from tests.e2e.backends import LABEL

    project = f"shopstream-leftovers-{uuid.uuid4().hex[:8]}"
    created = {}

    def create(name: str, *labels: str, restart: str = "no") -> None:
        flags = [arg for label in labels for arg in ("--label", label)]
        created[name] = docker("create", "--name", f"{project}-{name}", "--restart", restart, *flags, engine, "true")

    volume = docker("volume", "create", f"{project}_data")
    network = docker("network", "create", f"{project}_airflow")
    try:
        # A stack of the image test, as `astro dev start`'s compose file makes it.
        create("scheduler", f"com.docker.compose.project={project}", restart="unless-stopped")
        create("celery-worker", f"com.docker.compose.project={project}-celery", restart="unless-stopped")
        create("someone-elses", f"com.docker.compose.project=x{project}", restart="unless-stopped")
        # End-to-end containers: of a pytest that is gone, and of this one.
        create("gone-session", f"{LABEL}={GONE_PID}")
        create("live-session", f"{LABEL}={os.getpid()}")

        result = subprocess.run(
            ["bash", str(SCRIPT)],
            env={**os.environ, "SHOPSTREAM_COMPOSE_PROJECT": project},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr

        left = set(docker("ps", "--all", "--quiet", "--no-trunc").split())
        assert {name for name, cid in created.items() if cid in left} == {"someone-elses", "live-session"}
        assert f"{project}_data" not in docker("volume", "ls", "--quiet").split()
        assert f"{project}_airflow" not in docker("network", "ls", "--format", "{{.Name}}").split()
    finally:
        for cid in created.values():
            subprocess.run(["docker", "rm", "--force", cid], capture_output=True, check=False)
        subprocess.run(["docker", "volume", "rm", volume], capture_output=True, check=False)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)
