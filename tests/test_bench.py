"""The benchmark's pure parts (settings, summaries, percentiles, growth fit, critical path) and its memory probe."""

from __future__ import annotations

import math
import os
import sys

import pytest

from bench.endtoend import critical_path
from bench.etl import task_durations
from bench.platform import run_measured
from bench.stats import BenchError, fit_exponent, label, parse_repeat, parse_scales, percentile, summarize


def test_scales_read_like_the_issue_writes_them():
    assert parse_scales("10k,100k,1M") == [10_000, 100_000, 1_000_000]
    assert parse_scales(" 1m , 50000,10k,10K ") == [10_000, 50_000, 1_000_000]
    assert [label(n) for n in (10_000, 1_000_000, 2_500)] == ["10k", "1M", "2500"]


@pytest.mark.parametrize("text", ["", "10x", "-5k", "0", "1.5", "6M", "10k,,100k"])
def test_a_bad_scale_is_refused_with_the_setting_named(text):
    with pytest.raises(BenchError, match="BENCH_SCALE"):
        parse_scales(text)


@pytest.mark.parametrize("text", ["0", "x", "21", "-1"])
def test_a_bad_repeat_is_refused(text):
    with pytest.raises(BenchError, match="BENCH_REPEAT"):
        parse_repeat(text)


def test_summary_and_percentiles():
    summary = summarize([3.0, 1.0, 2.0])
    assert (summary.median, summary.min, summary.max) == (2.0, 1.0, 3.0)
    values = list(range(1, 21))  # 1..20
    assert percentile(values, 50) == 10.5
    assert percentile(values, 95) == pytest.approx(19.05)
    assert percentile([4.0], 95) == 4.0


def test_growth_exponent_recovers_a_power_law():
    sizes = [10_000, 100_000, 1_000_000]
    assert fit_exponent(sizes, [2 * n**0.5 for n in sizes]) == pytest.approx(0.5)
    assert fit_exponent(sizes, [7.0] * 3) == pytest.approx(0.0)
    assert fit_exponent([10_000], [1.0]) is None
    assert math.isclose(fit_exponent([1, 10], [1, 10]), 1.0)


def test_dag_test_log_gives_each_task_its_duration():
    log = (
        "[2026-11-25T23:42:33.000+0000] {dag.py:4396} INFO - [DAG TEST] starting task_id=orders_etl.a map_index=-1\n"
        "[2026-11-25T23:42:34.500+0000] {dag.py:4410} INFO - [DAG TEST] end task task_id=orders_etl.a map_index=-1\n"
        "[2026-11-25T23:42:35.000+0000] {dag.py:4396} INFO - [DAG TEST] starting task_id=customer_360.b map_index=-1\n"
        "[2026-11-25T23:42:36.000+0000] {dag.py:4410} INFO - [DAG TEST] end task task_id=customer_360.b map_index=-1\n"
    )
    assert task_durations(log) == {"a": 1.5}


def test_critical_path_follows_dataset_triggers_across_dags():
    upstream = {"p": {"a": [], "b": ["a"], "c": ["a"]}, "q": {"x": [], "y": ["x"]}}
    tasks = [
        {"dag_id": "p", "run_id": "r1", "task_id": "a", "seconds": 1.0},
        {"dag_id": "p", "run_id": "r1", "task_id": "b", "seconds": 5.0},
        {"dag_id": "p", "run_id": "r1", "task_id": "c", "seconds": 2.0},
        {"dag_id": "q", "run_id": "r2", "task_id": "x", "seconds": 1.0},
        {"dag_id": "q", "run_id": "r2", "task_id": "y", "seconds": 1.0},
    ]
    # q's run was triggered by c's event: the path is a -> c -> x -> y (5 s), and b alone is 6 s.
    seconds, path = critical_path(tasks, upstream, {("q", "r2"): [("p", "r1", "c")]})
    assert seconds == 6.0 and [t for _, _, t in path] == ["a", "b"]
    tasks[4]["seconds"] = 3.0
    seconds, path = critical_path(tasks, upstream, {("q", "r2"): [("p", "r1", "c")]})
    assert seconds == 7.0 and [t for _, _, t in path] == ["a", "c", "x", "y"]


