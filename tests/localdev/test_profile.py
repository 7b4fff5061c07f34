"""The Airflow 2 and Airflow 3 profiles of the local platform (localdev/profile.py).

The unit tests check both profiles whichever Airflow this interpreter has: the processes, their
settings, the secrets, the metadata names and the shape of a REST call. The platform test starts
the real stack (``python -m localdev run``) of this interpreter's profile on stand-in DAGs
(``SHOPSTREAM_DAGS_FOLDER``): a DAG whose task writes a file and announces a Dataset (Asset on
Airflow 3), and a DAG that the event triggers. The scheduler runs both, the REST API lists them
with the profile's login, and a task's log is readable through it, as the UI reads it.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
import threading
import time
import urllib.error
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

import pytest

from localdev import __main__ as cli
from localdev import postgres, profile
from localdev.profile import PROFILES, Airflow3, Profile, call_api
from localdev.stack import Ports, Stack
from tests.localdev.test_run import run_env, start_run, stop_run

AIRFLOW2, AIRFLOW3 = PROFILES[2], PROFILES[3]


def stack_of(state_dir, chosen: Profile) -> Stack:
    stack = Stack(state_dir=state_dir, ports=Ports(webserver=18080, log_server=18793), profile=chosen)
    stack.pg = postgres.PostgresServer("127.0.0.1", 15433, "postgres", "pw")
    state_dir.mkdir(parents=True, exist_ok=True)
    return stack


# -- choosing the profile ----------------------------------------------------------------------


def test_the_profile_is_the_installed_airflows():
    major = int(version("apache-airflow").split(".")[0])
    assert profile.current() is PROFILES[major]
    assert isinstance(profile.current(), Airflow3) == (major == 3)


def test_each_profile_keeps_its_own_state_folder(monkeypatch):
    monkeypatch.delenv("SHOPSTREAM_STATE_DIR", raising=False)
    assert (AIRFLOW2.state_dir_name, AIRFLOW3.state_dir_name) == (".local", ".local-airflow3")
    assert cli.state_dir().name == profile.current().state_dir_name
    monkeypatch.setenv("SHOPSTREAM_STATE_DIR", "/tmp/elsewhere")
    assert str(cli.state_dir()) == "/tmp/elsewhere"


# -- the processes -----------------------------------------------------------------------------


def test_airflow2_runs_webserver_scheduler_and_triggerer():
    assert [p.args[0] for p in AIRFLOW2.processes] == ["scheduler", "triggerer", "webserver"]
    assert AIRFLOW2.web.args == ("webserver",)


def test_airflow3_runs_api_server_scheduler_dag_processor_and_triggerer():
    assert [p.args[0] for p in AIRFLOW3.processes] == ["scheduler", "dag-processor", "triggerer", "api-server"]
    assert AIRFLOW3.web.args[0] == "api-server"
    assert AIRFLOW3.web.log == "api_server.log"
    assert AIRFLOW3.healthy_parts == ("metadatabase", "scheduler", "triggerer", "dag_processor")


@pytest.mark.parametrize("chosen", [AIRFLOW2, AIRFLOW3], ids=["airflow2", "airflow3"])
def test_the_scheduler_and_triggerer_leave_log_serving_to_the_loopback_server(chosen):
    for name in ("scheduler", "triggerer"):
        assert "--skip-serve-logs" in chosen.process(name).args
    with pytest.raises(KeyError):
        chosen.process("worker")


# -- settings and secrets ----------------------------------------------------------------------


def test_airflow2_env_logs_in_to_the_webserver_with_basic_auth(tmp_path):
    env = stack_of(tmp_path, AIRFLOW2).airflow_env()
    assert env["AIRFLOW__WEBSERVER__WEB_SERVER_HOST"] == "127.0.0.1"
    assert env["AIRFLOW__WEBSERVER__WEB_SERVER_PORT"] == "18080"
    assert "basic_auth" in env["AIRFLOW__API__AUTH_BACKENDS"]
    assert not any(key.startswith("AIRFLOW__API_AUTH__") for key in env)
    assert set(json.loads((tmp_path / "secrets.json").read_text())) == {"fernet_key", "secret_key"}


def test_airflow3_env_runs_the_api_server_with_the_simple_auth_manager(tmp_path):
    env = stack_of(tmp_path, AIRFLOW3).airflow_env()
    secrets = json.loads((tmp_path / "secrets.json").read_text())
    assert set(secrets) == {"fernet_key", "secret_key", "jwt_secret"}
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["jwt_secret"]
    assert env["AIRFLOW__API__SECRET_KEY"] == secrets["secret_key"]
    assert env["AIRFLOW__CORE__FERNET_KEY"] == secrets["fernet_key"]
    assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"]) == ("127.0.0.1", "18080")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(tmp_path / "passwords.json")
    assert env["AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS"] == "True"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "18793"
    assert not any(key.startswith("AIRFLOW__WEBSERVER__") for key in env), "Airflow 2's web settings"


def test_a_state_folder_made_by_an_older_run_gets_the_jwt_secret_and_keeps_its_keys(tmp_path):
    first = stack_of(tmp_path, AIRFLOW2)._secrets()
    second = stack_of(tmp_path, AIRFLOW3)._secrets()
    assert {key: second[key] for key in first} == first
    assert len(second["jwt_secret"]) == 64
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert stack_of(tmp_path, AIRFLOW3)._secrets() == second, "made once"


def test_the_admin_login_per_profile(tmp_path):
    assert AIRFLOW2.admin_commands()[0][:4] == ("users", "create", "--username", "admin")
    assert AIRFLOW3.admin_commands() == []
    AIRFLOW3.prepare_state(tmp_path)
    path = tmp_path / "passwords.json"
    assert json.loads(path.read_text()) == {"admin": "admin"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text('{"admin": "generated-by-airflow"}')
    AIRFLOW3.prepare_state(tmp_path)
    assert json.loads(path.read_text()) == {"admin": "admin"}, "the documented local login wins"


def test_stand_in_dag_and_plugin_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPSTREAM_DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv("SHOPSTREAM_PLUGINS_FOLDER", str(tmp_path / "plugins"))
    env = stack_of(tmp_path / "state", profile.current()).airflow_env()
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(tmp_path / "plugins")


# -- metadata names and the backfill ------------------------------------------------------------


def test_metadata_statements_are_written_in_airflow2_names():
    statement = (
        "SELECT d.uri, de.extra, dr.execution_date FROM dataset_event de JOIN dataset d ON d.id = de.dataset_id"
        " JOIN dagrun_dataset_event dde ON dde.event_id = de.id JOIN dag_run dr ON dr.id = dde.dag_run_id"
        " WHERE dr.run_type = 'dataset_triggered' AND de.extra->>'dataset_uri' IS NULL"
    )
    assert AIRFLOW2.sql(statement) == statement
    assert AIRFLOW3.sql(statement) == (
        "SELECT d.uri, de.extra, dr.logical_date FROM asset_event de JOIN asset d ON d.id = de.asset_id"
        " JOIN dagrun_asset_event dde ON dde.event_id = de.id JOIN dag_run dr ON dr.id = dde.dag_run_id"
        " WHERE dr.run_type = 'asset_triggered' AND de.extra->>'dataset_uri' IS NULL"
    )
    assert AIRFLOW3.sql("SELECT * FROM dag_schedule_dataset_reference") == (
        "SELECT * FROM dag_schedule_asset_reference"
    )


def test_the_history_backfill_per_profile():
    first, last = datetime(2026, 11, 1, 2, tzinfo=UTC), datetime(2026, 11, 21, 2, tzinfo=UTC)
    assert AIRFLOW2.backfill_is_a_process and not AIRFLOW3.backfill_is_a_process
    assert AIRFLOW2.backfill_args("sales", first, last) == [
        "dags",
        "backfill",
        "sales",
        "--start-date",
        "2026-11-01T02:00:00+00:00",
        "--end-date",
        "2026-11-21T02:00:00+00:00",
        "--rerun-failed-tasks",
        "--continue-on-failures",
        "--yes",
    ]
    assert AIRFLOW3.backfill_args("sales", first, last) == [
        "backfill",
        "create",
        "--dag-id",
        "sales",
        "--from-date",
        "2026-11-01T02:00:00+00:00",
        "--to-date",
        "2026-11-21T02:00:00+00:00",
        "--reprocess-behavior",
        "failed",
        "--max-active-runs",
        "1",
    ]
    assert AIRFLOW2.trigger_args("d", first, "r")[3] == "--exec-date"
    assert AIRFLOW3.trigger_args("d", first, "r")[3] == "--logical-date"


# -- the REST call ---------------------------------------------------------------------------


@pytest.fixture
def recorder():
    """A stand-in API server that records each request and answers like Airflow's."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
            answer = {"access_token": "tok-1"} if self.path == "/auth/token" else {"dags": []}
            payload = json.dumps(answer).encode()
            self.send_response(201 if self.path == "/auth/token" else 200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            self._answer()

        def do_POST(self):
            self._answer()

        def do_PATCH(self):
            self._answer()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile._TOKENS.clear()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    profile._TOKENS.clear()


def test_airflow2_calls_api_v1_with_basic_auth(recorder):
    url, seen = recorder
    assert call_api(AIRFLOW2, url, "GET", "/dags?limit=100") == {"dags": []}
    call_api(AIRFLOW2, url, "PATCH", "/dags/d/dagRuns/r", {"state": "failed"})
    call_api(AIRFLOW2, url, "GET", "/health")
    assert [(r["method"], r["path"]) for r in seen] == [
        ("GET", "/api/v1/dags?limit=100"),
        ("PATCH", "/api/v1/dags/d/dagRuns/r"),
        ("GET", "/health"),
    ]
    assert seen[0]["headers"]["Authorization"] == "Basic YWRtaW46YWRtaW4="  # admin:admin
    assert json.loads(seen[1]["body"]) == {"state": "failed"}


def test_airflow3_calls_api_v2_with_a_token_from_auth_token(recorder):
    url, seen = recorder
    assert call_api(AIRFLOW3, url, "GET", "/dags?limit=100") == {"dags": []}
    call_api(AIRFLOW3, url, "PATCH", "/dags/d/dagRuns/r", {"state": "failed"})
    call_api(AIRFLOW3, url, "GET", "/health")
    assert [(r["method"], r["path"]) for r in seen] == [
        ("POST", "/auth/token"),
        ("GET", "/api/v2/dags?limit=100"),
        ("PATCH", "/api/v2/dags/d/dagRuns/r"),
        ("GET", "/api/v2/monitor/health"),
    ], "one token, reused"
    assert json.loads(seen[0]["body"]) == {"username": "admin", "password": "admin"}
    assert seen[0]["headers"]["Content-Type"] == "application/json"
    assert all(r["headers"]["Authorization"] == "Bearer tok-1" for r in seen[1:])
    assert json.loads(seen[2]["body"]) == {"state": "failed"}


# -- the real stack on stand-in DAGs ------------------------------------------------------------

STAND_IN_DAGS = '''
"""Stand-in DAGs for the local platform test: a file written, a Dataset (Asset) announced, a consumer."""

import os
from datetime import datetime
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import Asset as Dataset
    from airflow.sdk import dag, task
except ImportError:  # Airflow 2
    from airflow.datasets import Dataset
    from airflow.decorators import dag, task

WRITTEN = Dataset("s3://stand-in/written")
OUT = Path(os.environ["SHOPSTREAM_STAND_IN_OUT"])


@dag(dag_id="{producer}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def producer():
    @task(outlets=[WRITTEN])
    def write_file(run_id=None):
        print("stand-in marker: writing", run_id)
        (OUT / f"{{run_id}}.txt").write_text("written")

    write_file()


@dag(dag_id="{consumer}", schedule=[WRITTEN], start_date=datetime(2026, 1, 1), catchup=False)
def consumer():
    @task
    def read_file(run_id=None):
        print("stand-in marker: consumed in", run_id)
        (OUT / "consumed").write_text(run_id)

    read_file()


{call}()
'''
PRODUCER, CONSUMER = "stand_in_writer", "stand_in_reader"


def wait_for(check, timeout: float, what: str, process):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        assert process.poll() is None, "".join(process.output)
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f} s:\n" + "".join(process.output[-40:]))


