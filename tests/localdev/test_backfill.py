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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest

from localdev import LocalDevError, backfill, profile
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
@pytest.mark.xdist_group("make-run")
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
@pytest.mark.xdist_group("make-run")
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


# A backfilled task's state as Airflow 2.10 leaves it, and whether the history sets it up again:
# (state, its LocalTaskJob, queued how long ago, tries used and allowed, tasks running beside it)
ORPHANS = {
    "killed_mid_run": ("running", "success", 600, (2, 3), 0, "up_for_retry"),
    "killed_on_its_last_try": ("running", "success", 600, (4, 3), 0, "failed"),
    "silent_for_ten_minutes": ("running", "running-silent", 600, (1, 3), 0, "up_for_retry"),
    "running_now": ("running", "running", 600, (1, 3), 0, "running"),
    "never_started": ("queued", "success", 600, (2, 3), 0, "up_for_retry"),
    "never_started_on_its_last_try": ("queued", "success", 600, (4, 3), 0, "failed"),
    "just_queued": ("queued", "success", 30, (2, 3), 0, "queued"),
    "waiting_for_a_busy_worker": ("queued", "success", 600, (2, 3), 2, "queued"),
    "finished": ("success", "success", 600, (1, 3), 0, "success"),
}


@pytest.mark.services
@pytest.mark.skipif(
    not profile.current().backfill_is_a_process,
    reason="Airflow 3's scheduler runs backfills and handles their zombies and stuck tasks itself",
)
def test_backfilled_tasks_that_nobody_runs_are_set_up_again_and_nothing_else(airflow_stack):
    """Airflow 2's backfill would count these as running for ever (localdev/backfill.py); on the
    real metadata schema, each is set up for retry (failed on its last try) and nothing else is."""
    stack = airflow_stack
    day = datetime(2001, 1, 1, 2, tzinfo=UTC)
    run_ids = {"backfill": f"backfill__{day.isoformat()}", "scheduled": f"scheduled__{day.isoformat()}"}
    job_states = {"success": ("success", 0), "running": ("running", 0), "running-silent": ("running", 600)}

    def job(state: str) -> int:
        status, silent = job_states[state]
        (row,) = stack.metadata(
            "INSERT INTO job (dag_id, job_type, state, start_date, latest_heartbeat)"
            " VALUES (%s, %s, %s, now() - interval '20 minutes', now() - make_interval(secs => %s)) RETURNING id",
            (backfill.DAG_ID, "LocalTaskJob", status, silent),
        )
        return row["id"]

    def clean() -> None:
        stack.metadata("DELETE FROM task_instance WHERE run_id = ANY(%s)", (list(run_ids.values()),))
        stack.metadata("DELETE FROM dag_run WHERE run_id = ANY(%s)", (list(run_ids.values()),))

    clean()
    try:
        for offset, (run_type, run_id) in enumerate(run_ids.items()):
            stack.metadata(
                "INSERT INTO dag_run (dag_id, run_id, execution_date, run_type, state, external_trigger, clear_number)"
                " VALUES (%s, %s, %s, %s, 'running', false, 0)",
                (backfill.DAG_ID, run_id, day + timedelta(hours=offset), run_type),
            )
            for task_id, (state, job_state, queued_ago, (try_number, max_tries), beside, _) in ORPHANS.items():
                # Each task with its own backfill executor, so that only its own neighbours keep its workers busy.
                (backfill_job,) = stack.metadata(
                    "INSERT INTO job (dag_id, job_type, state, start_date, latest_heartbeat)"
                    " VALUES (%s, 'BackfillJob', 'running', now(), now()) RETURNING id",
                    (backfill.DAG_ID,),
                )
                for n in range(beside + 1):
                    stack.metadata(
                        "INSERT INTO task_instance (dag_id, task_id, run_id, map_index, state, try_number, max_tries,"
                        " pool, pool_slots, priority_weight, queued_dttm, queued_by_job_id, job_id, executor_config)"
                        " VALUES (%s, %s, %s, -1, %s, %s, %s, 'default_pool', 1, 1,"
                        " now() - make_interval(secs => %s), %s, %s, %s)",
                        (
                            backfill.DAG_ID,
                            f"{task_id}.beside_{n}" if n else task_id,
                            run_id,
                            "running" if n else state,
                            try_number,
                            max_tries,
                            queued_ago,
                            backfill_job["id"],
                            job("running" if n else job_state),
                            psycopg2.Binary(b"\x80\x04}\x94."),  # pickle.dumps({})
                        ),
                    )
        history = backfill.Backfill(dates=[day], query=stack.metadata, parallelism=2)
        lines = history.requeue_orphans()
        states = {
            (row["run_id"], row["task_id"]): row["state"]
            for row in stack.metadata(
                "SELECT run_id, task_id, state FROM task_instance WHERE run_id = ANY(%s)", (list(run_ids.values()),)
            )
        }
    finally:
        clean()
    assert {task: states[run_ids["backfill"], task] for task in ORPHANS} == {
        task: want for task, (*_, want) in ORPHANS.items()
    }
    # The scheduler's own runs are the scheduler's: it reaps their zombies and stuck tasks.
    assert {task: states[run_ids["scheduled"], task] for task in ORPHANS} == {
        task: state for task, (state, *_) in ORPHANS.items()
    }
    ended, never, retry, last = (
        "ended without recording its state",
        "was queued and never started",
        "set up for retry",
        "failed, it had no try left",
    )
    assert sorted(lines) == sorted(
        f"history: {task} of {run_ids['backfill']} {what}; {then}"
        for task, what, then in [
            ("killed_mid_run", ended, retry),
            ("killed_on_its_last_try", ended, last),
            ("silent_for_ten_minutes", ended, retry),
            ("never_started", never, retry),
            ("never_started_on_its_last_try", never, last),
        ]
    )
