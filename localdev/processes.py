"""Start, watch and stop the child processes of the local stack."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from localdev import LocalDevError


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` and it can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_port_free(host: str, port: int, service: str, setting: str) -> None:
    """Fail with one clear line when ``port`` is taken, naming the setting that moves it."""
    if not port_is_free(host, port):
        raise LocalDevError(
            f"port {port} on {host} is already in use, and the {service} needs it; "
            f"stop whatever holds it or choose another port with {setting}=<port>"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port that the kernel says is free right now (for tests and throwaway services)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    """A child process started in its own session, so that its whole tree can be stopped."""

    name: str
    process: subprocess.Popen
    log_path: Path
    url: str = ""
    stop_signal: int = signal.SIGTERM
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the process and everything it started; SIGKILL what outlives ``timeout``."""
        hooks, self.on_stop = self.on_stop, []
        for hook in hooks:
            try:
                hook()
            except Exception as err:  # noqa: BLE001 - a failed hook must not keep the process alive
                print(f"warning: before stopping the {self.name}: {err}", file=sys.stderr)
        stop_process_group(self.process.pid, self.stop_signal, timeout)
        if self.process.poll() is None:
            self.process.wait(timeout=5)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (ours or another user's)."""
    return _signal_reaches(os.kill, pid)


def _group_alive(pgid: int) -> bool:
    return _signal_reaches(os.killpg, pgid)


def _signal_reaches(send, target: int) -> bool:
    try:
        send(target, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else (the Postgres system user)
        return True
    return True


def stop_process_group(pgid: int, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Signal a process group, wait for it to go, and kill whatever remains after ``timeout``.

    Zombie children of this process still count as members until reaped, so the leader is
    reaped along the way when it is ours.
    """
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pgid)
        if not _group_alive(pgid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(50):
        _reap(pgid)
        if not _group_alive(pgid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def as_user(user: str | None) -> dict:
    """``subprocess`` arguments that run a child as ``user`` with that user's group only.

    Keeping root's groups would make group-class permission bits (often none on root's
    folders) apply instead of the "other" bits that let the user through.
    """
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Service:
    """Start ``argv`` in a new session with its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                **as_user(user),
            )
        except FileNotFoundError as err:
            raise LocalDevError(f"cannot start the {name}: {err.filename} not found") from None
    return Service(name=name, process=process, log_path=log_path, stop_signal=stop_signal)


def launch(
    name: str,
    module: str,
    args: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    setting: str = "",
    health: str = "",
    timeout: float = 30.0,
) -> Service:
    """Start ``python -m <module> <args>`` in the background (:func:`spawn`).

    A server names its ``port`` on ``host``, which becomes the service's ``url``. With ``setting``
    (the variable that moves the port) a taken port fails first, in one clear line; with ``health``
    (a path that answers 200 once the server serves) the launch waits up to ``timeout`` for it.
    """
    if port is not None and setting:
        ensure_port_free(host, port, name, setting)
    service = spawn(name, [sys.executable, "-m", module, *args], log_path, env=env, cwd=cwd)
    if port is not None:
        service.url = f"http://{host}:{port}"
    if health:

        def answers() -> bool:
            with urllib.request.urlopen(f"{service.url}{health}", timeout=2) as response:
                return response.status == 200

        wait_until(answers, service, timeout=timeout, what="answering")
    return service


def wait_until(ready: Callable[[], bool], service: Service, *, timeout: float = 60.0, what: str = "ready") -> None:
    """Poll ``ready`` until it holds; fail clearly if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running():
            raise LocalDevError(
                f"the {service.name} exited with code {service.process.returncode} before it "
                f"was {what}; its log is {service.log_path}"
            )
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - any failure to answer means "not yet"
            pass
        time.sleep(0.2)
    service.stop()
    raise LocalDevError(f"the {service.name} was not {what} within {timeout:.0f}s; its log is {service.log_path}")
