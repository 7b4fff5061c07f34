"""`make run` end to end: the platform comes up, answers, stops cleanly and resumes its state.

Also the bad input that `make run` meets first: a port in use, an unreachable
SHOPSTREAM_POSTGRES_URL, a wrong Python; each must be one clear line, not a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest

from localdev import s3 as s3_launcher
from localdev.processes import free_port
from localdev.profile import call_api, current
from tests.conftest import PROJECT

# One xdist worker runs the whole group, in file order (see the Makefile's test target).
pytestmark = [pytest.mark.services, pytest.mark.xdist_group("make-run")]
PROFILE = current()


def run_env(state_dir, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "SHOPSTREAM_STATE_DIR": str(state_dir),
            "SHOPSTREAM_WEBSERVER_PORT": str(free_port()),
            "SHOPSTREAM_POSTGRES_PORT": str(free_port()),
            "SHOPSTREAM_S3_PORT": str(free_port()),
            "SHOPSTREAM_INVENTORY_API_PORT": str(free_port()),
            "SHOPSTREAM_ALERT_SINK_PORT": str(free_port()),
            "SHOPSTREAM_LOG_SERVER_PORT": str(free_port()),
            # The history backfill has its own test (test_backfill.py); here it would only add load.
            "SHOPSTREAM_BACKFILL_DAYS": "0",
        }
    )
    for name in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER"):
        env.pop(name, None)
    env.update(extra)
    return env


def start_run(env) -> tuple[subprocess.Popen, str]:
    """Start `python -m localdev run`; return it and its output once it says it is up."""
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev", "run"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while not any("stops everything" in line for line in lines):
        if time.monotonic() > deadline or process.poll() is not None:
            # Ctrl-C, so that the runner stops what it started; SIGKILL would orphan it.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
            raise AssertionError("`localdev run` did not come up:\n" + "".join(lines))
        time.sleep(0.5)
    process.output = lines
    return process, "".join(lines)


def stop_run(process) -> str:
    """Ctrl-C, as a developer would; return everything it printed."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    time.sleep(0.2)
    return "".join(process.output)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def api(env, path: str, method: str = "GET", body: dict | None = None):
    """The REST API of the platform that ``env`` starts (``path`` after /api/v1 or /api/v2), as admin."""
    return call_api(PROFILE, f"http://127.0.0.1:{env['SHOPSTREAM_WEBSERVER_PORT']}", method, path, body)


def test_the_platform_comes_up_stops_cleanly_and_resumes(tmp_path):
    env = run_env(tmp_path / "state")
    process, output = start_run(env)
    try:
        assert f"http://localhost:{env['SHOPSTREAM_WEBSERVER_PORT']}  (login admin / admin)" in output
        health = api(env, "/health")
        assert health["metadatabase"]["status"] == "healthy"
        assert health["scheduler"]["status"] == "healthy"
        assert health["triggerer"]["status"] == "healthy"
        # "Up" means every DAG is there: the REST API lists them all at the moment it is said.
        listed = {dag["dag_id"] for dag in api(env, "/dags?limit=100")["dags"]}
        assert listed == {path.stem for path in (PROJECT / "dags").glob("*.py")}
        aws = api(env, "/connections/aws_default")
        assert json.loads(aws["extra"])["endpoint_url"] == f"http://127.0.0.1:{env['SHOPSTREAM_S3_PORT']}"
        pools = {p["name"]: p["slots"] for p in api(env, "/pools")["pools"]}
        assert pools["inventory_api"] == 2

        cli = subprocess.run(
            [sys.executable, "-m", "airflow", "connections", "get", "aws_default", "-o", "json"],
            env={**env, "AIRFLOW_HOME": str(tmp_path / "state" / "airflow"), **_airflow_db_env(tmp_path, env)},
            capture_output=True,
            text=True,
            check=True,
        )
        assert f"http://127.0.0.1:{env['SHOPSTREAM_S3_PORT']}" in cli.stdout

        lake = s3_launcher.S3Server(endpoint_url=f"http://127.0.0.1:{env['SHOPSTREAM_S3_PORT']}")
        lake.client().put_object(Bucket="shopstream", Key="gold/marker.txt", Body=b"kept")
        services = json.loads((tmp_path / "state" / "stack.json").read_text())["services"]
        pids = list(services.values())
        # postgres, s3, inventory API, alert sink, the log server and the profile's Airflow processes
        assert len(pids) == 5 + len(PROFILE.processes), services

        # Task logs are served on loopback only, by the log server and nothing else of Airflow's.
        log_port = int(env["SHOPSTREAM_LOG_SERVER_PORT"])
        airflow_pids = [services[name] for name in services if name.startswith("Airflow")]
        listening = listening_sockets(airflow_pids)
        assert ("127.0.0.1", log_port) in listening, listening
        assert all(address == "127.0.0.1" for address, _ in listening), listening
        assert not {port for _, port in listening} & {8793, 8794} - {log_port}, "Airflow's own log servers"
        with pytest.raises(urllib.error.HTTPError) as refused:  # Airflow's app: a signed request only
            urllib.request.urlopen(f"http://127.0.0.1:{log_port}/log/any.log", timeout=10)
        assert refused.value.code == 403

        # A deferred task waits in this platform's triggerer and resumes when its trigger fires.
        deferred = deferred_run(tmp_path, env)
        assert "[DAG TEST] running trigger in line" not in deferred.stdout, "the triggerer was not used"
        tries = {
            row["task_id"]: (row["state"], row["try_number"])
            for row in metadata(
                env,
                "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = %s",
                ("shopstream_policy_task_types",),
            )
        }
        assert tries["deferred_write"] == ("failed", 1), deferred.stdout[-3000:]
        assert "deferred_write after its trigger fired" in deferred.stdout
    except BaseException:
        stop_run(process)
        raise

    rest = stop_run(process)
    assert process.returncode == 0, rest
    saved = re.search(r"saved (\d+) S3 objects", rest)
    assert saved and int(saved.group(1)) >= 1, "the lake (with the marker) was snapshotted"
    time.sleep(1)
    assert [pid for pid in pids if alive(pid)] == [], "every process it started is gone"
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes still running from this state folder: {leftovers}"

    again, _ = start_run(env)
    try:
        assert api(env, "/health")["scheduler"]["status"] == "healthy", "the admin user survived"
        body = (
            boto3.client(
                "s3",
                endpoint_url=f"http://127.0.0.1:{env['SHOPSTREAM_S3_PORT']}",
                aws_access_key_id=s3_launcher.ACCESS_KEY,
                aws_secret_access_key=s3_launcher.SECRET_KEY,
                region_name=s3_launcher.REGION,
            )
            .get_object(Bucket="shopstream", Key="gold/marker.txt")["Body"]
            .read()
        )
        assert body == b"kept", "the lake was restored from the state folder"
    finally:
        stop_run(again)


