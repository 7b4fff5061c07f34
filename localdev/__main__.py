"""``python -m localdev run|stop``: the local ShopStream platform without Docker or Astro CLI."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from localdev import LocalDevError, backfill, profile
from localdev.layout import ROOT, Ports, read_dotenv
from localdev.profile import ADMIN_PASSWORD, ADMIN_USER
from localdev.stack import Stack
from localdev.tracking import ensure_not_running, stop_recorded


def state_dir() -> Path:
    """``SHOPSTREAM_STATE_DIR``, or the profile's own folder: .local/ (Airflow 2), .local-airflow3/ (Airflow 3)."""
    return Path(os.environ.get("SHOPSTREAM_STATE_DIR") or ROOT / profile.current().state_dir_name).resolve()


def report_history(history: backfill.Backfill | None) -> None:
    if history is None:
        print(f"history: no backfill ({backfill.SETTING}=0)", flush=True)
        return
    span = f"{history.dates[0]:%Y-%m-%d} to {history.dates[-1]:%Y-%m-%d}"
    todo = len(history.dates) - len(history.reported)
    if not todo:
        print(f"history: all {len(history.dates)} days ({span}) ingested already", flush=True)
        return
    print(
        f"history: backfilling {todo} of {len(history.dates)} days ({span}) through"
        f" {backfill.DAG_ID} in the background; the UI is usable meanwhile ({backfill.SETTING}=0 turns it off)",
        flush=True,
    )


def follow_history(stack: Stack, history: backfill.Backfill, done: datetime | None) -> datetime | None:
    """Print the backfill's progress; once it is complete, redraw the newest day's report once.

    Returns when the backfill completed, until that report is settled (then ``None`` again).
    """
    if not history.complete():
        for line in history.progress(stack.backfill_running()):
            print(line, flush=True)
        resumed = stack.resume_backfill(history)
        if resumed:
            print(resumed, flush=True)
        if not history.complete():
            return None
        print(
            f"history: all {len(history.dates)} days ingested; analytics_and_reporting_pipeline and"
            " observability_pipeline follow through their Datasets",
            flush=True,
        )
        return datetime.now(UTC)
    if done is None:
        return None
    verdict, run = backfill.latest_report(stack.metadata, done)
    if verdict == "pending":
        return done
    if verdict == "stale":
        stack.rerun_report(run["run_id"])
        print(
            f"history: re-running the daily report of {run['ds']} so that its 30-day chart covers the backfilled days",
            flush=True,
        )
    return None


def run(args: argparse.Namespace) -> int:
    # Like `astro dev start`, take settings from .env; the shell's own variables win.
    for key, value in read_dotenv(ROOT / ".env").items():
        os.environ.setdefault(key, value)
    if not 0.0 <= args.inventory_failure_rate <= 1.0:
        raise LocalDevError(f"the inventory failure rate must be between 0 and 1, got {args.inventory_failure_rate}")
    history_days = backfill.days_from_env(os.environ)
    stack = Stack(
        state_dir=state_dir(),
        history_days=max(21, backfill.seeded_days_needed(history_days, datetime.now(UTC))),
        ports=Ports.from_env(os.environ),
        postgres_url=os.environ.get("SHOPSTREAM_POSTGRES_URL") or None,
        failure_rate=args.inventory_failure_rate,
    )
    ensure_not_running(stack.state_dir)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("starting services (Postgres, mocked S3, inventory API simulator, alert sink), seeding...", flush=True)
        stack.start_services()
        print("preparing Airflow (db migrate, airflow_settings.yaml, admin user)...", flush=True)
        stack.prepare_airflow()
        names = ", ".join(p.args[0] for p in stack.profile.processes)
        print(f"starting {stack.profile.label} ({names}; LocalExecutor)...", flush=True)
        import_errors = stack.start_airflow()
        for name, error in sorted(import_errors.items()):
            print(f"warning: {name} does not import, its DAG is not running: {error}", flush=True)
        history = stack.start_backfill(history_days)
        print(
            f"\nShopStream is up: http://localhost:{stack.ports.webserver}  (login {ADMIN_USER} / {ADMIN_PASSWORD})\n"
            f"  Postgres         {stack.pg.url()}  databases airflow, shopstream_source, shopstream_warehouse\n"
            f"  mocked S3        {stack.lake.endpoint_url}  bucket shopstream\n"
            f"  inventory API    http://127.0.0.1:{stack.ports.inventory_api}/v1/stock\n"
            f"  alert sink       http://127.0.0.1:{stack.ports.alert_sink}/messages\n"
            f"  logs             {stack.logs}\n"
            "Ctrl-C (or `make stop`) stops everything.",
            flush=True,
        )
        report_history(history)
        last_seed = last_progress = time.monotonic()
        history_done = None
        while True:
            stack.check_alive()
            if history and time.monotonic() - last_progress > 5:
                history_done = follow_history(stack, history, history_done)
                last_progress = time.monotonic()
            if time.monotonic() - last_seed > 60:  # today's orders keep arriving
                stack.seed_source()
                last_seed = time.monotonic()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


def airflow(args: argparse.Namespace) -> int:
    """Run the Airflow CLI against the running local platform."""
    for key, value in read_dotenv(ROOT / ".env").items():
        os.environ.setdefault(key, value)
    stack = Stack(
        state_dir=state_dir(), ports=Ports.from_env(os.environ), postgres_url=os.environ.get("SHOPSTREAM_POSTGRES_URL")
    )
    if not (stack.state_dir / "secrets.json").exists():
        raise LocalDevError("the local platform has never run here; start it with `make run`")
    stack.attach()
    return subprocess.run([sys.executable, "-m", "airflow", *args.args], env=stack.airflow_env(), cwd=ROOT).returncode


def stop(_args: argparse.Namespace) -> int:
    stopped = stop_recorded(state_dir())
    print("stopped " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start the whole platform and keep it running")
    run_parser.add_argument(
        "--inventory-failure-rate",
        type=float,
        default=float(os.environ.get("SHOPSTREAM_INVENTORY_FAILURE_RATE", "0.1")),
        help="share of inventory API calls that fail or stall (default 0.1)",
    )
    run_parser.set_defaults(handler=run)
    commands.add_parser("stop", help="stop a platform started by `run`").set_defaults(handler=stop)
    airflow_parser = commands.add_parser("airflow", help="the Airflow CLI, set up for the local platform")
    airflow_parser.add_argument("args", nargs=argparse.REMAINDER)
    airflow_parser.set_defaults(handler=airflow)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except LocalDevError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
