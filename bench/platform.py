"""The platform under test: `make run`'s launchers on free ports in a temporary folder.

Postgres (embedded), the moto S3, the inventory API simulator and the alert sink come from
``localdev.stack.Stack.start_services``; Airflow is prepared with ``Stack.prepare_airflow``
(``db migrate``, ``airflow_settings.yaml`` with the ``--endpoint`` rewrites, the admin user).
The scheduler runs with the platform's settings (``Stack.airflow_env``); the webserver is not
started, because nothing here needs the UI and its workers would compete for the cores.

On Airflow 3 (``localdev/profile.py``) the scheduler parses no DAG files and task processes
report to the execution API: the DAG processor and the API server (one worker) run beside it.
The triggerer runs on neither profile: none of the measured DAGs defers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.stats import BenchError
from localdev import LocalDevError
from localdev.generator import Scale, ShopStreamData
from localdev.processes import Service, free_port
from localdev.stack import ROOT, Ports, Stack


@dataclass
class Measured:
    """One child process run to completion: its exit code, wall time and peak RSS."""

    returncode: int
    wall_s: float
    peak_rss_mib: float
    log: Path

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


PEAK_LAUNCHER = Path(__file__).with_name("peak.py")


def run_measured(argv: Sequence[str], env: Mapping[str, str], log: Path) -> Measured:
    """Run ``argv`` to completion; its exit code, wall time and peak RSS.

    The peak comes from ``bench/peak.py``, a small launcher that starts ``argv`` and waits for
    it with ``wait4``: measured from here, the child would report the benchmark's own peak
    (a seeded day of orders) as its own, which Linux carries across ``exec``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    report = log.with_suffix(".peak.json")
    report.unlink(missing_ok=True)
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(PEAK_LAUNCHER), str(report), *argv],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        returncode = process.wait()
        wall = time.perf_counter() - started
    try:
        peak_kib = json.loads(report.read_text())["peak_rss_kib"]
    except (OSError, ValueError, KeyError) as err:
        raise BenchError(f"no peak RSS for `{' '.join(argv[:6])}` ({err}); log {log}") from None
    return Measured(returncode, wall, peak_kib / 1024, log)