def test_a_child_reports_its_own_peak_not_the_benchmarks(tmp_path):
    """The benchmark holds a seeded day when it measures a task; the task must not inherit it."""
    held = bytearray(512 * 1024 * 1024)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touch every page: 512 MiB resident
    small = run_measured([sys.executable, "-c", "pass"], os.environ, tmp_path / "small.log")
    big = run_measured(
        [sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'1' * len(range(0, len(b), 4096))"],
        os.environ,
        tmp_path / "big.log",
    )
    del held
    assert small.returncode == 0 and big.returncode == 0
    assert small.peak_rss_mib < 64, f"an empty Python reported {small.peak_rss_mib:.0f} MiB"
    assert 300 <= big.peak_rss_mib < 400, f"a 300 MiB child reported {big.peak_rss_mib:.0f} MiB"


def test_a_failed_child_keeps_its_exit_code(tmp_path):
    measured = run_measured([sys.executable, "-c", "raise SystemExit(3)"], os.environ, tmp_path / "fail.log")
    assert measured.returncode == 3
    assert measured.peak_rss_mib > 0


def _document(load_orders_s: float, wall_s: float) -> dict:
    """A benchmark result as bench/__main__.py assembles it, with the figures a test needs."""
    from bench.etl import ORDERS_PATH

    tasks = dict.fromkeys(ORDERS_PATH, 0.1) | {"load_orders": load_orders_s, "merge_orders": 2.0}
    path_s = sum(tasks.values())
    ratio = {"median": path_s / 4.0}
    scale = {
        "orders_per_day": 1_000_000, "task_s_median": tasks, "baseline_s": {"median": 4.0}, "ratio": ratio,
        "peak_task_rss_mib": 400.0, "idle_task_rss_mib": 230.0, "peak_task": "load_orders",
    }  # fmt: skip
    e2e_ratio = wall_s / 20.0
    return {
        "orders_etl": {"scales": [scale], "goals": {"ratio_met": ratio["median"] <= 1.5, "peak_rss_met": True}},
        "dataset_latency": None,
        "end_to_end": {
            "ratio": {"median": e2e_ratio},
            "critical_path_s": {"median": 20.0},
            "critical_path_tasks": 20,
            "gaps_s": {
                "to_queued": {"median": wall_s - 30.0},
                "to_running": {"median": 8.0},
                "after_last": {"median": 2.0},
            },
            "cpu_busy_share": {"median": 0.93},
            "cores": 2,
            "goals": {"ratio_met": e2e_ratio <= 1.5},
        },
        "parse": None,
    }


def test_a_missed_goal_is_explained_with_the_runs_own_figures():
    from bench.report import misses

    notes = misses(_document(load_orders_s=7.3, wall_s=44.0))
    etl_note, e2e_note = notes
    assert "floor of 4.0 s" in etl_note and "load_orders 7.3 s" in etl_note and "merge_orders 2.0 s" in etl_note
    assert etl_note.index("load_orders") < etl_note.index("merge_orders"), "the costliest step first"
    assert "ratio 2.20" in e2e_note and "waited 14 s to be queued" in e2e_note and "8 s from queued" in e2e_note
    assert "2 cores were 93% busy" in e2e_note


def test_met_goals_need_no_explanation():
    from bench.report import misses

    assert misses(_document(load_orders_s=3.0, wall_s=30.0)) == []


def test_busy_share_counts_only_the_samples_before_the_day_ended():
    from datetime import UTC, datetime, timedelta

    from bench.endtoend import busy_share, cpu_ticks

    zero = datetime(2026, 11, 25, tzinfo=UTC)
    samples = [
        (zero, (100, 1_000)),
        (zero + timedelta(seconds=2), (290, 1_200)),  # 95% busy
        (zero + timedelta(seconds=4), (460, 1_400)),  # 85% busy
        (zero + timedelta(seconds=6), (470, 1_600)),  # after the end: idle, left out
    ]
    assert busy_share(samples, end=zero + timedelta(seconds=5)) == 0.9
    assert busy_share(samples[:1], end=zero + timedelta(seconds=5)) is None, "one sample is no interval"
    assert busy_share([(zero, None), (zero + timedelta(seconds=2), None)], end=zero + timedelta(seconds=3)) is None
    busy, total = cpu_ticks()
    assert 0 <= busy <= total


def test_dag_test_log_of_airflow_3_gives_the_same_durations():
    """Airflow 3's `dags test` logs through structlog: the same marks, another line format."""
    log = (
        "2026-12-05T08:40:01.250000Z [info     ] [DAG TEST] starting task_id=orders_etl.a map_index=-1"
        " [airflow.sdk.definitions.dag]\n"
        "2026-12-05T08:40:01.300000Z [info     ] [DAG TEST] running task <TaskInstance: x> [airflow.sdk]\n"
        "2026-12-05T08:40:03.000000Z [info     ] [DAG TEST] end task task_id=orders_etl.a map_index=-1"
        " [airflow.sdk.definitions.dag]\n"
    )
    assert task_durations(log) == {"a": 1.75}


def test_airflow_3_task_time_starts_where_the_execution_api_starts_the_task():
    """The first task of an Airflow 3 `dags test` waits while the in-process Execution API is
    imported and built (seconds, once per process): its time starts at the API's `Task started`."""
    log = (
        "2026-12-05T08:40:00.000000Z [info     ] [DAG TEST] starting task_id=orders_etl.a map_index=-1 [x]\n"
        "2026-12-05T08:40:00.001000Z [info     ] [DAG TEST] running task <TaskInstance: a> [x]\n"
        "2026-12-05T08:40:04.000000Z [info     ] Task started                   [airflow.api_fastapi] ti_id=1\n"
        "2026-12-05T08:40:04.500000Z [info     ] [DAG TEST] end task task_id=orders_etl.a map_index=-1 [x]\n"
        "2026-12-05T08:40:04.510000Z [info     ] [DAG TEST] starting task_id=customer_360.c map_index=-1 [x]\n"
        "2026-12-05T08:40:04.520000Z [info     ] Task started                   [airflow.api_fastapi] ti_id=2\n"
        "2026-12-05T08:40:04.600000Z [info     ] [DAG TEST] end task task_id=customer_360.c map_index=-1 [x]\n"
        "2026-12-05T08:40:04.600000Z [info     ] [DAG TEST] starting task_id=orders_etl.b map_index=-1 [x]\n"
        "2026-12-05T08:40:04.610000Z [info     ] Task started                   [airflow.api_fastapi] ti_id=3\n"
        "2026-12-05T08:40:05.610000Z [info     ] Task started                   [airflow.api_fastapi] ti_id=3\n"
        "2026-12-05T08:40:06.110000Z [info     ] [DAG TEST] end task task_id=orders_etl.b map_index=-1 [x]\n"
    )
    assert task_durations(log) == {"a": 0.5, "b": 1.5}


def test_profiles_to_measure_and_where_each_writes():
    from pathlib import Path

    from bench.both import parse_profiles, profile_out

    assert parse_profiles("2,3") == [2, 3] and parse_profiles(" 3 ") == [3]
    for text in ("", "1", "2,2", "4", "2;3"):
        with pytest.raises(BenchError, match="BENCH_PROFILES"):
            parse_profiles(text)
    assert profile_out(Path("/tmp/x/latest.json"), 3) == Path("/tmp/x/latest.airflow3.json")


def test_both_profiles_in_one_table_and_a_failed_figure_says_why():
    from bench.report import render_both, side_by_side

    def document(major: int, latency) -> dict:
        return {
            "profile": {"airflow_major": major, "sql_backend": "astro" if major == 2 else "providers"},
            "machine": {"cores": 2, "platform": "Linux"},
            "versions": {"apache-airflow": f"{major}.0", "astro-sdk-python": "1.9.0" if major == 2 else None,
                         "postgres": "16", "python": "3.11"},
            "duration_s": 60,
            "results": {"orders_etl": None, "growth": None, "end_to_end": None, "parse": None,
                        "dataset_latency": latency},
            "notes": [],
        }  # fmt: skip

    latency = {
        "p50_s": 0.3, "p95_s": 0.4, "events": 20, "ratio_p95_to_sensor": 0.007,
        "baseline": {"p50_s": 30.0, "p95_s": 57.0}, "goals": {"p95_met": True, "p95_under_s": 1.0},
    }  # fmt: skip
    merged = {
        "timestamp": "2026-12-05T09:00:00Z",
        "settings": {"BENCH_SCALE": "10k"},
        "profiles": {
            "airflow2": document(2, latency),
            "airflow3": document(3, {"unmeasured": "only 3 of 20 Dataset events started a consumer run in time"}),
        },
    }
    rows = side_by_side(merged)
    assert [row[:2] for row in rows] == [
        ("Dataset (Asset) trigger latency", "Airflow 2.10 + Astro SDK"),
        ("Dataset (Asset) trigger latency", "Airflow 3.3 + providers"),
    ]
    assert rows[0][2].startswith("p50 0.30 s") and "only 3 of 20" in rows[1][2]
    merged["profiles"]["airflow3"] = {"unmeasured": ".venv-airflow3 does not exist"}
    text = render_both(merged)
    assert "not measured: .venv-airflow3 does not exist" in text and "astro-sdk-python 1.9.0" in text
