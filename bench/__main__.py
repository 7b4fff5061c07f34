"""``make bench`` (``python -m bench``): every figure, a table on stdout, one JSON file.

    BENCH_SCALE=10k,100k      orders per day for orders_etl (default; 10k,100k,1M for the full set)
    BENCH_REPEAT=3            runs per figure (median, min, max)
    BENCH_EVENTS=24           Dataset events for the trigger latency (at least 20)
    BENCH_DAYS=<BENCH_REPEAT> business days through all four DAGs (each takes minutes)
    BENCH_OUT=<path>          where the JSON goes (default bench/results/latest.airflow<2 or 3>.json,
                              where ``python -m bench.both`` puts each profile's beside latest.json)

Everything runs on `make run`'s launchers in a temporary folder, removed at the end (kept,
and named, when a measurement fails); Ctrl-C stops every process it started.

It measures the profile of the Airflow beside the interpreter that runs it (``.venv``:
Airflow 2.10 with the Astro SDK; ``.venv-airflow3``: Airflow 3.3 on the providers' back-end).
A figure that cannot be measured is recorded as ``{"unmeasured": <why>}`` and the others are
still measured (the JSON and the table are written, and the exit code is 1); ``python -m
bench.both`` runs this once per profile and puts them side by side.
"""

from __future__ import annotations

import json
import os
import platform as host
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import endtoend, etl, latency, parse, report
from bench.platform import BenchPlatform
from bench.stats import BenchError, parse_repeat, parse_scales
from localdev import LocalDevError
from localdev.profile import airflow_major
from localdev.stack import ROOT

DEFAULT_SCALE = "10k,100k"


def settings(env: dict[str, str]) -> dict:
    events = env.get("BENCH_EVENTS", "24")
    if not events.isdigit() or not 20 <= int(events) <= 200:
        raise BenchError(f"BENCH_EVENTS must be a whole number from 20 to 200, got {events!r}")
    scale_text = env.get("BENCH_SCALE", DEFAULT_SCALE)
    repeat = parse_repeat(env.get("BENCH_REPEAT", "3"))
    days = env.get("BENCH_DAYS", str(repeat))
    if not days.isdigit() or not 1 <= int(days) <= 10:
        raise BenchError(f"BENCH_DAYS must be a whole number from 1 to 10, got {days!r}")
    return {
        "BENCH_SCALE": scale_text,
        "scales": parse_scales(scale_text),
        "BENCH_REPEAT": repeat,
        "BENCH_DAYS": int(days),
        "BENCH_EVENTS": int(events),
        "out": Path(env.get("BENCH_OUT", ROOT / "bench" / "results" / f"latest.airflow{airflow_major()}.json")),
    }


def step(title: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {title}", flush=True)


def unmeasured(err: Exception) -> dict:
    """A figure that could not be measured, and why (the error's first line, as the table shows it)."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    print(f"  not measured: {str(err).strip()}", file=sys.stderr, flush=True)
    return {"unmeasured": lines[0], "details": "\n".join(lines[1:16])}


def run(config: dict) -> dict:
    repeat = config["BENCH_REPEAT"]
    results: dict = dict.fromkeys(("orders_etl", "growth", "dataset_latency", "end_to_end", "parse"))
    step("starting the platform (embedded Postgres, moto S3, simulators; db migrate, settings)")
    platform = BenchPlatform.start()
    try:
        facts = platform.probe("facts")
        postgres = platform.metadata("SHOW server_version")[0]["server_version"]
        step(f"profile: Airflow {facts['versions']['apache-airflow']}, SQL steps on {facts['sql_backend']}")
        step(f"4. parse time: {repeat} cold processes per DAG file and for the whole DagBag")
        try:
            results["parse"] = parse.measure(platform, repeat)
        except (BenchError, LocalDevError) as err:
            results["parse"] = unmeasured(err)
        step("starting the scheduler (LocalExecutor) on the platform's DAGs and two benchmark DAGs")
        latency.write_dags(platform, config["BENCH_EVENTS"])
        try:
            platform.start_scheduler([*endtoend.DAGS, latency.PRODUCER, latency.CONSUMER])
            upstream = platform.probe("graph", env=platform.env(AIRFLOW__CORE__DAGS_FOLDER=str(platform.dags_folder)))
        except (BenchError, LocalDevError) as err:
            results["dataset_latency"] = results["end_to_end"] = unmeasured(err)
        else:
            step(f"2. Dataset trigger latency over {config['BENCH_EVENTS']} events")
            try:
                results["dataset_latency"] = latency.measure(
                    platform, config["BENCH_EVENTS"], facts["scheduler_settings"]
                )
            except (BenchError, LocalDevError) as err:
                results["dataset_latency"] = unmeasured(err)
            step(f"3. one day end to end through the four DAGs, {config['BENCH_DAYS']} day(s)")
            try:
                results["end_to_end"] = endtoend.measure(platform, upstream, config["BENCH_DAYS"])
            except (BenchError, LocalDevError) as err:
                results["end_to_end"] = unmeasured(err)
        platform.stop_scheduler()
        step(f"1. orders_etl against COPY + merge at {config['BENCH_SCALE']} orders/day, {repeat} runs each")
        try:
            results["orders_etl"] = etl.measure(platform, config["scales"], repeat)
            results["growth"] = report.growth(results["orders_etl"])
        except (BenchError, LocalDevError) as err:
            results["orders_etl"] = results["growth"] = unmeasured(err)
        # A figure that failed leaves its logs behind to be read.
        platform.keep = any(isinstance(value, dict) and "unmeasured" in value for value in results.values())
    except BaseException:
        platform.keep = not isinstance(sys.exc_info()[1], KeyboardInterrupt)
        raise
    finally:
        step("stopping every process the benchmark started")
        platform.stop()
    return {
        "timestamp": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "profile": {
            "airflow_major": facts["airflow_major"],
            "sql_backend": facts["sql_backend"],
            "backend_imports": facts["backend_imports"],
            "interpreter": sys.executable,
        },
        "machine": {"cores": os.cpu_count(), "platform": host.platform(), "machine": host.machine()},
        "versions": {"python": host.python_version(), "postgres": postgres, **facts["versions"]},
        "settings": {key: config[key] for key in ("BENCH_SCALE", "BENCH_REPEAT", "BENCH_EVENTS", "BENCH_DAYS")},
        "results": results,
        "notes": report.misses(results, facts["sql_backend"], facts["airflow_major"]),
    }


def main() -> int:
    def on_signal(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        config = settings(dict(os.environ))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        document = run(config)
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started is stopped", file=sys.stderr)
        return 130
    except (BenchError, LocalDevError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    document["duration_s"] = round(time.monotonic() - started)
    out: Path = config["out"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print()
    print(report.render(document))
    print(f"\nwritten to {out} in {document['duration_s']} s")
    missing = [name for name, value in document["results"].items() if isinstance(value, dict) and "unmeasured" in value]
    if missing:
        print(f"not measured: {', '.join(missing)} (the reasons are in the table)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