def listening_sockets(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket listening in these processes or their descendants."""
    tree, queue = set(), list(pids)
    while queue:
        pid = queue.pop()
        if pid in tree:
            continue
        tree.add(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            children = task / "children"
            if children.exists():
                queue += [int(child) for child in children.read_text().split()]
    inodes = set()
    for pid in tree:
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            raw, port = local.split(":")
            packed = bytes.fromhex(raw)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = b"".join(packed[i : i + 4][::-1] for i in range(0, width, 4))
            family = socket.AF_INET if width == 4 else socket.AF_INET6
            found.add((socket.inet_ntop(family, words), int(port, 16)))
    return found


def metadata(env, statement: str, params=None) -> list[dict]:
    import psycopg2.extras

    conn = psycopg2.connect(metadata_url(env))
    try:
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(PROFILE.sql(statement), params)
            return [dict(row) for row in cur.fetchall()]
    finally:
        conn.close()


def deferred_run(tmp_path, env) -> subprocess.CompletedProcess:
    """`airflow dags test` of tests/policy_dags against the running platform: with a healthy
    triggerer there, a deferred task is handed to it rather than run in line."""
    return subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "shopstream_policy_task_types", "2026-11-24T02:00:00+00:00"],
        env={
            **env,
            "AIRFLOW_HOME": str(tmp_path / "state" / "airflow"),
            **_airflow_db_env(tmp_path, env),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "tests" / "policy_dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "PYTHONPATH": str(PROJECT),
        },
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _airflow_db_env(tmp_path, env) -> dict:
    secrets = json.loads((tmp_path / "state" / "secrets.json").read_text())
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url(env, "postgresql+psycopg2"),
        "AIRFLOW__CORE__FERNET_KEY": secrets["fernet_key"],
    }


def metadata_url(env, driver: str = "postgresql") -> str:
    """The metadata database of the platform that ``env`` starts (the embedded Postgres)."""
    return f"{driver}://postgres:shopstream-local@127.0.0.1:{env['SHOPSTREAM_POSTGRES_PORT']}/airflow"


def run_once(env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "localdev", "run"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_port_in_use_stops_run_with_one_line(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_once(run_env(tmp_path / "state", SHOPSTREAM_WEBSERVER_PORT=str(port)))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: port {port} on 127.0.0.1 is already in use")
    assert "SHOPSTREAM_WEBSERVER_PORT" in lines[0]


def test_an_unreachable_postgres_url_stops_run_with_one_line(tmp_path):
    port = free_port()
    env = run_env(tmp_path / "state", SHOPSTREAM_POSTGRES_URL=f"postgresql://postgres:pw@127.0.0.1:{port}")
    result = run_once(env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach the Postgres named by SHOPSTREAM_POSTGRES_URL (127.0.0.1:{port})")
    assert not (tmp_path / "state" / "postgres").exists(), "no embedded server was started instead"


def test_a_bad_port_setting_is_one_line(tmp_path):
    result = run_once(run_env(tmp_path / "state", SHOPSTREAM_S3_PORT="fivethousand"))
    assert result.returncode == 2
    assert result.stderr.strip() == "error: SHOPSTREAM_S3_PORT must be a port number (1-65535), got 'fivethousand'"


def test_a_wrong_python_is_one_line(tmp_path):
    fake = tmp_path / "python3.12"
    fake.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -c \"import sys, runpy; sys.version_info = (3, 12, 1, 'final', 0); "
        f'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name=\'__main__\')" "$@"\n'
    )
    fake.chmod(0o755)
    result = subprocess.run(
        ["make", "-B", "venv", f"PYTHON={fake}", f"VENV={tmp_path / 'venv'}"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "ShopStream needs Python 3.11" in errors[0]
    assert "is Python 3.12.1" in errors[0]
    assert not (tmp_path / "venv").exists(), "nothing was installed"
