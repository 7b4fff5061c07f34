"""`make run` backfills the seeded history through sales_core_pipeline with Airflow's own backfill.

The platform test runs two days (SHOPSTREAM_BACKFILL_DAYS=2) to keep it short; docs/local-platform.md
states how long the default 21 takes. The date arithmetic and the setting are checked apart.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest

from localdev import LocalDevError, backfill
from tests.localdev.test_run import api, metadata_url, run_env, run_once, start_run, stop_run


@pytest.mark.parametrize(
    ("now", "first", "last"),
    [
        # After 02:00 the scheduler runs the interval that ended at 02:00 today (logical date yesterday).
        (datetime(2026, 11, 26, 16, 0, tzinfo=UTC), datetime(2026, 11, 22, 2, tzinfo=UTC),
         datetime(2026, 11, 24, 2, tzinfo=UTC)),
        (datetime(2026, 11, 26, 2, 0, tzinfo=UTC), datetime(2026, 11, 22, 2, tzinfo=UTC),
         datetime(2026, 11, 24, 2, tzinfo=UTC)),
        # Before 02:00 that interval has not ended: everything moves a day back.
        (datetime(2026, 11, 26, 1, 59, tzinfo=UTC), datetime(2026, 11, 21, 2, tzinfo=UTC),
         datetime(2026, 11, 23, 2, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_the_backfill_ends_the_day_before_the_schedulers_own_run(now, first, last):
    dates = backfill.logical_dates(3, now)
    assert (dates[0], dates[-1], len(dates)) == (first, last, 3)
    assert all((b - a).days == 1 for a, b in itertools.pairwise(dates))


def test_the_seeded_history_covers_every_backfilled_interval():
    now = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    for days in (1, 21, 40):
        first = backfill.logical_dates(days, now)[0]
        # The first interval starts at 02:00 on its day: the source must hold that day.
        assert (now.date() - first.date()).days == backfill.seeded_days_needed(days, now)
    assert backfill.seeded_days_needed(0, now) == 0


@pytest.mark.parametrize("value", ["-1", "2.5", "many", "367", "1e3", " 7x"])
def test_a_bad_backfill_setting_is_one_clear_error(value):
    with pytest.raises(LocalDevError, match=r"SHOPSTREAM_BACKFILL_DAYS must be a whole number of days from 0 to 366"):
        backfill.days_from_env({"SHOPSTREAM_BACKFILL_DAYS": value})


@pytest.mark.parametrize(("value", "days"), [(None, 21), ("", 21), ("0", 0), ("7", 7), (" 3 ", 3)])
def test_the_backfill_setting(value, days):
    assert backfill.days_from_env({} if value is None else {"SHOPSTREAM_BACKFILL_DAYS": value}) == days


def report_run(state: str, report_started: datetime | None, end_date: datetime | None) -> dict:
    return {
        "run_id": "dataset_triggered__2026-12-05T19:21:22+00:00",
        "state": state,
        "end_date": end_date,
        "ds": "2026-12-04",
        "report_started": report_started,
    }


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-12-05T{clock}+00:00")


@pytest.mark.parametrize(
    ("run", "verdict"),
    [
        # The ordinary case: the scheduler's run of the newest day drew its report while the
        # backfill was still loading, and finished after the history was in.
        (report_run("success", report_started=at("19:22:40"), end_date=at("19:24:16")), "stale"),
        (report_run("success", report_started=at("19:20:00"), end_date=at("19:21:00")), "stale"),
        (report_run("success", report_started=at("19:23:40"), end_date=at("19:25:00")), "fresh"),
        (report_run("running", report_started=at("19:22:40"), end_date=None), "pending"),
        (report_run("queued", report_started=None, end_date=None), "pending"),
        (None, "pending"),
    ],
)
def test_the_newest_report_is_redrawn_when_it_was_drawn_before_the_history_was_in(run, verdict):
    asked = []

    def query(statement, params):
        asked.append((statement, params))
        return [run] if run else []

    assert backfill.latest_report(query, history_done=at("19:23:36")) == (verdict, run)
    assert asked == [(backfill.LATEST_REPORT, (backfill.REPORT_TASKS, backfill.REPORTS_DAG_ID))]


@pytest.mark.services
@pytest.mark.xdist_group("platform")
def test_a_bad_backfill_setting_stops_run_before_anything_starts(tmp_path):
    result = run_once(run_env(tmp_path / "state", SHOPSTREAM_BACKFILL_DAYS="lots"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: SHOPSTREAM_BACKFILL_DAYS must be a whole number of days from 0 to 366, got 'lots'"
    ]
    assert not (tmp_path / "state" / "postgres").exists()


def sales_runs(env) -> dict[str, dict]:
    runs = api(env, "/dags/sales_core_pipeline/dagRuns?limit=100")["dag_runs"]
    return {run["logical_date"]: run for run in runs}


def wait_for_lines(process, pattern: str, count: int, timeout: float, logs: Path | None = None) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [line for line in process.output if re.search(pattern, line)]
        if len(found) >= count:
            return found
        assert process.poll() is None, "".join(process.output)
        time.sleep(2)
    tail = ""
    if logs is not None:  # what the backfill was doing, for the failure's reader
        log = logs / "backfill.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:]) if log.exists() else "(no backfill.log)"
    raise AssertionError(
        f"no {count} lines matching {pattern!r} in {timeout} s:\n" + "".join(process.output) + "\n" + tail
    )


def kill_backfill(state: Path) -> int:
    """SIGKILL the running Airflow backfill and its task processes, as an OOM kill would; its pid."""
    deadline = time.monotonic() + 60
    while (pid := json.loads((state / "stack.json").read_text())["services"].get("Airflow backfill")) is None:
        assert time.monotonic() < deadline, "no Airflow backfill in stack.json"
        time.sleep(1)
    time.sleep(10)  # into its first runs
    os.killpg(pid, signal.SIGKILL)
    return pid


def wait_for_report_after(env, moment: str, timeout: float = 300) -> dict:
    """The newest business date's daily report task, once it has succeeded after ``moment``."""
    deadline = time.monotonic() + timeout
    while True:
        with (
            psycopg2.connect(metadata_url(env)) as conn,
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
        ):
            cur.execute(backfill.LATEST_REPORT, backfill.LATEST_REPORT_PARAMS)
            latest = cur.fetchone()
            cur.execute(
                "SELECT state, end_date, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s"
                " AND task_id = 'daily_reports.write_report_files'",
                (backfill.REPORTS_DAG_ID, latest["run_id"]),
            )
            report = cur.fetchone()
        if report and report["state"] == "success" and report["end_date"] > datetime.fromisoformat(moment):
            return {**latest, **report}
        assert time.monotonic() < deadline, f"the report of {latest} was not drawn after {moment}: {report}"
        time.sleep(5)


