"""The environment every Airflow process of the local platform runs with: the platform's settings,
the profile's (localdev/profile.py), and the keys they share, made once per state folder."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from localdev.layout import METADATA_DB, ROOT, dags_folder, plugins_folder
from localdev.profile import Profile
from localdev.services import BackingServices

# Settings that the deployment image sets too (Dockerfile ENV); a test keeps them equal.
PLATFORM_AIRFLOW_CONFIG = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.* astro.*",
    "AIRFLOW__ASTRO_SDK__AUTO_ADD_INLETS_OUTLETS": "False",
    # How long an idle scheduler loop sleeps (default 1 s). A finished task's downstream task and a
    # Dataset event's consumer run wait for the next loop: 0.25 s took the trigger latency's p95
    # from 0.77 to 0.31 s and one day end to end from 2.7 to 2.0 times its critical path (make bench).
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.25",
    # How long a task's process may go on once its state is final (default 20 s): its failure and
    # success callbacks deliver the alerts then, each delivery bounded at 30 s and a success up to
    # two (alerting.DELIVERY_BOUND_SECONDS). Airflow 3 kills the process after this, cutting a page off.
    "AIRFLOW__CORE__TASK_SUCCESS_OVERTIME": "90",
}


@dataclass
class AirflowEnv:
    """The Airflow settings of one platform: its state folder, its profile, the services it points at."""

    state_dir: Path
    profile: Profile
    services: BackingServices  # the metadata database and the ports, read when the settings are made

    def secrets(self) -> dict[str, str]:
        """The profile's keys (a Fernet key, a web secret and, on Airflow 3, a JWT secret), made once
        per state folder, never committed."""
        path = self.state_dir / "secrets.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        missing = [name for name in self.profile.secret_names if name not in values]
        if not missing:
            return values
        from cryptography.fernet import Fernet

        for name in missing:
            values[name] = Fernet.generate_key().decode() if name == "fernet_key" else secrets.token_hex(32)
        # Created owner-only: written first and narrowed after, the keys would be readable meanwhile.
        # A file that lacks a key is replaced whole, by a new owner-only file.
        target = path if not path.exists() else path.with_name("secrets.json.new")
        target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(json.dumps(values))
        if target != path:
            target.replace(path)
        return values

    def build(self) -> dict[str, str]:
        """The environment of every Airflow process of this platform (this process's, plus its settings)."""
        keys = self.secrets()
        ports = self.services.ports
        env = dict(os.environ)
        env.update(PLATFORM_AIRFLOW_CONFIG)
        env.update(
            {
                "AIRFLOW_HOME": str(self.state_dir / "airflow"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder(env)),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder(env)),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                # A developer's machine also runs the databases: keep task processes to what its
                # cores can start within the DAG import timeout (raised for the same reason).
                "AIRFLOW__CORE__PARALLELISM": str(min(16, 4 * (os.cpu_count() or 2))),
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.services.pg.url(METADATA_DB, driver="postgresql+psycopg2"),
                # Task logs are served by localdev/log_server.py on loopback (Airflow's own server
                # binds every interface); the scheduler and triggerer skip theirs.
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "localdev.log_server.hostname",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports.log_server),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports.log_server),
            }
        )
        # The web process, its login and the settings that Airflow 3 renamed: localdev/profile.py.
        env.update(self.profile.airflow_env(keys, self.state_dir, ports.webserver))
        return env