def log_text(answer: dict) -> str:
    """A task log from the REST API: Airflow 2 answers text, Airflow 3 structured lines."""
    content = answer["content"]
    return content if isinstance(content, str) else json.dumps(content)


@pytest.mark.services
@pytest.mark.xdist_group("make-run")
@pytest.mark.timeout(900)
def test_the_stack_runs_stand_in_dags_and_serves_their_logs(tmp_path):
    chosen = profile.current()
    dags, out = tmp_path / "dags", tmp_path / "out"
    dags.mkdir()
    out.mkdir()
    for dag_id, call in ((PRODUCER, "producer"), (CONSUMER, "consumer")):  # one DAG per file, named as it
        source = STAND_IN_DAGS.format(producer=PRODUCER, consumer=CONSUMER, call=call)
        (dags / f"{dag_id}.py").write_text(textwrap.dedent(source))
    plugins = tmp_path / "plugins"  # none: the project's cluster policy and links are not under test
    plugins.mkdir()
    env = run_env(
        tmp_path / "state",
        SHOPSTREAM_DAGS_FOLDER=str(dags),
        SHOPSTREAM_PLUGINS_FOLDER=str(plugins),
        SHOPSTREAM_STAND_IN_OUT=str(out),
    )
    base = f"http://127.0.0.1:{env['SHOPSTREAM_WEBSERVER_PORT']}"

    def api(method: str, path: str, body: dict | None = None) -> dict:
        return call_api(chosen, base, method, path, body)

    started = time.monotonic()
    process, output = start_run(env)
    try:
        ready = time.monotonic() - started
        print(f"{chosen.label}: ready in {ready:.0f} s")
        services = json.loads((tmp_path / "state" / "stack.json").read_text())["services"]
        airflow = {name for name in services if name.startswith("Airflow")}
        assert airflow == {*chosen.process_names(), "Airflow log server"}
        health = api("GET", "/health")
        assert all(health[part]["status"] == "healthy" for part in chosen.healthy_parts), health
        assert {dag["dag_id"] for dag in api("GET", "/dags?limit=100")["dags"]} == {PRODUCER, CONSUMER}
        with pytest.raises(urllib.error.HTTPError) as refused:
            call_api(chosen, base, "GET", "/dags", user="admin", password="wrong")
        assert refused.value.code in (401, 403)

        run_id = "stand_in_manual"
        logical = datetime.now(UTC).replace(microsecond=0).isoformat()
        api("POST", f"/dags/{PRODUCER}/dagRuns", {"dag_run_id": run_id, "logical_date": logical})
        finished = wait_for(
            lambda: api("GET", f"/dags/{PRODUCER}/dagRuns/{run_id}")["state"] in ("success", "failed"),
            300,
            "the producer run did not finish",
            process,
        )
        assert finished
        run = api("GET", f"/dags/{PRODUCER}/dagRuns/{run_id}")
        assert run["state"] == "success", run
        assert (out / f"{run_id}.txt").read_text() == "written"

        consumed = wait_for(
            lambda: [r for r in api("GET", f"/dags/{CONSUMER}/dagRuns")["dag_runs"] if r["state"] == "success"],
            300,
            "no successful consumer run",
            process,
        )
        assert consumed[0]["run_type"] == chosen.sql("dataset_triggered")
        assert (out / "consumed").read_text() == consumed[0]["dag_run_id"]

        log = api("GET", f"/dags/{PRODUCER}/dagRuns/{run_id}/taskInstances/write_file/logs/1")
        assert "stand-in marker: writing" in log_text(log), log
        print(f"{chosen.label}: producer and consumer done {time.monotonic() - started:.0f} s after start")
    finally:
        output = stop_run(process)
    assert process.returncode == 0, output[-3000:]
    leftovers = [pid for pid in services.values() if os.path.exists(f"/proc/{pid}")]
    assert not leftovers, f"still running: {leftovers}"