@dataclass
class BenchPlatform:
    """A throwaway ShopStream platform; :meth:`stop` removes every process and file it made."""

    root: Path
    stack: Stack
    scheduler: Service | None = None
    # Airflow 3's processes beside the scheduler: the DAG processor and the API server.
    companions: list[Service] = field(default_factory=list)
    keep: bool = False
    _env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls) -> BenchPlatform:
        root = Path(tempfile.mkdtemp(prefix="shopstream-bench-"))
        ports = Ports(**{name: free_port() for name in Ports.SETTINGS})
        # The platform's default data (300 orders a day, 1% contract-breaking); no simulated
        # inventory API failures, whose 10-minute retries would measure the retry policy instead.
        stack = Stack(
            state_dir=root / "state",
            ports=ports,
            failure_rate=0.0,
            data=ShopStreamData(scale=Scale(bad_share=0.01)),
        )
        platform = cls(root=root, stack=stack)
        try:
            stack.start_services()
            # `make run` snapshots the lake when it stops; a benchmark's lake is thrown away.
            stack.lake.service.on_stop.clear()
            stack.prepare_airflow()
            platform.dags_folder.mkdir()
            for dag_file in sorted((ROOT / "dags").glob("*.py")):
                (platform.dags_folder / dag_file.name).symlink_to(dag_file)
        except BaseException:
            platform.stop()
            raise
        return platform

    @property
    def profile(self):
        """The profile of the Airflow that runs the benchmark (``localdev/profile.py``)."""
        return self.stack.profile

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def dags_folder(self) -> Path:
        """The platform's four DAG files (linked) plus the benchmark's own DAGs."""
        return self.root / "dags"

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of the platform's Airflow processes (``Stack.airflow_env``).

        Three changes: DAGs start paused, so that nothing is scheduled before a benchmark asks;
        the task log server takes a free port, so that it never clashes with another Airflow on
        the machine (its 8793 is fixed otherwise); and a failed task retries at once
        (``SHOPSTREAM_RETRY_DELAY_SCALE``, the policies' own seam), so that a day with a failing
        task ends in seconds, its failures reported, rather than after minutes of retry delays.
        A day that succeeds retries nothing (the simulated API does not fail here), so its
        figures are the same either way.
        """
        if not self._env:
            self._env = self.stack.airflow_env()
            self._env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
            self._env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
            self._env["SHOPSTREAM_RETRY_DELAY_SCALE"] = "0.001"
        return {**self._env, **overrides}

    def airflow(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 900) -> str:
        """Run one Airflow CLI command (``Stack.airflow``); fail with its last lines."""
        try:
            return self.stack.airflow(*args, env=env or self.env(), timeout=timeout)
        except LocalDevError as err:
            raise BenchError(f"{err}\n{err.details}") from None

    def probe(self, *args: str, env: Mapping[str, str] | None = None) -> dict:
        """Run ``python -m bench.probe`` in the platform's Airflow environment; its JSON answer."""
        result = subprocess.run(
            [sys.executable, "-m", "bench.probe", *args],
            env=dict(env or self.env()),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-10:])
            raise BenchError(f"`python -m bench.probe {' '.join(args)}` failed:\n{tail}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def metadata(self, statement: str, params=None) -> list[dict]:
        return self.stack.metadata(statement, params)

    def set_paused(self, dag_ids: Sequence[str], paused: bool) -> None:
        """What the UI's pause toggle does, without a CLI process's seconds of start-up."""
        self.metadata("UPDATE dag SET is_paused = %s WHERE dag_id = ANY(%s)", (paused, list(dag_ids)))

    def start_scheduler(self, expected_dags: Sequence[str], timeout: float = 300) -> None:
        """Register :attr:`dags_folder`'s DAGs (``Stack.register_dags``), check that
        ``expected_dags`` are among them, then start the scheduler (LocalExecutor) and wait until
        its job is running; on Airflow 3 also the DAG processor and the API server, whose
        execution API must answer before a task process can run."""
        env = self.env(AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder))
        try:
            self.stack.register_dags(env)
        except LocalDevError as err:
            raise BenchError(f"{err}\n{err.details}") from None
        rows = self.metadata("SELECT dag_id FROM serialized_dag WHERE dag_id = ANY(%s)", (list(expected_dags),))
        missing = sorted(set(expected_dags) - {row["dag_id"] for row in rows})
        if missing:
            raise BenchError(f"{self.dags_folder} does not define {', '.join(missing)} (an import error?)")
        if self.profile.major >= 3:
            for start in (self.stack.start_web, self.stack.start_dag_processor):
                self.companions.append(start(env))
                self.stack.services.append(self.companions[-1])
        self.scheduler = self.stack.start_scheduler(env)
        self.stack.services.append(self.scheduler)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for service in (self.scheduler, *self.companions):
                if not service.running():
                    raise BenchError(f"the {service.name} exited; its log is {service.log_path}")
            if (
                self.metadata("SELECT id FROM job WHERE job_type = 'SchedulerJob' AND state = 'running'")
                and self._api_answers()
            ):
                return
            time.sleep(1)
        raise BenchError(f"the scheduler did not start within {timeout:.0f}s; its log is {self.scheduler.log_path}")

    def _api_answers(self) -> bool:
        """Whether the API server (Airflow 3's execution API) answers; always on Airflow 2."""
        if self.profile.major < 3:
            return True
        try:
            with urllib.request.urlopen(f"{self.stack.base_url}{self.profile.health_path}", timeout=5):
                return True
        except (OSError, urllib.error.URLError):
            return False

    def stop_scheduler(self) -> None:
        """Stop the scheduler and, on Airflow 3, its DAG processor and API server."""
        for service in [*self.companions, *([self.scheduler] if self.scheduler else [])]:
            self.stack.services.remove(service)
            service.stop()
        self.companions.clear()
        self.scheduler = None

    def stop(self) -> None:
        """Stop every process, then delete the folder (kept, and said, when ``keep``)."""
        self.stack.stop()
        if self.keep:
            print(f"kept the benchmark's folder (logs, databases): {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
