"""The local platform's long-running Airflow processes, each started in the background with its
output in the state folder's ``logs/``: the profile's processes (localdev/profile.py) and the task
log server on loopback (localdev/log_server.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localdev.airflow_env import AirflowEnv
from localdev.layout import ROOT
from localdev.processes import Service, launch
from localdev.services import BackingServices


@dataclass
class AirflowProcesses:
    """Starts one platform's Airflow processes; each runs in ``env``, or the platform's environment."""

    environment: AirflowEnv
    services: BackingServices  # where the web process and the log server listen

    @property
    def logs(self) -> Path:
        return self.environment.state_dir / "logs"

    def start(self, command: str, env: Mapping[str, str] | None = None, log_name: str = "") -> Service:
        """One of the profile's Airflow processes (``scheduler``, ``dag-processor``, ``triggerer``,
        ``webserver`` or ``api-server``) in the background, its output in ``logs/``."""
        process = self.environment.profile.process(command)
        return launch(
            process.name,
            "airflow",
            process.args,
            self.logs / (log_name or process.log),
            env=dict(env or self.environment.build()),
            cwd=ROOT,
            port=self.services.ports.webserver if process.web else None,
        )

    def scheduler(self, env: Mapping[str, str] | None = None, log_name: str = "scheduler.log") -> Service:
        """``airflow scheduler`` (LocalExecutor) in the background, its output in ``logs/<log_name>``.

        Without Airflow's log server, which would listen on every interface: :meth:`log_server`.
        """
        return self.start("scheduler", env, log_name)

    def triggerer(self, env: Mapping[str, str] | None = None) -> Service:
        """``airflow triggerer``: deferred tasks wait in it and resume when their trigger fires."""
        return self.start("triggerer", env)

    def dag_processor(self, env: Mapping[str, str] | None = None) -> Service:
        """``airflow dag-processor`` (Airflow 3: the scheduler parses no DAG files itself)."""
        return self.start("dag-processor", env)

    def web(self, env: Mapping[str, str] | None = None) -> Service:
        """The UI and REST API: ``airflow webserver`` (Airflow 2) or ``airflow api-server`` (Airflow 3,
        which also serves the execution API that task processes report to)."""
        return self.start(self.environment.profile.web.args[0], env)

    def log_server(self, env: Mapping[str, str] | None = None) -> Service:
        """Airflow's task log server on 127.0.0.1 (localdev/log_server.py), for the web process."""
        return launch(
            "Airflow log server",
            "localdev.log_server",
            [str(self.services.ports.log_server)],
            self.logs / "log_server.log",
            env=dict(env or self.environment.build()),
            cwd=ROOT,
            port=self.services.ports.log_server,
        )
