"""Where the end-to-end tests get Postgres and the mocked S3: Docker containers or local processes.

``SHOPSTREAM_TEST_BACKEND`` chooses:

- ``docker``: testcontainers starts ``SHOPSTREAM_TEST_POSTGRES_IMAGE`` and
  ``SHOPSTREAM_TEST_S3_IMAGE``; no reachable Docker engine is a failure.
- ``local``: the launchers of ``make run`` (embedded Postgres, a moto server process).
- ``auto`` (the default): ``docker`` when an engine answers, otherwise ``local``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from localdev import postgres, s3
from localdev.processes import free_port

BACKEND_VARIABLE = "SHOPSTREAM_TEST_BACKEND"
BACKENDS = ("auto", "docker", "local")
POSTGRES_IMAGE = os.environ.get("SHOPSTREAM_TEST_POSTGRES_IMAGE", "postgres:16")
S3_IMAGE = os.environ.get("SHOPSTREAM_TEST_S3_IMAGE", "motoserver/moto:5.1.18")
# Every container of a test session carries this label, so that leftovers are easy to find.
LABEL = "org.shopstream.test-session"
# Local throwaway credentials of the test database container.
PG_USER = PG_PASSWORD = "postgres"

# Ryuk, testcontainers' reaper, is one more image to pull; the fixtures remove their own containers.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


class BackendError(RuntimeError):
    """The chosen backend cannot run here."""


def requested() -> str:
    value = os.environ.get(BACKEND_VARIABLE, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise BackendError(f"{BACKEND_VARIABLE} must be one of {', '.join(BACKENDS)}; got {value!r}")
    return value


def docker_problem() -> str | None:
    """Why no Docker engine can be used, or None when one answers."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as err:  # noqa: BLE001 - any failure means: no engine to use
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


def choose() -> str:
    """The backend this session uses: ``docker`` or ``local``."""
    wanted = requested()
    if wanted == "local":
        return "local"
    problem = docker_problem()
    if problem is None:
        return "docker"
    if wanted == "docker":
        raise BackendError(f"{BACKEND_VARIABLE}=docker but no Docker engine answers: {problem}")
    return "local"


def describe() -> str:
    """One line for the pytest header."""
    try:
        backend = choose()
    except BackendError as err:
        return f"end-to-end backend: unavailable ({err})"
    if backend == "docker":
        return f"end-to-end backend: docker (testcontainers: {POSTGRES_IMAGE}, {S3_IMAGE})"
    why = "chosen" if requested() == "local" else "no Docker engine answers"
    return f"end-to-end backend: local launchers (embedded Postgres, moto server process; {why})"


@dataclass
class Services:
    backend: str
    pg: postgres.PostgresServer
    lake: s3.S3Server

    @property
    def s3_port(self) -> int:
        return int(self.lake.endpoint_url.rsplit(":", 1)[1])


@contextlib.contextmanager
def started(backend: str, workdir: Path) -> Iterator[Services]:
    """Postgres and the mocked S3 for one test session; both are gone when the block ends."""
    starter = _docker if backend == "docker" else _local
    with starter(workdir) as services:
        yield services


@contextlib.contextmanager
def _local(workdir: Path) -> Iterator[Services]:
    pg = postgres.start_embedded(workdir / "postgres", free_port(), workdir / "postgres.log")
    try:
        lake = s3.start(free_port(), workdir / "s3.log")
        try:
            yield Services("local", pg, lake)
        finally:
            lake.stop()
    finally:
        pg.stop()


def remove_leftovers() -> list[str]:
    """Remove containers of earlier test sessions whose pytest process is gone (killed, not failed)."""
    import docker

    from localdev.processes import pid_alive

    client = docker.from_env()
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        owner = container.labels.get(LABEL, "")
        if not (owner.isdigit() and pid_alive(int(owner))):
            container.remove(force=True)
            removed.append(container.name)
    client.close()
    return removed


@contextlib.contextmanager
def _docker(workdir: Path) -> Iterator[Services]:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HttpWaitStrategy

    remove_leftovers()
    session = str(os.getpid())
    database = (
        PostgresContainer(POSTGRES_IMAGE, username=PG_USER, password=PG_PASSWORD, dbname="postgres")
        # A test database: durability is not worth its fsyncs; LocalExecutor opens many connections.
        .with_command("postgres -c fsync=off -c synchronous_commit=off -c max_connections=200")
        .with_kwargs(labels={LABEL: session})
    )
    moto = (
        DockerContainer(S3_IMAGE)
        .with_exposed_ports(5000)
        .waiting_for(HttpWaitStrategy(5000, "/moto-api/").with_startup_timeout(120))
        .with_kwargs(labels={LABEL: session})
    )
    with contextlib.ExitStack() as stack:
        for container in (database, moto):
            try:
                stack.enter_context(container)
            except Exception as err:
                raise BackendError(
                    f"cannot start a container of {container.image}: {str(err).splitlines()[0] if str(err) else err!r}."
                    " Without registry access, build stand-ins with tests/containers/build.sh"
                ) from err
        pg = postgres.PostgresServer(
            host=database.get_container_host_ip(),
            port=int(database.get_exposed_port(5432)),
            user=PG_USER,
            password=PG_PASSWORD,
        )
        endpoint = f"http://{moto.get_container_host_ip()}:{moto.get_exposed_port(5000)}"
        yield Services("docker", pg, s3.S3Server(endpoint_url=endpoint))
