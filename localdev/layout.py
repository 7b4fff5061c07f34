"""Where the local platform's parts are: the project, its DAG and plugin folders, the databases
of the one local Postgres, the loopback ports, and the ``.env`` file ``make run`` reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from localdev import LocalDevError

ROOT = Path(__file__).resolve().parent.parent
# Stand-in DAG and plugin folders for a test (the platform's own: dags/ and plugins/).
DAGS_FOLDER_SETTING = "SHOPSTREAM_DAGS_FOLDER"
PLUGINS_FOLDER_SETTING = "SHOPSTREAM_PLUGINS_FOLDER"

# The databases that the one local Postgres holds.
METADATA_DB = "airflow"
SOURCE_DB = "shopstream_source"
WAREHOUSE_DB = "shopstream_warehouse"


def dags_folder(env: Mapping[str, str] | None = None) -> Path:
    """The DAG folder the stack runs: dags/, or ``SHOPSTREAM_DAGS_FOLDER``."""
    env = os.environ if env is None else env
    return Path(env.get(DAGS_FOLDER_SETTING) or ROOT / "dags").resolve()


def plugins_folder(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(PLUGINS_FOLDER_SETTING) or ROOT / "plugins").resolve()


def dag_ids(folder: Path | None = None) -> set[str]:
    """The DAGs of a DAG folder: one per file, named as its file (tests/dags checks it for dags/)."""
    return {path.stem for path in (folder or dags_folder()).glob("*.py")}


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the local stack, each movable by an environment variable."""

    webserver: int = 8080
    postgres: int = 5433
    s3: int = 5000
    inventory_api: int = 8081
    alert_sink: int = 8082
    log_server: int = 8793  # Airflow's default worker_log_server_port

    SETTINGS = {
        "webserver": "SHOPSTREAM_WEBSERVER_PORT",
        "postgres": "SHOPSTREAM_POSTGRES_PORT",
        "s3": "SHOPSTREAM_S3_PORT",
        "inventory_api": "SHOPSTREAM_INVENTORY_API_PORT",
        "alert_sink": "SHOPSTREAM_ALERT_SINK_PORT",
        "log_server": "SHOPSTREAM_LOG_SERVER_PORT",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ports:
        chosen = {}
        for name, variable in cls.SETTINGS.items():
            if variable in env:
                value = env[variable]
                if not value.isdigit() or not 0 < int(value) < 65536:
                    raise LocalDevError(f"{variable} must be a port number (1-65535), got {value!r}")
                chosen[name] = int(value)
        return cls(**chosen)


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of an Astro-style ``.env`` file (comments and blanks skipped)."""
    if not path.exists():
        return {}
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise LocalDevError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        values[key.strip()] = value.strip().strip("'\"")
    return values
