"""Airflow CLI commands run to completion in the local platform's environment: one command, the
settings file, and the preparation of a fresh (or migrated) metadata database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localdev import LocalDevError
from localdev.airflow_env import AirflowEnv
from localdev.layout import ROOT
from localdev.services import BackingServices


@dataclass
class AirflowCli:
    """``python -m airflow ...`` for one platform; each command's environment is ``env``, or the platform's."""

    environment: AirflowEnv
    services: BackingServices  # the hosts that airflow_settings.yaml's connections are pointed at

    def run_airflow(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command to completion in this stack's environment (``env``)."""
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=dict(env or self.environment.build()),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=timeout,
        )

    def airflow(
        self, *args: str, env: Mapping[str, str] | None = None, what: str = "", timeout: float | None = None
    ) -> str:
        """Run one ``airflow`` CLI command; on failure raise ``LocalDevError`` with its last words."""
        result = self.run_airflow(*args, env=env, timeout=timeout)
        if result.returncode != 0:
            lines = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()
            message = f"{what or 'airflow ' + ' '.join(args)} failed: {lines[-1]}"
            raise LocalDevError(message, details="\n".join(lines[-15:]))
        return result.stdout

    def apply_settings(self, env: Mapping[str, str] | None = None) -> str:
        """Apply ``airflow_settings.yaml`` (localdev/settings.py), its hosts pointed at this stack."""
        command = [sys.executable, "-m", "localdev.settings", "apply", str(ROOT / "airflow_settings.yaml")]
        for endpoint in self.services.endpoints():
            command += ["--endpoint", endpoint]
        result = subprocess.run(
            command, env=dict(env or self.environment.build()), capture_output=True, text=True, cwd=ROOT
        )
        if result.returncode != 0:
            last = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
            raise LocalDevError(last.removeprefix("error: "))
        return result.stdout.strip()

    def prepare(self) -> None:
        """Migrate the metadata database, apply ``airflow_settings.yaml``, create the admin user."""
        env = self.environment.build()
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate", env=env, what="airflow db migrate")
        print(self.apply_settings(env))
        profile = self.environment.profile
        profile.prepare_state(self.environment.state_dir)
        for command in profile.admin_commands():
            self.airflow(*command, env=env, what="creating the admin user")

    def register_dags(self, env: Mapping[str, str] | None = None) -> None:
        """Parse the DAG folder once, in one process, and write its DAGs and Datasets.

        A scheduler's first parse runs ``parsing_processes`` files at once, and Airflow 2.10
        inserts a Dataset with a select-then-insert: two files naming the same Dataset can both
        insert it, and the loser's file fails with a ``UniqueViolation`` until its next parse.
        An event on a Dataset that has no row yet is dropped ("DatasetModel ... not found"),
        so the first day's downstream DAG would never run. Registering first leaves the
        scheduler only rows to update.
        """
        self.airflow("dags", "reserialize", env=env, what="registering the DAGs and their Datasets")