@pytest.mark.services
@pytest.mark.xdist_group("platform")
@pytest.mark.timeout(1500)
def test_run_backfills_the_history_and_a_second_run_does_not_redo_it(tmp_path):
    """The backfill's own process is killed once along the way: run starts it again."""
    env = run_env(tmp_path / "state", SHOPSTREAM_BACKFILL_DAYS="2")
    wanted = backfill.logical_dates(2, datetime.now(UTC))
    process, output = start_run(env)
    try:
        assert re.search(r"history: backfilling 2 of 2 days \(\S+ to \S+\) through sales_core_pipeline", output)
        kill_backfill(tmp_path / "state")
        logs = tmp_path / "state" / "logs"
        wait_for_lines(
            process,
            r"history: the backfill stopped \(exit code -9, .*\); restarted for the 2 unfinished days",
            1,
            120,
            logs,
        )
        lines = wait_for_lines(process, r"history: \d{4}-\d\d-\d\d ingested", 2, timeout=900, logs=logs)
        # In the order the runs finish: a backfill held back by the scheduler's own run
        # (max_active_runs counts it) may start the later day first once the slot frees.
        assert sorted(line.split()[1] for line in lines) == [f"{d:%Y-%m-%d}" for d in wanted]
        assert "(2/2 days" in lines[-1]
        wait_for_lines(process, r"history: all 2 days ingested; analytics_and_reporting_pipeline", 1, timeout=30)
        runs = sales_runs(env)
        backfilled = {key: run for key, run in runs.items() if run["run_type"] == "backfill"}
        assert sorted(datetime.fromisoformat(key) for key in backfilled) == wanted
        assert all(run["state"] == "success" for run in backfilled.values())
        # The newest day's report was made by the scheduler's own run before the history was in;
        # it is drawn again (or was drawn late enough) over the backfilled days.
        assert wait_for_report_after(env, max(run["end_date"] for run in backfilled.values()))
        # Each backfilled day published its Datasets, as a scheduled run does.
        events = api(env, "/datasets/events?source_dag_id=sales_core_pipeline&limit=100")["dataset_events"]
        sources = {(e["dataset_uri"], e["source_run_id"]) for e in events}
        for run in backfilled.values():
            assert ("s3://shopstream/gold/orders", run["dag_run_id"]) in sources
    finally:
        stop_run(process)

    again, output = start_run(env)
    try:
        assert "history: all 2 days" in output and "ingested already" in output
        time.sleep(5)
        after = sales_runs(env)
        assert {k: r["run_type"] for k, r in after.items() if r["run_type"] == "backfill"} == {
            k: "backfill" for k in backfilled
        }
        assert not (tmp_path / "state" / "stack.json").read_text().count("Airflow backfill")
    finally:
        stop_run(again)
