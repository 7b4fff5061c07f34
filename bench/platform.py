"""The platform under test: `make run`'s launchers on free ports in a temporary folder.

Postgres (embedded), the moto S3, the inventory API simulator and the alert sink come from
``localdev.stack.Stack.start_services``; Airflow is prepared with ``Stack.prepare_airflow``
(``db migrate``, ``airflow_settings.yaml`` with the ``--endpoint`` rewrites, the admin user).
The scheduler runs with the platform's settings (``Stack.airflow_env``); the webserver is not
started, because nothing here needs the UI and its workers would compete for the cores.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
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
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def dags_folder(self) -> Path:
        """The platform's four DAG files (linked) plus the benchmark's own DAGs."""
        return self.root / "dags"

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment of the platform's Airflow processes (``Stack.airflow_env``).

        Two changes: DAGs start paused, so that nothing is scheduled before a benchmark asks,
        and the task log server takes a free port, so that it never clashes with another
        Airflow on the machine (its 8793 is fixed otherwise).
        """
        if not self._env:
            self._env = self.stack.airflow_env()
            self._env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
            self._env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
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
        its job is running."""
        env = self.env(AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder))
        try:
            self.stack.register_dags(env)
        except LocalDevError as err:
            raise BenchError(f"{err}\n{err.details}") from None
        rows = self.metadata("SELECT dag_id FROM serialized_dag WHERE dag_id = ANY(%s)", (list(expected_dags),))
        missing = sorted(set(expected_dags) - {row["dag_id"] for row in rows})
        if missing:
            raise BenchError(f"{self.dags_folder} does not define {', '.join(missing)} (an import error?)")
        self.scheduler = self.stack.start_scheduler(env)
        self.stack.services.append(self.scheduler)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.scheduler.running():
                raise BenchError(f"the scheduler exited; its log is {self.scheduler.log_path}")
            if self.metadata("SELECT id FROM job WHERE job_type = 'SchedulerJob' AND state = 'running'"):
                return
            time.sleep(1)
        raise BenchError(f"the scheduler did not start within {timeout:.0f}s; its log is {self.scheduler.log_path}")

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self.stack.services.remove(self.scheduler)
            self.scheduler.stop()
            self.scheduler = None

    def stop(self) -> None:
        """Stop every process, then delete the folder (kept, and said, when ``keep``)."""
        self.stack.stop()
        if self.keep:
            print(f"kept the benchmark's folder (logs, databases): {self.root}", file=sys.stderr)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
