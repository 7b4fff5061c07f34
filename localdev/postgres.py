"""Postgres for local development and tests: embedded (pgserver's binaries) or external.

The embedded server listens on loopback TCP only and asks for a password (scram-sha-256): any
local user or process could otherwise connect as the superuser, and a superuser can run
programs as the server's user. The password is a fixed, visibly local one (``PASSWORD``); the
server keeps its data in the state folder so that a second ``make run`` finds the same
databases. A data folder initialised by an earlier version with ``trust`` is moved to
passwords the first time it starts (``_require_passwords``).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg2
from psycopg2 import sql

from localdev import LocalDevError
from localdev.processes import Service, as_user, ensure_port_free, pid_alive, spawn, wait_until

# Postgres refuses to run as root; when we are root, the server runs as this system user.
SYSTEM_USER = "shopstream-pg"
SUPERUSER = "postgres"
PASSWORD = "shopstream-local"  # local development only: the README's quick start states it

# Who may connect, and how: TCP on loopback with a password; the server has no Unix socket.
HBA = """\
# Written by localdev/postgres.py on every start.
# TYPE  DATABASE  USER  ADDRESS       METHOD
host    all       all   127.0.0.1/32  scram-sha-256
host    all       all   ::1/128       scram-sha-256
"""


@dataclass
class PostgresServer:
    """Where a Postgres server answers, and the process behind it when we started it."""

    host: str
    port: int
    user: str
    password: str = ""
    service: Service | None = None

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"{driver}://{auth}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", timeout: int = 5):
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=database,
            connect_timeout=timeout,
        )

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; return whether it was created."""
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                return True
        finally:
            conn.close()

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()


def bin_dir() -> Path:
    """The Postgres binaries that the ``pgserver`` wheel ships."""
    # Located, not imported: importing pgserver sets up its own server machinery.
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise LocalDevError("the pgserver package is not installed; run `make venv`")
    path = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise LocalDevError(f"the pgserver package has no Postgres binaries at {path}")
    return path


def _system_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _let_user_reach(path: Path) -> None:
    """Give everyone search permission on ``path``'s ancestors (root runs only)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def running_postmaster(data_dir: Path) -> int | None:
    """The pid of a server still running on ``data_dir``, if any."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def start_embedded(data_dir: Path, port: int, log_path: Path, host: str = "127.0.0.1") -> PostgresServer:
    """Initialise ``data_dir`` on first use and start a server on ``host:port``."""
    binaries = bin_dir()
    user = _system_user()
    data_dir = data_dir.resolve()
    running = running_postmaster(data_dir)
    if running:
        raise LocalDevError(
            f"an embedded Postgres from an earlier run still holds {data_dir} (pid {running}); run `make stop` first"
        )
    ensure_port_free(host, port, "embedded Postgres", "SHOPSTREAM_POSTGRES_PORT")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if user:
        _let_user_reach(binaries)
        _let_user_reach(data_dir.parent)
        uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(mode=0o700, exist_ok=True)
        if user:
            os.chown(data_dir, uid, gid)
        # initdb reads the superuser's password from a file: on its command line it would show in ps.
        password_file = data_dir.parent / f".{data_dir.name}.pwfile"
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(PASSWORD + "\n")
        if user:
            os.chown(password_file, uid, gid)
        try:
            result = subprocess.run(
                [
                    str(binaries / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                capture_output=True,
                text=True,
                **as_user(user),
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise LocalDevError(f"initdb failed for {data_dir}: {result.stderr.strip().splitlines()[-1]}")
    trusting = _trusts(data_dir / "pg_hba.conf")
    if not trusting:
        _write_hba(data_dir / "pg_hba.conf")
    service = spawn(
        "embedded Postgres",
        [
            str(binaries / "postgres"),
            "-D",
            str(data_dir),
            "-h",
            host,
            "-p",
            str(port),
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ],
        log_path,
        user=user,
        # SIGINT is Postgres's "fast" shutdown: roll back open transactions, then exit cleanly.
        stop_signal=signal.SIGINT,
    )
    # Until a trusting data folder has its password, connect without one.
    server = PostgresServer(
        host=host, port=port, user=SUPERUSER, password="" if trusting else PASSWORD, service=service
    )

    def answers() -> bool:
        server.connect(timeout=2).close()
        return True

    wait_until(answers, service, timeout=60, what="accepting connections")
    if trusting:
        _require_passwords(server, data_dir / "pg_hba.conf")
        server.password = PASSWORD
    service.url = server.url()
    return server


def _trusts(hba: Path) -> bool:
    """Whether an (older) pg_hba.conf lets any connection in without a password."""
    lines = [line.split() for line in hba.read_text().splitlines() if not line.lstrip().startswith("#")]
    return any(fields[-1:] == ["trust"] for fields in lines)


def _write_hba(hba: Path) -> None:
    if hba.read_text() != HBA:
        hba.write_text(HBA)  # rewritten in place: its owner (the server's user) stays


def _require_passwords(server: PostgresServer, hba: Path) -> None:
    """Move a data folder that ``initdb --auth=trust`` made to passwords: set the superuser's, then
    require one for every connection and have the running server reload its rules."""
    conn = server.connect()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SET password_encryption = 'scram-sha-256'")
            cur.execute(sql.SQL("ALTER ROLE {} PASSWORD %s").format(sql.Identifier(server.user)), (PASSWORD,))
            _write_hba(hba)
            cur.execute("SELECT pg_reload_conf()")
    finally:
        conn.close()


def connect_external(url: str) -> PostgresServer:
    """Use the server that ``url`` names; fail in one line when it does not answer."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"} or not parts.hostname:
        raise LocalDevError(f"SHOPSTREAM_POSTGRES_URL must look like postgresql://user:password@host:port, got {url!r}")
    server = PostgresServer(
        host=parts.hostname,
        port=parts.port or 5432,
        user=unquote(parts.username or SUPERUSER),
        password=unquote(parts.password or ""),
    )
    try:
        server.connect().close()
    except psycopg2.OperationalError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "no answer"
        raise LocalDevError(
            f"cannot reach the Postgres named by SHOPSTREAM_POSTGRES_URL ({server.host}:{server.port}): {reason}"
        ) from None
    return server
