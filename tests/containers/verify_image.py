"""Build the deployment image and verify it the way the Astro CLI uses it (`make image`, `make image-test`).

``build``: ``docker build`` of the project's Dockerfile. When its ``FROM`` image can be neither
found nor pulled (no registry access), the stand-in runtime (tests/containers/astro-runtime)
is tagged with that name for this one build, then untagged.

``test``: ``build``, then
1. Airflow is still 2.10.5 after the runtime's ONBUILD installed requirements.txt,
   ``airflow dags list-import-errors`` is empty and the five DAGs are listed, in the image;
2. ``pytest .astro/test_dag_integrity_default.py`` (``astro dev parse``) and ``pytest tests/``
   (``astro dev pytest``), each in a fresh container with dags/, tests/, include/, plugins/
   and .astro/ copied in;
3. the ``astro dev start`` stack (tests/containers/astro-dev plus docker-compose.override.yml)
   comes up healthy, takes airflow_settings.yaml, and a triggered sales_core_pipeline run
   leads to successful analytics and observability runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg2
import psycopg2.extras

PROJECT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = os.environ.get("SHOPSTREAM_IMAGE", "shopstream-platform:local")
DAGS = {
    "sales_core_pipeline",
    "inventory_mgmt_pipeline",
    "analytics_and_reporting_pipeline",
    "observability_pipeline",
    "ingest_deadline",
}
AIRFLOW_VERSION = "2.10.5"
COPIED_IN = ("dags", "tests", "include", "plugins", ".astro")
COMPOSE_PROJECT = "shopstream-image-test"
CHAIN_TIMEOUT = 1200
FINISHED = ("success", "failed")


class VerifyError(RuntimeError):
    pass


def step(message: str) -> None:
    print(f"\n== image: {message}", flush=True)


def run(*argv: str, capture: bool = False, check: bool = True, env: dict | None = None, timeout: float = 1800):
    result = subprocess.run(
        list(argv), cwd=PROJECT, text=True, capture_output=capture, env=env, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()[-3000:] if capture else ""
        raise VerifyError(f"`{' '.join(argv)}` exited with {result.returncode}\n{detail}")
    return result


def base_image() -> str:
    for line in (PROJECT / "Dockerfile").read_text().splitlines():
        if line.strip().upper().startswith("FROM "):
            return line.split()[1]
    raise VerifyError("the Dockerfile has no FROM line")


def image_present(name: str) -> bool:
    return run("docker", "image", "inspect", name, capture=True, check=False).returncode == 0


def build() -> None:
    base = base_image()
    stand_in_tag = False
    if not image_present(base):
        step(f"pulling {base}")
        try:
            pulled = run("docker", "pull", "--quiet", base, capture=True, check=False, timeout=300).returncode == 0
        except subprocess.TimeoutExpired:
            pulled = False
        if not pulled:
            step(f"{base} cannot be pulled here: building the stand-in runtime (tests/containers/README.md)")
            exports = run(str(HERE / "build.sh"), "astro-runtime", capture=True).stdout
            stand_in = re.search(r"SHOPSTREAM_RUNTIME_STAND_IN=(\S+)", exports).group(1)
            run("docker", "tag", stand_in, base)
            stand_in_tag = True
    try:
        step(f"docker build -t {IMAGE} .")
        started = time.monotonic()
        run("docker", "build", "--quiet", "-t", IMAGE, ".")
        print(f"built {IMAGE} in {time.monotonic() - started:.0f} s")
    finally:
        if stand_in_tag:
            run("docker", "rmi", base, capture=True, check=False)


def in_image(*command: str, copy_project: bool = False) -> subprocess.CompletedProcess:
    """Run ``command`` in a fresh container of the image; with the project folders copied in."""
    container = run("docker", "create", IMAGE, *command, capture=True).stdout.strip()
    try:
        if copy_project:
            for folder in COPIED_IN:
                run("docker", "cp", str(PROJECT / folder), f"{container}:/usr/local/airflow/", capture=True)
        result = run("docker", "start", "--attach", container, capture=True, check=False)
        print((result.stdout + result.stderr).strip()[-4000:])
        return result
    finally:
        run("docker", "rm", "--force", container, capture=True, check=False)


def json_output(section: str):
    """The JSON document an ``airflow ... -o json`` command printed among its log lines."""
    for line in reversed(section.strip().splitlines()):
        if line.startswith(("[", "{")):
            try:
                return json.loads(line)
            except ValueError:
                continue
    if "No data found" in section:
        return []
    raise VerifyError(f"no JSON in the output:\n{section[-2000:]}")


def check_dags() -> None:
    step("airflow dags list-import-errors / dags list, in the image")
    result = in_image(
        "bash",
        "-c",
        "export AIRFLOW__LOGGING__LOGGING_LEVEL=ERROR; airflow db migrate >/dev/null"
        " && echo '---version' && airflow version"
        " && echo '---errors' && airflow dags list-import-errors -o json"
        " && echo '---dags' && airflow dags list -o json",
    )
    if result.returncode != 0:
        raise VerifyError("listing the DAGs in the image failed")
    version_section, rest = result.stdout.split("---version", 1)[1].split("---errors", 1)
    errors_section, dags_section = rest.split("---dags", 1)
    version = version_section.strip().splitlines()[-1]
    if version != AIRFLOW_VERSION:
        raise VerifyError(
            f"installing requirements.txt moved the runtime's Airflow to {version}, not {AIRFLOW_VERSION}"
        )
    errors = json_output(errors_section)
    dags = {d["dag_id"] for d in json_output(dags_section)}
    if errors:
        raise VerifyError(f"import errors in the image: {errors}")
    if not dags >= DAGS:
        raise VerifyError(f"the image lists {sorted(dags)}, missing {sorted(DAGS - dags)}")
    print(f"Airflow {version}; no import errors; DAGs: {', '.join(sorted(dags))}")


def check_pytest() -> None:
    step("astro dev parse: pytest .astro/test_dag_integrity_default.py, in a fresh container")
    if in_image(
        "pytest", "-p", "no:cacheprovider", ".astro/test_dag_integrity_default.py", copy_project=True
    ).returncode:
        raise VerifyError("the DAG integrity test (astro dev parse) failed in the image")
    step("astro dev pytest: pytest tests/, in a fresh container")
    result = in_image("pytest", "-p", "no:cacheprovider", "tests/", copy_project=True)
    if result.returncode:
        raise VerifyError("pytest tests/ (astro dev pytest) failed in the image")
    summary = (result.stdout + result.stderr).strip().splitlines()[-1]
    if not re.search(r"\d+ passed", summary):
        raise VerifyError(f"pytest tests/ passed nothing in the image: {summary}")


class Stack:
    """The astro-dev-equivalent compose stack."""

    def __init__(self) -> None:
        files = [HERE / "astro-dev" / "docker-compose.yml", PROJECT / "docker-compose.override.yml"]
        compose = (
            ["docker", "compose"]
            if run("docker", "compose", "version", capture=True, check=False).returncode == 0
            else ["docker-compose"]
        )
        self.compose = [*compose, "--project-name", COMPOSE_PROJECT, "--project-directory", str(PROJECT)]
        for file in files:
            self.compose += ["-f", str(file)]
        self.env = {**os.environ, "SHOPSTREAM_IMAGE": IMAGE}
        self.port = int(os.environ.get("SHOPSTREAM_WEBSERVER_PORT", "8080"))

    def __call__(self, *args: str, capture: bool = False, check: bool = True):
        return run(*self.compose, *args, capture=capture, check=check, env=self.env)

    def airflow(self, *args: str) -> str:
        return self("exec", "-T", "scheduler", "airflow", *args, capture=True).stdout

    def metadata(self, statement: str, params=None) -> list[dict]:
        port = self("port", "postgres", "5432", capture=True).stdout.strip().rsplit(":", 1)[1]
        conn = psycopg2.connect(host="127.0.0.1", port=int(port), user="postgres", password="postgres")
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(statement, params)
                return [dict(r) for r in cur.fetchall()]
        finally:
            conn.close()

    def wait(self, what: str, predicate, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(5)
        logs = self("logs", "--tail", "40", "scheduler", capture=True, check=False).stdout
        raise VerifyError(f"{what}: not within {timeout:.0f} s\n{logs[-4000:]}")

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as response:
            health = json.load(response)
        parts = ("metadatabase", "scheduler", "triggerer")
        states = {part: health[part]["status"] for part in parts}
        print(f"/health: {states}", flush=True)
        return all(health[p]["status"] == "healthy" for p in parts)

    def run_state(self, dag_id: str, run_id: str) -> dict | None:
        rows = self.metadata("SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
        return rows[0] if rows else None

    def consumer(self, dag_id: str, source_dag_id: str, source_run_id: str) -> dict | None:
        """The latest run of ``dag_id`` that a Dataset event of ``source_run_id`` started."""
        rows = self.metadata(
            "SELECT dr.run_id, dr.state FROM dag_run dr"
            " JOIN dagrun_dataset_event dde ON dde.dag_run_id = dr.id"
            " JOIN dataset_event de ON de.id = dde.event_id"
            " WHERE dr.dag_id = %s AND dr.run_type = 'dataset_triggered'"
            " AND de.source_dag_id = %s AND de.source_run_id = %s ORDER BY dr.id DESC LIMIT 1",
            (dag_id, source_dag_id, source_run_id),
        )
        return rows[0] if rows else None


def check_stack() -> None:
    stack = Stack()
    step("astro dev start equivalent: docker compose up (tests/containers/astro-dev + docker-compose.override.yml)")
    stack("down", "--volumes", "--remove-orphans", capture=True, check=False)
    try:
        stack("up", "--detach")
        stack.wait("/health reports the metadatabase, scheduler and triggerer healthy", stack.healthy, 300)

        step("airflow_settings.yaml, applied in the scheduler container")
        print(
            stack(
                "exec",
                "-T",
                "scheduler",
                "python",
                "-m",
                "localdev.settings",
                "apply",
                "airflow_settings.yaml",
                capture=True,
            ).stdout.strip()
        )
        connections = {c["conn_id"] for c in json_output(stack.airflow("connections", "list", "-o", "json"))}
        wanted = {
            "shopstream_source",
            "shopstream_warehouse",
            "aws_default",
            "inventory_api",
            "slack_alerts",
            "pagerduty_alerts",
        }
        if not wanted <= connections:
            raise VerifyError(
                f"connections missing after applying airflow_settings.yaml: {sorted(wanted - connections)}"
            )
        pools = {p["pool"] for p in json_output(stack.airflow("pools", "list", "-o", "json"))}
        if not {"shopstream_source_db", "inventory_api"} <= pools:
            raise VerifyError(f"pools missing after applying airflow_settings.yaml: {sorted(pools)}")

        step("a triggered sales_core_pipeline run, then analytics and observability by Dataset")
        stack.wait(
            "the scheduler has registered the DAGs",
            lambda: {r["dag_id"] for r in stack.metadata("SELECT dag_id FROM dag")} >= DAGS,
            300,
        )
        stack.wait(
            "the source database is seeded", lambda: "seeded " in stack("logs", "source-seed", capture=True).stdout, 300
        )
        slot = stack.metadata("SELECT next_dagrun FROM dag WHERE dag_id = 'sales_core_pipeline'")[0]["next_dagrun"]
        stack.airflow(
            "dags", "trigger", "sales_core_pipeline", "--exec-date", slot.isoformat(), "--run-id", "image_test"
        )
        for dag_id in ("sales_core_pipeline", "analytics_and_reporting_pipeline", "observability_pipeline"):
            stack.airflow("dags", "unpause", dag_id)
        started = time.monotonic()
        stack.wait(
            "sales_core_pipeline run image_test finished",
            lambda: (stack.run_state("sales_core_pipeline", "image_test") or {}).get("state") in FINISHED,
            CHAIN_TIMEOUT,
        )
        sales = stack.run_state("sales_core_pipeline", "image_test")
        if sales["state"] != "success":
            raise VerifyError(f"sales_core_pipeline ended {sales['state']} in the compose stack")
        print(f"sales_core_pipeline: success after {time.monotonic() - started:.0f} s")
        source = ("sales_core_pipeline", "image_test")
        for dag_id in ("analytics_and_reporting_pipeline", "observability_pipeline"):
            stack.wait(
                f"a {dag_id} run started by {source[0]}'s Dataset events finished",
                lambda dag_id=dag_id, source=source: (stack.consumer(dag_id, *source) or {}).get("state") in FINISHED,
                CHAIN_TIMEOUT,
            )
            consumer = stack.consumer(dag_id, *source)
            if consumer["state"] != "success":
                raise VerifyError(f"{dag_id} run {consumer['run_id']} ended {consumer['state']} in the compose stack")
            elapsed = time.monotonic() - started
            print(f"{dag_id}: run {consumer['run_id']} (started by {source[0]}) succeeded after {elapsed:.0f} s")
            source = (dag_id, consumer["run_id"])
    finally:
        stack("down", "--volumes", "--remove-orphans", capture=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("build", "test"))
    args = parser.parse_args(argv)
    if shutil.which("docker") is None or run("docker", "info", capture=True, check=False).returncode != 0:
        print(
            "error: no Docker engine answers; start one (tests/containers/docker-engine.sh installs and starts one)",
            file=sys.stderr,
        )
        return 1
    started = time.monotonic()
    try:
        build()
        if args.action == "test":
            check_dags()
            check_pytest()
            check_stack()
    except VerifyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    step(f"{args.action}: passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
