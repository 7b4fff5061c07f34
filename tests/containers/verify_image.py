"""Build the deployment image and verify it the way the Astro CLI uses it (`make image`, `make image-test`).

Two profiles (``--airflow-major``, or the environment's ``AIRFLOW_MAJOR``): 2 (the default) is
the project's ``Dockerfile`` on Astro Runtime 12 (Airflow 2.10.5); 3 is ``Dockerfile.airflow3``
on Astro Runtime 3.3 (Airflow 3.3.2), image ``shopstream-platform:local-airflow3`` unless
``SHOPSTREAM_IMAGE`` names another.

``build``: ``docker build`` of the profile's Dockerfile. When its ``FROM`` image can be neither
found nor pulled (no registry access), the profile's stand-in runtime (tests/containers/astro-runtime
or astro-runtime-3) is tagged with that name for this one build, then untagged.

``test``: ``build``, then
1. Airflow is still 2.10.5 after the runtime's ONBUILD installed requirements.txt,
   ``airflow dags list-import-errors`` is empty and the six DAGs are listed, in the image;
2. ``pytest .astro/test_dag_integrity_default.py`` (``astro dev parse``) and ``pytest tests/``
   (``astro dev pytest``), each in a fresh container with dags/, tests/, include/, plugins/
   and .astro/ copied in;
3. the ``astro dev start`` stack (tests/containers/astro-dev plus docker-compose.override.yml)
   comes up healthy, takes airflow_settings.yaml, and a triggered sales_core_pipeline run
   leads to successful analytics and observability runs;
4. the CeleryExecutor stack (tests/containers/celery plus the override): Redis, two workers;
   an inventory run succeeds, and a worker killed in the middle of a sales task does not stop
   its run from succeeding: the task's next try runs on the other worker. Reports a task's
   start-up on a plain and a preloaded worker. (The Dataset chain itself is step 3's.)

On the Airflow 3 profile, ``test`` runs the same steps with Airflow 3.3.2 (DAGs listed with
``--local``, as Airflow 3's CLI otherwise reads what a DAG processor stored): step 3 on
tests/containers/astro-dev-3 (api-server, scheduler, dag-processor and triggerer, healthy on
/api/v2/monitor/health), step 4 on tests/containers/celery-3 (the same with Redis and two Celery
workers that run their tasks through the API server's Execution API); Asset events in place of
Dataset events, and a killed worker's try failed by the task instance heartbeat timeout in place
of the zombie check.
``smoke`` (Airflow 3 only) builds, then runs that stack with the stand-in DAGs of
tests/containers/astro-dev-3/smoke-dags instead of dags/: a deferred task resumed by the
triggerer, a connection from airflow_settings.yaml, and an Asset-triggered run, end to end.

Every published port of the compose files is moved to a random loopback port, so the stacks
can run beside ``make run`` (which holds 8080, 5433, 5000, 8081 and 8082).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import psycopg2.extras
import yaml

PROJECT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
IMAGE = os.environ.get("SHOPSTREAM_IMAGE", "shopstream-platform:local")  # main() sets it for the profile
DAGS = {
    "sales_core_pipeline",
    "inventory_mgmt_pipeline",
    "analytics_and_reporting_pipeline",
    "observability_pipeline",
    "ingest_deadline",
    "alert_redelivery",
}
COPIED_IN = ("dags", "tests", "include", "plugins", ".astro")
COMPOSE_PROJECT = os.environ.get("SHOPSTREAM_COMPOSE_PROJECT", "shopstream-image-test")
CELERY_PROJECT = f"{COMPOSE_PROJECT}-celery"
WORKERS = ("worker-1", "worker-2")
CHAIN_TIMEOUT = 1200
FINISHED = ("success", "failed")


class VerifyError(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Profile:
    """What differs between the Airflow 2 and the Airflow 3 image, their stacks and metadata."""

    major: int
    airflow_version: str
    dockerfile: str
    default_image: str
    stand_in: str  # the build.sh name of the stand-in runtime, and the variable it exports
    stand_in_variable: str
    compose: Path
    celery_compose: Path
    heartbeat_lost: str  # what the scheduler logs when a running task's heartbeat stops (lower case)
    web_service: str
    health_path: str
    health_parts: tuple[str, ...]
    list_flags: tuple[str, ...]  # `airflow dags list` / `list-import-errors`: parse the DAG folder
    logical_date_flag: str
    logical_date_column: str
    asset_event_table: str
    dag_run_asset_event_table: str
    asset_triggered: str


PROFILES = {
    2: Profile(
        major=2,
        airflow_version="2.10.5",
        dockerfile="Dockerfile",
        default_image="shopstream-platform:local",
        stand_in="astro-runtime",
        stand_in_variable="SHOPSTREAM_RUNTIME_STAND_IN",
        compose=HERE / "astro-dev" / "docker-compose.yml",
        celery_compose=HERE / "celery" / "docker-compose.yml",
        heartbeat_lost="zombie",
        web_service="webserver",
        health_path="/health",
        health_parts=("metadatabase", "scheduler", "triggerer"),
        list_flags=(),
        logical_date_flag="--exec-date",
        logical_date_column="execution_date",
        asset_event_table="dataset_event",
        dag_run_asset_event_table="dagrun_dataset_event",
        asset_triggered="dataset_triggered",
    ),
    3: Profile(
        major=3,
        airflow_version="3.3.2",
        dockerfile="Dockerfile.airflow3",
        default_image="shopstream-platform:local-airflow3",
        stand_in="astro-runtime-3",
        stand_in_variable="SHOPSTREAM_RUNTIME3_STAND_IN",
        compose=HERE / "astro-dev-3" / "docker-compose.yml",
        celery_compose=HERE / "celery-3" / "docker-compose.yml",
        heartbeat_lost="without a heartbeat",
        web_service="api-server",
        health_path="/api/v2/monitor/health",
        health_parts=("metadatabase", "scheduler", "triggerer", "dag_processor"),
        list_flags=("--local",),
        logical_date_flag="--logical-date",
        logical_date_column="logical_date",
        asset_event_table="asset_event",
        dag_run_asset_event_table="dagrun_asset_event",
        asset_triggered="asset_triggered",
    ),
}
PROFILE = PROFILES[2]  # main() sets the profile asked for
SMOKE_DAGS_FOLDER = "/opt/shopstream/smoke-dags"  # tests/containers/astro-dev-3/smoke-dags, mounted
SMOKE_PLUGINS = "/opt/shopstream/no-plugins"  # a folder that does not exist: no plugins


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
    for line in (PROJECT / PROFILE.dockerfile).read_text().splitlines():
        if line.strip().upper().startswith("FROM "):
            return line.split()[1]
    raise VerifyError(f"{PROFILE.dockerfile} has no FROM line")


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
            step(f"{base} can be neither found nor pulled: building the stand-in runtime (tests/containers/README.md)")
            exports = run(str(HERE / "build.sh"), PROFILE.stand_in, capture=True).stdout
            stand_in = re.search(rf"{PROFILE.stand_in_variable}=(\S+)", exports).group(1)
            run("docker", "tag", stand_in, base)
            stand_in_tag = True
    try:
        step(f"docker build -f {PROFILE.dockerfile} -t {IMAGE} .")
        started = time.monotonic()
        run("docker", "build", "--quiet", "-f", PROFILE.dockerfile, "-t", IMAGE, ".")
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
    local = " ".join(PROFILE.list_flags)
    result = in_image(
        "bash",
        "-c",
        "export AIRFLOW__LOGGING__LOGGING_LEVEL=ERROR; airflow db migrate >/dev/null"
        " && echo '---version' && airflow version"
        f" && echo '---errors' && airflow dags list-import-errors {local} -o json"
        f" && echo '---dags' && airflow dags list {local} -o json",
    )
    if result.returncode != 0:
        # Airflow 3's `dags list --local` exits 1 when a file does not import: name the files.
        errors = ""
        if "---errors" in result.stdout:
            with contextlib.suppress(VerifyError):
                errors = f": {json_output(result.stdout.split('---errors', 1)[1].split('---dags', 1)[0])}"
        raise VerifyError(f"listing the DAGs in the image failed{errors[:3000]}")
    version_section, rest = result.stdout.split("---version", 1)[1].split("---errors", 1)
    errors_section, dags_section = rest.split("---dags", 1)
    version = version_section.strip().splitlines()[-1]
    if version != PROFILE.airflow_version:
        raise VerifyError(
            f"installing the requirements moved the runtime's Airflow to {version}, not {PROFILE.airflow_version}"
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


def loopback_ports(source: Path, folder: Path) -> Path:
    """A copy of the compose file ``source`` in ``folder`` whose published ports are random loopback ports.

    Relative paths in it still resolve against the project directory (``--project-directory``).
    """
    document = yaml.safe_load(source.read_text())
    for service in document.get("services", {}).values():
        if "ports" in service:
            service["ports"] = [f"127.0.0.1::{str(port).rsplit(':', 1)[-1]}" for port in service["ports"]]
    target = folder / f"{source.parent.name}-{source.name}"
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


class Stack:
    """A compose stack of the image plus docker-compose.override.yml: by default the astro-dev equivalent."""

    def __init__(self, stack_file: Path | None = None, project: str | None = None, env: dict | None = None) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="shopstream-compose-")
        sources = [stack_file or PROFILE.compose, PROJECT / "docker-compose.override.yml"]
        files = [loopback_ports(source, Path(self.folder.name)) for source in sources]
        compose = (
            ["docker", "compose"]
            if run("docker", "compose", "version", capture=True, check=False).returncode == 0
            else ["docker-compose"]
        )
        self.compose = [*compose, "--project-name", project or COMPOSE_PROJECT, "--project-directory", str(PROJECT)]
        for file in files:
            self.compose += ["-f", str(file)]
        self.env = {**os.environ, "SHOPSTREAM_IMAGE": IMAGE, **(env or {})}

    def port(self, service: str, port: int) -> int:
        return int(self("port", service, str(port), capture=True).stdout.strip().rsplit(":", 1)[1])

    def __call__(self, *args: str, capture: bool = False, check: bool = True):
        return run(*self.compose, *args, capture=capture, check=check, env=self.env)

    def airflow(self, *args: str) -> str:
        return self("exec", "-T", "scheduler", "airflow", *args, capture=True).stdout

    def metadata(self, statement: str, params=None) -> list[dict]:
        port = self.port("postgres", 5432)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", password="postgres")
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
        services = ("scheduler", "dag-processor") if PROFILE.major == 3 else ("scheduler",)
        logs = self("logs", "--tail", "40", *services, capture=True, check=False).stdout
        raise VerifyError(f"{what}: not within {timeout:.0f} s\n{logs[-4000:]}")

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.port(PROFILE.web_service, 8080)}{PROFILE.health_path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            health = json.load(response)
        states = {part: health[part]["status"] for part in PROFILE.health_parts}
        print(f"{PROFILE.health_path}: {states}", flush=True)
        return all(state == "healthy" for state in states.values())

    def run_state(self, dag_id: str, run_id: str) -> dict | None:
        rows = self.metadata("SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_id = %s", (dag_id, run_id))
        return rows[0] if rows else None

    def consumer(self, dag_id: str, source_dag_id: str, source_run_id: str) -> dict | None:
        """The latest run of ``dag_id`` that a Dataset (Airflow 3: Asset) event of ``source_run_id`` started."""
        rows = self.metadata(
            "SELECT dr.run_id, dr.state FROM dag_run dr"
            f" JOIN {PROFILE.dag_run_asset_event_table} dde ON dde.dag_run_id = dr.id"
            f" JOIN {PROFILE.asset_event_table} de ON de.id = dde.event_id"
            " WHERE dr.dag_id = %s AND dr.run_type = %s"
            " AND de.source_dag_id = %s AND de.source_run_id = %s ORDER BY dr.id DESC LIMIT 1",
            (dag_id, PROFILE.asset_triggered, source_dag_id, source_run_id),
        )
        return rows[0] if rows else None


def start_stack(stack: Stack, title: str, dags: set[str] = DAGS) -> None:
    """``up``; wait for /health; apply airflow_settings.yaml; wait for ``dags`` and the seeded source."""
    step(title)
    stack("down", "--volumes", "--remove-orphans", capture=True, check=False)
    started = time.monotonic()
    stack("up", "--detach")
    stack.wait(f"{PROFILE.health_path} reports {', '.join(PROFILE.health_parts)} healthy", stack.healthy, 300)
    print(f"healthy {time.monotonic() - started:.0f} s after `up`")

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
        raise VerifyError(f"connections missing after applying airflow_settings.yaml: {sorted(wanted - connections)}")
    pools = {p["pool"] for p in json_output(stack.airflow("pools", "list", "-o", "json"))}
    if not {"shopstream_source_db", "inventory_api"} <= pools:
        raise VerifyError(f"pools missing after applying airflow_settings.yaml: {sorted(pools)}")
    stack.wait(
        "the scheduler has registered the DAGs",
        lambda: {r["dag_id"] for r in stack.metadata("SELECT dag_id FROM dag")} >= dags,
        300,
    )
    stack.wait(
        "the source database is seeded", lambda: "seeded " in stack("logs", "source-seed", capture=True).stdout, 300
    )


def next_slot(stack: Stack, dag_id: str):
    return stack.metadata("SELECT next_dagrun FROM dag WHERE dag_id = %s", (dag_id,))[0]["next_dagrun"]


def trigger(stack: Stack, dag_id: str, run_id: str, logical_date) -> None:
    try:
        stack.airflow(
            "dags", "trigger", dag_id, PROFILE.logical_date_flag, logical_date.isoformat(), "--run-id", run_id
        )
    except VerifyError:
        runs = stack.metadata(
            f"SELECT run_id, run_type, state FROM dag_run WHERE dag_id = %s AND {PROFILE.logical_date_column} = %s",
            (dag_id, logical_date),
        )
        if [r["run_id"] for r in runs] != [run_id]:  # a run of ours is fine: the CLI's exit status was not
            raise VerifyError(f"{dag_id} could not be triggered at {logical_date}: that date has {runs}") from None
        print(f"{dag_id} run {run_id} exists although `airflow dags trigger` failed; going on")


def wait_run(stack: Stack, dag_id: str, run_id: str) -> None:
    stack.wait(
        f"{dag_id} run {run_id} finished",
        lambda: (stack.run_state(dag_id, run_id) or {}).get("state") in FINISHED,
        CHAIN_TIMEOUT,
    )
    state = stack.run_state(dag_id, run_id)["state"]
    if state != "success":
        raise VerifyError(f"{dag_id} run {run_id} ended {state}")


def run_day(stack: Stack, run_id: str, logical_date) -> tuple[float, list[tuple[str, str]]]:
    """Trigger sales_core_pipeline; wait for it and its Dataset-triggered consumers to succeed.

    Returns the seconds from the trigger to observability's success, and the (dag_id, run_id) of
    the three runs.
    """
    step(f"a triggered sales_core_pipeline run ({run_id}), then analytics and observability by Dataset")
    trigger(stack, "sales_core_pipeline", run_id, logical_date)
    for dag_id in ("sales_core_pipeline", "analytics_and_reporting_pipeline", "observability_pipeline"):
        stack.airflow("dags", "unpause", dag_id)
    started = time.monotonic()
    wait_run(stack, "sales_core_pipeline", run_id)
    print(f"sales_core_pipeline: success after {time.monotonic() - started:.0f} s")
    source = ("sales_core_pipeline", run_id)
    runs = [source]
    for dag_id in ("analytics_and_reporting_pipeline", "observability_pipeline"):
        stack.wait(
            f"a {dag_id} run started by {source[0]}'s Dataset events finished",
            lambda dag_id=dag_id, source=source: (stack.consumer(dag_id, *source) or {}).get("state") in FINISHED,
            CHAIN_TIMEOUT,
        )
        consumer = stack.consumer(dag_id, *source)
        if consumer["state"] != "success":
            raise VerifyError(f"{dag_id} run {consumer['run_id']} ended {consumer['state']}")
        elapsed = time.monotonic() - started
        print(f"{dag_id}: run {consumer['run_id']} (started by {source[0]}) succeeded after {elapsed:.0f} s")
        source = (dag_id, consumer["run_id"])
        runs.append(source)
    return elapsed, runs


def task_instances(stack: Stack, runs: list[tuple[str, str]]) -> list[dict]:
    """The task instances of ``runs`` that ran, with their start-up lag (queued to started, seconds)."""
    rows = []
    for dag_id, run_id in runs:
        rows += stack.metadata(
            "SELECT dag_id, task_id, map_index, state, hostname, try_number,"
            " EXTRACT(EPOCH FROM start_date - queued_dttm)::float AS lag,"
            " EXTRACT(EPOCH FROM start_date)::float AS started, EXTRACT(EPOCH FROM end_date)::float AS ended"
            " FROM task_instance WHERE dag_id = %s AND run_id = %s AND queued_dttm IS NOT NULL"
            " AND start_date IS NOT NULL ORDER BY start_date",
            (dag_id, run_id),
        )
    return rows


def startup(tis: list[dict], hostname: str | None = None) -> str:
    lags = [ti["lag"] for ti in tis if hostname is None or ti["hostname"] == hostname]
    if not lags:
        return "no tasks"
    return f"median {statistics.median(lags):.1f} s, max {max(lags):.1f} s over {len(lags)} tasks"


def most_in_parallel(tis: list[dict]) -> int:
    """The most task instances that were running at the same moment."""
    edges = sorted([(ti["started"], 1) for ti in tis] + [(ti["ended"], -1) for ti in tis if ti["ended"]])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


def check_stack() -> None:
    """The astro dev start equivalent on LocalExecutor: the Dataset chain of one day."""
    stack = Stack()
    try:
        start_stack(
            stack,
            f"astro dev start equivalent: docker compose up (tests/containers/{PROFILE.compose.parent.name}"
            " + the override)",
        )
        _, runs = run_day(stack, "image_test", next_slot(stack, "sales_core_pipeline"))
        tis = task_instances(stack, runs)
        preload = "; scheduler preloads the SDK" if PROFILE.major == 2 else ""
        print(f"LocalExecutor task start-up (queued to running{preload}): {startup(tis)}")
        print(f"tasks running at once, at most: {most_in_parallel(tis)}")
        print(f"retried tasks: {sum(ti['try_number'] > 1 for ti in tis)}")
    finally:
        stack("down", "--volumes", "--remove-orphans", capture=True, check=False)


def kill_worker_mid_task(stack: Stack, run_id: str, logical_date) -> None:
    """Kill the worker running one of ``run_id``'s tasks; the run must still succeed, on the other worker."""
    step(f"a worker killed in the middle of a task (sales_core_pipeline run {run_id})")
    # Resolved before the run, so that the kill follows the sighting by milliseconds: a compose
    # call per poll left a short task (extract_customers) time to finish before the kill landed.
    containers = {w: stack("ps", "-q", w, capture=True).stdout.strip() for w in WORKERS}
    pg_port = stack.port("postgres", 5432)
    # Triggered before the DAG is unpaused: unpaused first, the scheduler would take the slot itself.
    trigger(stack, "sales_core_pipeline", run_id, logical_date)
    stack.airflow("dags", "unpause", "sales_core_pipeline")
    deadline = time.monotonic() + CHAIN_TIMEOUT
    victim = None
    conn = psycopg2.connect(host="127.0.0.1", port=pg_port, user="postgres", password="postgres")
    conn.autocommit = True
    try:
        while victim is None:
            if time.monotonic() > deadline:
                raise VerifyError(f"no task of {run_id} was seen running on a worker")
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                # The task that started last is the furthest from its end.
                cur.execute(
                    "SELECT task_id, map_index, hostname, try_number FROM task_instance WHERE dag_id ="
                    " 'sales_core_pipeline' AND run_id = %s AND state = 'running' AND hostname = ANY(%s)"
                    " ORDER BY start_date DESC LIMIT 1",
                    (run_id, list(WORKERS)),
                )
                victim = cur.fetchone()
            if victim is None:
                time.sleep(0.2)
    finally:
        conn.close()
    run("docker", "kill", "--signal", "KILL", containers[victim["hostname"]], capture=True)
    killed_at, killed_utc = time.monotonic(), datetime.now(UTC)
    survivor = next(w for w in WORKERS if w != victim["hostname"])
    print(f"killed {victim['hostname']} (SIGKILL) while {victim['task_id']} try {victim['try_number']} was running")
    wait_run(stack, "sales_core_pipeline", run_id)
    killed_tries = stack.metadata(
        "SELECT task_id, map_index, try_number, hostname FROM task_instance_history WHERE dag_id ="
        " 'sales_core_pipeline' AND run_id = %s AND hostname = %s AND state = 'failed' ORDER BY task_id",
        (run_id, victim["hostname"]),
    )
    if killed_tries and not any(t["task_id"] == victim["task_id"] for t in killed_tries):
        # The task seen running finished in the instant before the kill; another on that worker did not.
        print(f"{victim['task_id']} finished just before the kill; the kill caught {killed_tries[0]['task_id']}")
        victim = dict(killed_tries[0])
    key = (run_id, victim["task_id"], victim["map_index"])
    final = stack.metadata(
        "SELECT state, hostname, try_number, start_date FROM task_instance"
        " WHERE dag_id = 'sales_core_pipeline' AND run_id = %s AND task_id = %s AND map_index = %s",
        key,
    )[0]
    killed_try = stack.metadata(
        "SELECT state, hostname FROM task_instance_history"
        " WHERE dag_id = 'sales_core_pipeline' AND run_id = %s AND task_id = %s AND map_index = %s"
        " AND try_number = %s",
        (*key, victim["try_number"]),
    )
    if final["state"] != "success" or final["hostname"] != survivor or final["try_number"] <= victim["try_number"]:
        raise VerifyError(f"{victim['task_id']} after its worker was killed: {final}; wanted a later try on {survivor}")
    if not killed_try or killed_try[0]["state"] != "failed":
        raise VerifyError(f"the killed try of {victim['task_id']} was not recorded as failed: {killed_try}")
    zombie_lines = [
        line
        for line in stack("logs", "--no-color", "scheduler", capture=True).stdout.splitlines()
        if PROFILE.heartbeat_lost in line.lower() and victim["task_id"] in line
    ]
    print(
        f"{victim['task_id']}: try {victim['try_number']} on {victim['hostname']} failed (no heartbeat),"
        f" try {final['try_number']} started on {survivor}"
        f" {(final['start_date'] - killed_utc).total_seconds():.0f} s after the kill and succeeded;"
        f" run {run_id} succeeded {time.monotonic() - killed_at:.0f} s after the kill"
    )
    for line in zombie_lines[:1]:
        print(f"  scheduler: {line.split('|', 1)[-1].strip()[:300]}")
        # Airflow 2 logs "[2026-12-06T21:40:57.584+0000]", Airflow 3 "2026-12-06T21:40:57.584701Z".
        logged = re.search(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)(?:\+0000|Z)", line)
        if logged:
            found = datetime.strptime(logged.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
            print(f"  the lost heartbeat was found {(found - killed_utc).total_seconds():.0f} s after the kill")


def check_celery() -> None:
    """The same DAGs on CeleryExecutor with two workers (tests/containers/celery, celery-3).

    The Dataset chain already ran on this image in the LocalExecutor stack; here what Celery
    changes: tasks run by worker processes of their own (an inventory run), and a worker killed in
    the middle of a sales task, whose task is failed for its lost heartbeat and retried on the
    other worker, where the run then succeeds.
    """
    stack = Stack(PROFILE.celery_compose, CELERY_PROJECT)
    started = time.monotonic()
    try:
        start_stack(
            stack,
            f"CeleryExecutor: docker compose up (tests/containers/{PROFILE.celery_compose.parent.name} + the override)",
        )
        stack.wait(
            "both Celery workers are ready",
            lambda: all(" ready." in stack("logs", "--no-color", w, capture=True).stdout for w in WORKERS),
            300,
        )
        step("an inventory_mgmt_pipeline run on the Celery workers")
        trigger(stack, "inventory_mgmt_pipeline", "image_test", next_slot(stack, "inventory_mgmt_pipeline"))
        stack.airflow("dags", "unpause", "inventory_mgmt_pipeline")
        wait_run(stack, "inventory_mgmt_pipeline", "image_test")
        tis = task_instances(stack, [("inventory_mgmt_pipeline", "image_test")])
        hosts = {ti["hostname"] for ti in tis}
        # Which worker takes a task is Celery's choice: both run tasks in the kill scenario below.
        print(f"inventory_mgmt_pipeline run image_test: success, its {len(tis)} tasks on {sorted(hosts)}")
        print(f"retried tasks: {sum(ti['try_number'] > 1 for ti in tis)}")
        worker_2_log = stack("logs", "--no-color", "worker-2", capture=True).stdout.splitlines()
        preload_line = next((line for line in worker_2_log if "preloaded" in line), "worker-2: no preload line")
        print(
            f"Celery task start-up (queued to running): worker-1 (plain): {startup(tis, 'worker-1')};"
            f" worker-2 (include/shopstream preloaded): {startup(tis, 'worker-2')}"
        )
        print(f"  {preload_line.split('|', 1)[-1].strip()}")

        kill_worker_mid_task(stack, "worker_killed", next_slot(stack, "sales_core_pipeline"))
    finally:
        stack("down", "--volumes", "--remove-orphans", capture=True, check=False)
    print(f"the Celery stack added {time.monotonic() - started:.0f} s to the image test")


SMOKE_DAGS = {"image_smoke", "image_smoke_consumer"}


def check_smoke() -> None:
    """The Airflow 3 stack runs the stand-in DAGs of astro-dev-3/smoke-dags end to end."""
    # Without plugins/: its airflow_local_settings.py applies the project's DAG policy, which
    # is the project's to check (test), not the stack's.
    stack = Stack(
        env={"SHOPSTREAM_AIRFLOW_DAGS_FOLDER": SMOKE_DAGS_FOLDER, "SHOPSTREAM_AIRFLOW_PLUGINS_FOLDER": SMOKE_PLUGINS}
    )
    try:
        start_stack(
            stack,
            "smoke: docker compose up (tests/containers/astro-dev-3 + the override) with the DAGs of smoke-dags/",
            dags=SMOKE_DAGS,
        )
        step("image_smoke (a deferred task, a connection, an Asset event), then image_smoke_consumer by that event")
        for dag_id in sorted(SMOKE_DAGS):
            stack.airflow("dags", "unpause", dag_id)
        run_id = "image_smoke"
        started = time.monotonic()
        trigger(stack, "image_smoke", run_id, datetime.now(UTC).replace(microsecond=0))
        wait_run(stack, "image_smoke", run_id)
        print(f"image_smoke: success after {time.monotonic() - started:.0f} s")
        stack.wait(
            "an image_smoke_consumer run started by image_smoke's Asset event finished",
            lambda: (stack.consumer("image_smoke_consumer", "image_smoke", run_id) or {}).get("state") in FINISHED,
            300,
        )
        consumer = stack.consumer("image_smoke_consumer", "image_smoke", run_id)
        if consumer["state"] != "success":
            raise VerifyError(f"image_smoke_consumer run {consumer['run_id']} ended {consumer['state']}")
        print(
            f"image_smoke_consumer: run {consumer['run_id']} (started by the Asset event) succeeded"
            f" after {time.monotonic() - started:.0f} s"
        )
        tis = task_instances(stack, [("image_smoke", run_id), ("image_smoke_consumer", consumer["run_id"])])
        for ti in tis:
            print(f"  {ti['dag_id']}.{ti['task_id']}: {ti['state']}, try {ti['try_number']}, on {ti['hostname']}")
        published = stack.metadata(
            "SELECT value::text AS value FROM xcom WHERE dag_id = 'image_smoke' AND run_id = %s"
            " AND task_id = 'publish' AND key = 'return_value'",
            (run_id,),
        )
        print(f"  image_smoke.publish returned {published[0]['value'] if published else None}")
    finally:
        stack("down", "--volumes", "--remove-orphans", capture=True, check=False)


def main(argv: list[str] | None = None) -> int:
    global PROFILE, IMAGE, COMPOSE_PROJECT, CELERY_PROJECT
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # stacks: build, then only the compose stacks (steps 3 and 4); celery: build, then only step 4;
    # smoke (Airflow 3): build, then the Airflow 3 stack with the stand-in DAGs.
    parser.add_argument("action", choices=("build", "test", "stacks", "celery", "smoke"))
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="verify the image as it is, without building it first (it must exist: `make image` built it)",
    )
    parser.add_argument(
        "--airflow-major",
        type=int,
        choices=sorted(PROFILES),
        default=int(os.environ.get("AIRFLOW_MAJOR") or 2),
        help="the profile: 2 (Dockerfile, Airflow 2.10; the default) or 3 (Dockerfile.airflow3, Airflow 3.3);"
        " default: the environment's AIRFLOW_MAJOR",
    )
    args = parser.parse_args(argv)
    # Stopped from outside (make's or CI's SIGTERM): leave through the `finally` that takes the
    # stack down, as Ctrl-C does, rather than leave it for the engine to restart.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    PROFILE = PROFILES[args.airflow_major]
    IMAGE = os.environ.get("SHOPSTREAM_IMAGE") or PROFILE.default_image
    if PROFILE.major == 3 and "SHOPSTREAM_COMPOSE_PROJECT" not in os.environ:
        COMPOSE_PROJECT = f"{COMPOSE_PROJECT}-airflow3"  # beside the Airflow 2 profile's stacks
        CELERY_PROJECT = f"{COMPOSE_PROJECT}-celery"
    if PROFILE.major == 2 and args.action == "smoke":
        parser.error("smoke runs the Airflow 3 stack: --airflow-major 3 (or AIRFLOW_MAJOR=3)")
    if shutil.which("docker") is None or run("docker", "info", capture=True, check=False).returncode != 0:
        print(
            "error: no Docker engine answers; start one (tests/containers/docker-engine.sh installs and starts one)",
            file=sys.stderr,
        )
        return 1
    if args.no_build and args.action == "build":
        parser.error("--no-build leaves nothing for build to do")
    if args.no_build and not image_present(IMAGE):
        print(f"error: --no-build, but there is no image {IMAGE}: build it first (make image)", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        if args.no_build:
            step(f"{IMAGE} as built before (--no-build)")
        else:
            build()
        if args.action == "test":
            check_dags()
            check_pytest()
        if args.action in ("test", "stacks"):
            check_stack()
            check_celery()
        if args.action == "celery":
            check_celery()
        if args.action == "smoke":
            check_smoke()
    except VerifyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    step(f"{args.action} (Airflow {PROFILE.airflow_version}, {IMAGE}): passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
