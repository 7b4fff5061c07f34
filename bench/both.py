"""``make bench`` (``python -m bench.both``): both profiles, one after the other, side by side.

    BENCH_PROFILES=2,3        the profiles to measure, in this order (2: Airflow 2.10 with the
                              Astro SDK in .venv; 3: Airflow 3.3 on the providers' back-end in
                              .venv-airflow3)
    BENCH_OUT=<path>          the merged JSON (default bench/results/latest.json); each profile's
                              own goes beside it, as <name>.airflow2.json and <name>.airflow3.json
    BENCH_SCALE, BENCH_REPEAT, BENCH_EVENTS, BENCH_DAYS: as ``python -m bench`` reads them, the
                              same for both profiles

Each profile is ``<its venv>/bin/python -m bench``, in a platform of its own, never at the same
time as the other (they would share the cores). A profile whose run fails, or whose virtualenv is
missing, is in the table as not measured, with why; the other is still measured.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.stats import BenchError

ROOT = Path(__file__).resolve().parent.parent
VENVS = {2: ".venv", 3: ".venv-airflow3"}
NAMES = {2: "Airflow 2.10 + Astro SDK", 3: "Airflow 3.3 + providers"}
PASSED_ON = ("BENCH_SCALE", "BENCH_REPEAT", "BENCH_EVENTS", "BENCH_DAYS")


def parse_profiles(text: str) -> list[int]:
    """``"2,3"`` -> ``[2, 3]``."""
    profiles = []
    for item in (part.strip() for part in text.split(",")):
        if item not in ("2", "3") or int(item) in profiles:
            raise BenchError(f"BENCH_PROFILES is a list of 2 and 3 (e.g. 2,3), got {text!r}")
        profiles.append(int(item))
    return profiles


def profile_out(out: Path, major: int) -> Path:
    """Where one profile's own JSON goes: beside the merged one."""
    return out.with_name(f"{out.stem}.airflow{major}{out.suffix or '.json'}")


def run_profile(major: int, out: Path, env: dict[str, str]) -> dict:
    """``<venv>/bin/python -m bench`` of one profile; its document, or ``{"unmeasured": why}``."""
    python = ROOT / VENVS[major] / "bin" / "python"
    if not python.exists():
        how = "make venv" if major == 2 else "AIRFLOW_MAJOR=3 make venv"
        return {"unmeasured": f"{VENVS[major]} does not exist (`{how}` builds it)"}
    out.unlink(missing_ok=True)
    print(f"\n=== {NAMES[major]}: {VENVS[major]}/bin/python -m bench ===", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [str(python), "-m", "bench"],
        env={**env, "BENCH_OUT": str(out)},
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    last_lines: deque[str] = deque(maxlen=20)
    try:
        for line in process.stderr:
            sys.stderr.write(line)
            last_lines.append(line.rstrip())
        returncode = process.wait()
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached the child too, which stops what it started.
        process.wait()
        raise
    if out.exists():  # written at the end of a run, also when some figure was not measured (exit 1)
        return json.loads(out.read_text())
    errors = [line for line in last_lines if line.startswith("error:")]
    why = (errors[-1].removeprefix("error: ") if errors else (last_lines[-1] if last_lines else "no output")).strip()
    return {
        "unmeasured": f"`python -m bench` on this profile failed (exit {returncode}): {why}",
        "details": "\n".join(last_lines),
        "duration_s": round(time.monotonic() - started),
    }


def complete(document: dict) -> bool:
    """Whether a profile's run measured every figure."""
    if "unmeasured" in document:
        return False
    return not any(isinstance(value, dict) and "unmeasured" in value for value in document["results"].values())


def main() -> int:
    def on_signal(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    env = dict(os.environ)
    try:
        profiles = parse_profiles(env.get("BENCH_PROFILES", "2,3"))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(env.get("BENCH_OUT", ROOT / "bench" / "results" / "latest.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    documents: dict[str, dict] = {}
    try:
        for major in profiles:
            documents[f"airflow{major}"] = run_profile(major, profile_out(out, major), env)
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started is stopped", file=sys.stderr)
        return 130
    merged = {
        "timestamp": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        "what": "python -m bench once per profile, one after the other; each profile's document under profiles",
        "settings": {key: env[key] for key in PASSED_ON if key in env},
        "profiles": documents,
        "duration_s": round(time.monotonic() - started),
    }
    out.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    print()
    print(report.render_both(merged))
    print(f"\nwritten to {out} (each profile's own: {', '.join(profile_out(out, m).name for m in profiles)})")
    print(f"in {merged['duration_s']} s")
    return 0 if all(complete(document) for document in documents.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
