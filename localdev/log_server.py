"""Airflow's task log server (``airflow.utils.serve_logs``), bound to loopback.

The webserver fetches a running or deferred task's log from the machine that runs it, on
``[logging] worker_log_server_port`` (the triggerer's on ``trigger_log_server_port``). Airflow
2.10.5's ``serve_logs`` binds every interface (``[::]`` or ``0.0.0.0``) and has no setting for
the address, so ``make run`` starts the scheduler and the triggerer with ``--skip-serve-logs``
and runs the same Flask app here, on 127.0.0.1 only: a developer's task logs stay on the machine.
Both ports point here, since both processes write to the one log folder. Airflow 3.3's server is
a FastAPI app (``airflow.utils.serve_logs.log_server``) that its ``serve_logs`` runs with uvicorn on
every interface too; here uvicorn runs it on 127.0.0.1. Its requests are signed with ``[api]
secret_key``, which every process of the stack shares.

``python -m localdev.log_server <port>``, in the stack's Airflow environment (secret key, log folder).
"""

from __future__ import annotations

import sys

HOST = "127.0.0.1"


def hostname() -> str:
    """``[core] hostname_callable`` of the local stack: the webserver asks this host for served logs.

    The default (the machine's FQDN) may resolve to an address the loopback server does not answer on.
    """
    return HOST


def serve(port: int, host: str = HOST) -> None:
    from localdev.profile import current

    if current().log_server_app() == "fastapi":
        import uvicorn

        uvicorn.run(
            "airflow.utils.serve_logs.log_server:get_app",
            factory=True,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
        )
        return
    from airflow.utils.serve_logs import GunicornOption, StandaloneGunicornApplication, create_app

    # One worker: the only client is the local webserver.
    options = [GunicornOption("bind", f"{host}:{port}"), GunicornOption("workers", 1)]
    StandaloneGunicornApplication(create_app(), options).run()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit() or not 0 < int(argv[0]) < 65536:
        print(f"usage: python -m localdev.log_server <port 1-65535>, got {argv}", file=sys.stderr)
        return 2
    serve(int(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
