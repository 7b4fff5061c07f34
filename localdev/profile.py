"""What differs between the Airflow 2 and Airflow 3 platforms, in one place.

``make run`` uses the interpreter of the chosen virtualenv (``AIRFLOW_MAJOR=2``: ``.venv``,
Airflow 2.10; ``AIRFLOW_MAJOR=3``: ``.venv-airflow3``, Airflow 3.3), and :func:`current` picks the
profile from the Airflow installed there. Everything else in ``localdev`` and the tests asks the
profile rather than testing the version itself:

- the processes: Airflow 2 runs ``webserver``, ``scheduler`` (which parses the DAGs) and
  ``triggerer``; Airflow 3 runs ``api-server`` (UI, REST API and the execution API that task
  processes report to), ``scheduler``, ``dag-processor`` (DAG parsing is its own process) and
  ``triggerer``;
- the settings of those processes and the secrets they share (:meth:`Profile.airflow_env`);
- logging in: Airflow 2's FAB user (``airflow users create``) and REST API v1 with basic auth;
  Airflow 3's simple auth manager (users in ``[core] simple_auth_manager_users``, passwords in a
  JSON file) and REST API v2 with a bearer token from ``POST /auth/token`` (:func:`call_api`);
- the metadata database's names: Airflow 3 renamed ``execution_date`` to ``logical_date`` and the
  Dataset tables to Asset tables (:meth:`Profile.sql`);
- the history backfill: Airflow 2's ``airflow dags backfill`` is a process that runs the intervals;
  Airflow 3's ``airflow backfill create`` records a backfill that the scheduler runs.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from localdev import LocalDevError

ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # local development only: the stack listens on loopback
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


@dataclass(frozen=True)
class AirflowProcess:
    """One long-running Airflow process of the platform: its name, CLI arguments and log file."""

    name: str
    args: tuple[str, ...]
    log: str
    web: bool = False  # serves the UI and the REST API


# Airflow 2 names in the metadata database and their Airflow 3 names, longest first so that a
# name is never rewritten through a shorter one it contains.
AIRFLOW3_NAMES = {
    "dag_schedule_dataset_reference": "dag_schedule_asset_reference",
    "task_outlet_dataset_reference": "task_outlet_asset_reference",
    "dagrun_dataset_event": "dagrun_asset_event",
    "dataset_dag_run_queue": "asset_dag_run_queue",
    "dataset_triggered": "asset_triggered",
    "execution_date": "logical_date",
    "dataset_event": "asset_event",
    "dataset_id": "asset_id",
    "dataset": "asset",
}


@dataclass(frozen=True)
class Profile:
    """The Airflow 2.10 profile; :class:`Airflow3` overrides what Airflow 3.3 does differently."""

    major: int = 2
    state_dir_name: str = ".local"
    api_prefix: str = "/api/v1"
    health_path: str = "/health"
    healthy_parts: tuple[str, ...] = ("metadatabase", "scheduler", "triggerer")
    processes: tuple[AirflowProcess, ...] = (
        AirflowProcess("Airflow scheduler", ("scheduler", "--skip-serve-logs"), "scheduler.log"),
        AirflowProcess("Airflow triggerer", ("triggerer", "--skip-serve-logs"), "triggerer.log"),
        AirflowProcess("Airflow webserver", ("webserver",), "webserver.log", web=True),
    )
    # Secrets made once per state folder (secrets.json).
    secret_names: tuple[str, ...] = ("fernet_key", "secret_key")
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"Airflow {self.major}"

    @property
    def web(self) -> AirflowProcess:
        return next(process for process in self.processes if process.web)

    def process(self, name: str) -> AirflowProcess:
        """The process whose CLI command is ``name`` (``scheduler``, ``dag-processor``, ...)."""
        for process in self.processes:
            if process.args[0] == name:
                return process
        raise KeyError(f"{self.label} runs no {name}")

    def process_names(self) -> list[str]:
        return [process.name for process in self.processes]

    def sql(self, statement: str) -> str:
        """``statement``, written with Airflow 2's table and column names, in this profile's names."""
        if not self.names:
            return statement
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, self.names)) + r")\b")
        return pattern.sub(lambda match: self.names[match.group(1)], statement)

    def airflow_env(self, secrets: Mapping[str, str], state_dir: Path, web_port: int) -> dict[str, str]:
        """The settings of this profile's Airflow processes (on top of the platform's own)."""
        return {
            "AIRFLOW__WEBSERVER__SECRET_KEY": secrets["secret_key"],
            "AIRFLOW__WEBSERVER__WEB_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__WEBSERVER__WEB_SERVER_PORT": str(web_port),
            "AIRFLOW__WEBSERVER__BASE_URL": f"http://localhost:{web_port}",
            "AIRFLOW__WEBSERVER__WORKERS": "2",
            "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth,airflow.api.auth.backend.session",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "30",
        }

    def trigger_args(self, dag_id: str, logical_date: datetime, run_id: str) -> list[str]:
        """``airflow dags trigger`` of one run at ``logical_date``."""
        flag = "--exec-date" if self.major == 2 else "--logical-date"
        return ["dags", "trigger", dag_id, flag, logical_date.isoformat(), "--run-id", run_id]

    def parse_once_env(self) -> dict[str, str]:
        """Settings that parse each DAG file once rather than every 30 s (the tests' DAGs do not change)."""
        return {"AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "3600"}

    def admin_commands(self) -> list[tuple[str, ...]]:
        """Airflow CLI commands that create the local admin user (after ``db migrate``)."""
        return [
            (
                "users",
                "create",
                "--username",
                ADMIN_USER,
                "--password",
                ADMIN_PASSWORD,
                "--role",
                "Admin",
                "--firstname",
                "Local",
                "--lastname",
                "Admin",
                "--email",
                "admin@localhost",
            )
        ]

    def prepare_state(self, state_dir: Path) -> None:
        """Files the Airflow processes read from the state folder, written before they start."""

    def backfill_args(self, dag_id: str, first: datetime, last: datetime) -> list[str]:
        """The Airflow CLI arguments that backfill ``dag_id``'s runs from ``first`` to ``last``.

        Airflow 2: a process that runs the intervals itself, one after another, until done.
        """
        return [
            "dags",
            "backfill",
            dag_id,
            "--start-date",
            first.isoformat(),
            "--end-date",
            last.isoformat(),
            "--rerun-failed-tasks",
            "--continue-on-failures",
            "--yes",
        ]

    @property
    def backfill_is_a_process(self) -> bool:
        """Whether the backfill runs in its own process (else the scheduler runs a recorded backfill)."""
        return True

    def auth_headers(self, base_url: str, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        import base64

        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def log_server_app(self) -> str:
        return "flask"


@dataclass(frozen=True)
class Airflow3(Profile):
    major: int = 3
    state_dir_name: str = ".local-airflow3"
    api_prefix: str = "/api/v2"
    health_path: str = "/api/v2/monitor/health"
    healthy_parts: tuple[str, ...] = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    processes: tuple[AirflowProcess, ...] = (
        AirflowProcess("Airflow scheduler", ("scheduler", "--skip-serve-logs"), "scheduler.log"),
        AirflowProcess("Airflow DAG processor", ("dag-processor",), "dag_processor.log"),
        AirflowProcess("Airflow triggerer", ("triggerer", "--skip-serve-logs"), "triggerer.log"),
        AirflowProcess("Airflow API server", ("api-server", "--workers", "1"), "api_server.log", web=True),
    )
    secret_names: tuple[str, ...] = ("fernet_key", "secret_key", "jwt_secret")
    names: Mapping[str, str] = field(default_factory=lambda: dict(AIRFLOW3_NAMES))

    @staticmethod
    def passwords_file(state_dir: Path) -> Path:
        return state_dir / "passwords.json"

    def airflow_env(self, secrets: Mapping[str, str], state_dir: Path, web_port: int) -> dict[str, str]:
        return {
            # One secret signs the UI's and REST API's tokens and the execution API's task tokens; the
            # other signs the requests of the log server's clients. Every process must share both.
            "AIRFLOW__API__SECRET_KEY": secrets["secret_key"],
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets["jwt_secret"],
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(web_port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{web_port}",
            # Task processes report to the execution API of the api-server.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{web_port}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file(state_dir)),
            # Airflow 2's cron schedules: a run's logical date is the start of its data interval, as the
            # DAGs and the history backfill expect (Airflow 3's default is the end, with no interval).
            "AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        }

    def parse_once_env(self) -> dict[str, str]:
        return {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600"}

    def admin_commands(self) -> list[tuple[str, ...]]:
        return []  # the simple auth manager's users are settings; their passwords: prepare_state

    def prepare_state(self, state_dir: Path) -> None:
        """The simple auth manager's password of the admin user (it would generate a random one)."""
        path = self.passwords_file(state_dir)
        wanted = {ADMIN_USER: ADMIN_PASSWORD}
        try:
            if json.loads(path.read_text()) == wanted:
                return
        except (OSError, ValueError):
            pass
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(wanted) + "\n")

    def backfill_args(self, dag_id: str, first: datetime, last: datetime) -> list[str]:
        """Airflow 3: record a backfill, which the scheduler runs (``max_active_runs`` at a time);
        runs that exist and failed are run again, successful ones are kept."""
        return [
            "backfill",
            "create",
            "--dag-id",
            dag_id,
            "--from-date",
            first.isoformat(),
            "--to-date",
            last.isoformat(),
            "--reprocess-behavior",
            "failed",
            "--max-active-runs",
            "1",
        ]

    @property
    def backfill_is_a_process(self) -> bool:
        return False

    def auth_headers(self, base_url: str, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> dict[str, str]:
        return {"Authorization": f"Bearer {_token(base_url, user, password)}"}

    def log_server_app(self) -> str:
        return "fastapi"


_TOKENS: dict[tuple[str, str, str], tuple[float, str]] = {}
TOKEN_REUSE_SECONDS = 600  # well inside [api_auth] jwt_expiration_time


def _token(base_url: str, user: str, password: str) -> str:
    """A bearer token of the simple auth manager (``POST /auth/token``), reused for some minutes."""
    key = (base_url, user, password)
    cached = _TOKENS.get(key)
    if cached and time.monotonic() - cached[0] < TOKEN_REUSE_SECONDS:
        return cached[1]
    request = urllib.request.Request(
        f"{base_url}/auth/token",
        method="POST",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        token = json.load(response)["access_token"]
    _TOKENS[key] = (time.monotonic(), token)
    return token


def call_api(
    profile: Profile,
    base_url: str,
    method: str,
    path: str,
    body: dict | None = None,
    *,
    user: str = ADMIN_USER,
    password: str = ADMIN_PASSWORD,
    timeout: float = 30,
) -> dict:
    """One call to the REST API (``/api/v1`` or ``/api/v2`` + ``path``) as ``user``; the JSON answer.

    ``path`` is the same on both (``/dags?limit=100``, ``/dags/{id}/dagRuns/{run}``...); a path that
    starts with ``/`` and names no API (``/health``) is the profile's health endpoint.
    """
    url = f"{base_url}{profile.health_path}" if path == "/health" else f"{base_url}{profile.api_prefix}{path}"
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        **profile.auth_headers(base_url, user, password),
    }
    request = urllib.request.Request(
        url, method=method, data=None if body is None else json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text) if text else {}


PROFILES = {2: Profile(), 3: Airflow3()}


def airflow_major() -> int:
    """The major version of the Airflow installed beside this interpreter."""
    try:
        return int(version("apache-airflow").split(".")[0])
    except PackageNotFoundError:
        raise LocalDevError("Airflow is not installed in this Python; `make venv` installs it") from None


def current() -> Profile:
    """The profile of the Airflow that this interpreter runs."""
    major = airflow_major()
    if major not in PROFILES:
        raise LocalDevError(f"Airflow {major} is not supported here: the profiles are Airflow 2.10 and 3.3")
    return PROFILES[major]
