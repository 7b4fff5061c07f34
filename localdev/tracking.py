"""The processes of one local platform, recorded in its state folder's ``stack.json``.

The runner (``make run``) records every process it starts, so that ``make stop``, from another
terminal, can stop them all, and a second ``make run`` can tell that one is running already.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from localdev import LocalDevError, postgres
from localdev.processes import Service, pid_alive, stop_process_group

STATE_FILE = "stack.json"


@dataclass
class Tracker:
    """Every process one platform started, and ``stack.json``, rewritten as they come and go."""

    state_file: Path
    services: list[Service] = field(default_factory=list)  # they live as long as the platform, newest last
    backfill: Service | None = None  # Airflow 2's history backfill, while it has one

    def track(self, service: Service) -> None:
        self.services.append(service)
        self.write()

    def write(self) -> None:
        self.state_file.write_text(
            json.dumps({"runner_pid": os.getpid(), "services": {s.name: s.pid for s in self.background()}}, indent=2)
        )

    def background(self) -> list[Service]:
        """Every process this platform started: the services, and the backfill while it runs."""
        return [*self.services, *([self.backfill] if self.backfill else [])]

    def check_alive(self) -> None:
        for service in self.services:
            if not service.running():
                raise LocalDevError(
                    f"the {service.name} stopped unexpectedly (exit code {service.process.returncode}); "
                    f"its log is {service.log_path}"
                )

    def stop_backfill(self) -> None:
        """Stop Airflow 2's backfill process and its tasks (Airflow 3's backfills are the scheduler's)."""
        if self.backfill and self.backfill.running():
            self.backfill.stop()

    def stop(self) -> None:
        """Stop every process, newest first, and forget them."""
        self.stop_backfill()
        while self.services:
            service = self.services.pop()
            try:
                service.stop()
            except Exception as err:  # noqa: BLE001 - keep stopping the others
                print(f"warning: stopping the {service.name}: {err}", file=sys.stderr)
        self.state_file.unlink(missing_ok=True)


def stop_recorded(state_dir: Path, timeout: float = 90.0) -> list[str]:
    """Stop a stack started by another process (``make stop``); return what was stopped."""
    state_file = state_dir / STATE_FILE
    stopped = []
    if state_file.exists():
        state = json.loads(state_file.read_text())
        runner = state.get("runner_pid")
        if runner and pid_alive(runner):
            # The runner stops its own children (and snapshots S3) on SIGTERM.
            os.kill(runner, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while pid_alive(runner) and time.monotonic() < deadline:
                time.sleep(0.2)
            stopped.append(f"runner (pid {runner})")
        for name, pid in state.get("services", {}).items():
            if pid_alive(pid):
                stop_process_group(pid)
                stopped.append(f"{name} (pid {pid})")
        state_file.unlink(missing_ok=True)
    leftover = postgres.running_postmaster(state_dir / "postgres")
    if leftover:
        os.kill(leftover, signal.SIGINT)
        deadline = time.monotonic() + 30
        while pid_alive(leftover) and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped.append(f"embedded Postgres (pid {leftover})")
    return stopped


def ensure_not_running(state_dir: Path) -> None:
    state_file = state_dir / STATE_FILE
    if state_file.exists():
        runner = json.loads(state_file.read_text()).get("runner_pid")
        if runner and runner != os.getpid() and pid_alive(runner):
            raise LocalDevError(f"the local platform is already running (pid {runner}); `make stop` stops it")
