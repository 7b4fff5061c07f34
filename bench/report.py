"""The JSON document (``bench/results/latest.json``) and the table printed from it."""

from __future__ import annotations

from bench.stats import fit_exponent, label

# What each step of orders_etl does to every row, beside the floor's COPY out, COPY in, one merge,
# per SQL back-end (include/shopstream/sql_steps: the Astro SDK, or the providers' COPY loads).
STEP_WORK = {
    "astro": {
        "extract_orders": "COPY out to CSV parts in the lake",
        "load_orders": "aql.load_file: each part read into pandas and written back as CSV for COPY",
        "check_orders": "every value's fit, the CHECKs, the foreign key and duplicates, in one SQL pass",
        "valid_orders": "aql.transform: the good rows, typed",
        "merge_orders": "aql.merge: INSERT .. ON CONFLICT into gold.orders, its foreign key checked per row",
    },
    "providers": {
        "extract_orders": "COPY out to CSV parts in the lake",
        "load_orders": "each part streamed from the lake into COPY .. FROM STDIN (staging, all text)",
        "check_orders": "every value's fit, the CHECKs, the foreign key and duplicates, in one SQL pass",
        "valid_orders": "CREATE TABLE .. AS: the good rows, typed",
        "merge_orders": "INSERT .. ON CONFLICT into gold.orders, its foreign key checked per row",
    },
}
# Figures under the names each Airflow gives them (Airflow 3 calls a Dataset an Asset).
EVENT_WORD = {2: "Dataset", 3: "Asset"}


def measured(figure) -> dict | None:
    """A figure's results, or None when it was not measured (None, or ``{"unmeasured": why}``)."""
    if not figure or "unmeasured" in figure:
        return None
    return figure


def growth(etl: dict) -> dict:
    """k in time ~ N^k and RSS ~ N^k, fitted across the measured scales."""
    scales = etl["scales"]
    rows = [s["rows_extracted"] for s in scales]
    fits = {
        "pipeline_time": fit_exponent(rows, [s["pipeline_s"]["median"] for s in scales]),
        "baseline_time": fit_exponent(rows, [s["baseline_s"]["median"] for s in scales]),
        "peak_task_rss": fit_exponent(rows, [s["peak_task_rss_mib"] for s in scales]),
        "peak_task_rss_above_idle": fit_exponent(
            rows, [max(s["peak_task_rss_mib"] - s["idle_task_rss_mib"], 0.1) for s in scales]
        ),
    }
    return {
        "what": "least-squares slope of log(median) on log(rows extracted) across the scales of this run",
        "scales": [label(s["orders_per_day"]) for s in scales],
        "k": {name: None if k is None else round(k, 3) for name, k in fits.items()},
        "note": None if len(scales) > 1 else "one scale measured: an exponent needs at least two (BENCH_SCALE)",
    }


def _etl_why(scale: dict, backend: str = "astro") -> str:
    """Where orders_etl's time goes beyond the floor, from this run's task durations."""
    from bench.etl import ORDERS_PATH

    work = STEP_WORK[backend]
    seconds = {task: scale["task_s_median"].get(task, 0.0) for task in ORDERS_PATH}
    named = sorted((t for t in seconds if t in work), key=seconds.get, reverse=True)
    rest = [t for t in seconds if t not in work]
    parts = [f"{task} {seconds[task]:.1f} s ({work[task]})" for task in named]
    parts.append(f"{len(rest)} other tasks {sum(seconds[t] for t in rest):.1f} s together")
    return f"Against a floor of {scale['baseline_s']['median']:.1f} s: " + "; ".join(parts) + "."


def _busy_note(e2e: dict) -> str:
    busy = e2e.get("cpu_busy_share")
    if not busy:
        return ""
    return (
        f" The machine's {e2e['cores']} cores were {busy['median']:.0%} busy over the day: the gaps are"
        " CPU that task processes and the scheduler spent beside the path's own work, not idle waiting."
    )


def misses(results: dict, backend: str = "astro", major: int = 2) -> list[str]:
    """One line per missed goal: by how much, and where the difference goes, from this run's figures."""
    notes = []
    etl = measured(results["orders_etl"])
    if etl:
        largest = etl["scales"][-1]
        name = label(largest["orders_per_day"])
        ratio = largest["ratio"]["median"]
        if not etl["goals"]["ratio_met"]:
            notes.append(
                f"orders_etl at {name}: ratio {ratio:.2f} against a goal of at most 1.5. {_etl_why(largest, backend)}"
            )
        if not etl["goals"]["peak_rss_met"]:
            held = largest["peak_task_rss_mib"] - largest["idle_task_rss_mib"]
            notes.append(
                f"orders_etl at {name}: peak task RSS {largest['peak_task_rss_mib']:.0f} MiB ({largest['peak_task']}),"
                f" over 1024 MiB; the idle task is {largest['idle_task_rss_mib']:.0f} MiB, so {held:.0f} MiB are rows."
            )
    latency = measured(results["dataset_latency"])
    if latency and not latency["goals"]["p95_met"]:
        sleep = latency["scheduler_settings"].get("scheduler.scheduler_idle_sleep_time")
        notes.append(
            f"{EVENT_WORD[major]} trigger latency: p95 {latency['p95_s']:.2f} s against a goal of at most"
            f" {latency['goals']['p95_under_s']:.1f} s, with scheduler_idle_sleep_time {sleep} s: an event waits"
            " for the scheduler's next loop, which creates and starts the consumer's run."
        )
    e2e = measured(results["end_to_end"])
    if e2e and e2e.get("failed_tasks"):
        notes.append(
            f"one day end to end: {e2e['failed_runs']} run(s) failed, so the day's figures time a day that did"
            f" not succeed; tasks that failed for good: {', '.join(e2e['failed_tasks'])}."
        )
    if e2e and not e2e["goals"]["ratio_met"]:
        ratio = e2e["ratio"]["median"]
        gaps = {name: summary["median"] for name, summary in e2e["gaps_s"].items()}
        tasks = e2e["critical_path_tasks"]
        notes.append(
            f"one day end to end: ratio {ratio:.2f} against a goal of at most 1.5. Beyond the critical path's"
            f" {e2e['critical_path_s']['median']:.0f} s of task time, its {tasks} tasks waited"
            f" {gaps['to_queued']:.0f} s to be queued (upstream done or Dataset event to queued,"
            f" {gaps['to_queued'] / tasks:.2f} s each) and {gaps['to_running']:.0f} s from queued to running"
            f" ({gaps['to_running'] / tasks:.2f} s each: the executor's fork, the DAG file's parse, the task"
            f" runner), and {gaps['after_last']:.0f} s passed after the path's last task." + _busy_note(e2e)
        )
    parse = measured(results["parse"])
    if parse:
        goals = parse["goals"]
        if not goals["project_met"]:
            notes.append(
                f"parse: the project's own share is {parse['project_s']['median']:.2f} s, over the goal of"
                f" {goals['project_under_s']} s."
            )
        if not goals["per_file_met"] or not goals["all_met"]:
            slowest = parse["per_file_s"][goals["slowest_file"]]["median"]
            notes.append(
                f"parse, cold: slowest file {goals['slowest_file']} {slowest:.2f} s, whole DagBag"
                f" {parse['whole_dagbag_s']['median']:.2f} s; of it, {_imports(parse)} alone is"
                f" {parse['import_sdk_s']['median']:.2f} s and the project's own share"
                f" {parse['project_s']['median']:.2f} s (Airflow's import, {parse['import_airflow_s']['median']:.2f} s,"
                " is timed apart)."
            )
    return notes


def _imports(parse: dict) -> str:
    """The back-end's imports timed apart from the DagBag, as the table names them."""
    modules = parse.get("backend_imports") or ["astro.sql"]
    return "`" + "; ".join(f"import {module}" for module in modules) + "`"


def _range(summary: dict, unit: str = "s", digits: int = 2) -> str:
    return f"{summary['median']:.{digits}f} {unit} [{summary['min']:.{digits}f}-{summary['max']:.{digits}f}]"


def _met(value: bool) -> str:
    return "yes" if value else "NO"


def _unmeasured(figure: str, value) -> tuple[str, str, str, str, str]:
    return (figure, f"not measured: {value['unmeasured']}", "", "", "")


def rows(document: dict) -> list[tuple[str, str, str, str, str]]:
    """(figure, measured, baseline or goal, ratio, goal met) rows of the table; a figure that was
    not measured is one row that says why."""
    results = document["results"]
    major = document.get("profile", {}).get("airflow_major", 2)
    table = []
    for key, figure in (
        ("orders_etl", "orders_etl"),
        ("dataset_latency", f"{EVENT_WORD[major]} trigger latency"),
        ("end_to_end", "one day end to end"),
        ("parse", "parse"),
    ):
        if results[key] and "unmeasured" in results[key]:
            table.append(_unmeasured(figure, results[key]))
    etl = measured(results["orders_etl"])
    if etl:
        largest = etl["scales"][-1]["orders_per_day"]
        for scale in etl["scales"]:
            name = label(scale["orders_per_day"])
            is_largest = scale["orders_per_day"] == largest
            table.append(
                (
                    f"orders_etl {name}: time",
                    f"{_range(scale['pipeline_s'])}, {scale['pipeline_rows_per_s']:,} rows/s",
                    f"COPY+merge {_range(scale['baseline_s'])}, {scale['baseline_rows_per_s']:,} rows/s",
                    f"{scale['ratio']['median']:.2f}",
                    _met(etl["goals"]["ratio_met"]) + " (<= 1.5)" if is_largest else "-",
                )
            )
            table.append(
                (
                    f"orders_etl {name}: peak task RSS",
                    f"{scale['peak_task_rss_mib']:.0f} MiB ({scale['peak_task']}; "
                    f"idle task {scale['idle_task_rss_mib']:.0f})",
                    "< 1024 MiB",
                    "",
                    _met(scale["peak_task_rss_mib"] < 1024),
                )
            )
    growth_fit = measured(results["growth"])
    if growth_fit:
        k = growth_fit["k"]

        def show(value):
            return "n/a" if value is None else f"{value:.2f}"

        table.append(
            (
                "growth: time ~ N^k",
                f"pipeline k={show(k['pipeline_time'])}",
                f"baseline k={show(k['baseline_time'])}",
                "",
                "",
            )
        )
        table.append(
            (
                "growth: RSS ~ N^k",
                f"peak task k={show(k['peak_task_rss'])}",
                f"above idle k={show(k['peak_task_rss_above_idle'])}",
                "",
                "",
            )
        )
    latency = measured(results["dataset_latency"])
    if latency:
        base = latency["baseline"]
        table.append(
            (
                f"{EVENT_WORD[major]} trigger latency",
                f"p50 {latency['p50_s']:.2f} s, p95 {latency['p95_s']:.2f} s ({latency['events']} events)",
                f"sensor (computed) p50 {base['p50_s']:.0f} s, p95 {base['p95_s']:.0f} s",
                f"{latency['ratio_p95_to_sensor']:.3f}",
                _met(latency["goals"]["p95_met"]) + f" (p95 <= {latency['goals']['p95_under_s']:.1f} s)",
            )
        )
    e2e = measured(results["end_to_end"])
    if e2e:
        table.append(
            (
                "one day end to end",
                f"wall {_range(e2e['wall_s'], digits=0)}"
                + (f", cores {e2e['cpu_busy_share']['median']:.0%} busy" if e2e.get("cpu_busy_share") else "")
                + (
                    f"; {e2e['failed_runs']} run(s) FAILED ({', '.join(e2e['failed_tasks'])})"
                    if e2e.get("failed_tasks")
                    else ""
                ),
                f"critical path {_range(e2e['critical_path_s'], digits=0)}",
                f"{e2e['ratio']['median']:.2f}",
                _met(e2e["goals"]["ratio_met"]) + " (<= 1.5)",
            )
        )
    parse = measured(results["parse"])
    if parse:
        for name, summary in parse["per_file_s"].items():
            table.append((f"parse {name}", _range(summary), "< 0.5 s", "", _met(summary["median"] < 0.5)))
        table.append(
            (
                "parse, whole DagBag",
                _range(parse["whole_dagbag_s"]),
                f"< 3 s (import airflow apart: {parse['import_airflow_s']['median']:.1f} s)",
                "",
                _met(parse["goals"]["all_met"]),
            )
        )
        table.append(
            (
                "parse, the project's own share",
                f"{_range(parse['project_s'])} (DagBag after {_imports(parse)};"
                f" by difference {parse['project_by_difference_s']:.2f} s)",
                f"< {parse['goals']['project_under_s']} s ({_imports(parse)} apart:"
                f" {parse['import_sdk_s']['median']:.1f} s)",
                "",
                _met(parse["goals"]["project_met"]),
            )
        )
        table.append(("`astro dev parse`'s test, local", _range(parse["astro_dev_parse_s"]), "reported", "", ""))
    return table


def profile_label(document: dict) -> str:
    """``Airflow 2.10.5, astro-sdk-python 1.9.0, Postgres 16.2, Python 3.11.7`` (the SQL back-end's
    package where it has one, else its name)."""
    versions = document["versions"]
    backend = document.get("profile", {}).get("sql_backend", "astro")
    if versions.get("astro-sdk-python") and backend == "astro":
        steps = f"astro-sdk-python {versions['astro-sdk-python']}"
    else:
        steps = (
            f"providers' SQL steps (postgres {versions.get('apache-airflow-providers-postgres')},"
            f" amazon {versions.get('apache-airflow-providers-amazon')})"
        )
    return (
        f"Airflow {versions['apache-airflow']}, {steps}, Postgres {versions['postgres']}, Python {versions['python']}"
    )


def render(document: dict) -> str:
    """The table as Markdown (readable as it is on a terminal, and pasted into docs/performance.md)."""
    machine = document["machine"]
    header = ("figure", "measured: median [min-max]", "baseline or goal", "ratio", "goal met")
    lines = [
        f"ShopStream benchmark, {document['timestamp']}: {machine['cores']} cores, {machine['platform']}; "
        f"{profile_label(document)}; " + " ".join(f"{key}={value}" for key, value in document["settings"].items()),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(document)]
    if document["notes"]:
        lines += ["", "Goals missed:"] + [f"- {note}" for note in document["notes"]]
    return "\n".join(lines)


# -- Both profiles side by side (python -m bench.both) -------------------------------------

PROFILE_NAMES = {"airflow2": "Airflow 2.10 + Astro SDK", "airflow3": "Airflow 3.3 + providers"}

# What each figure runs on each profile: the same DAG files and the same measurement, through
# the SQL back-end and the processes that profile has.
CODE_PATHS = {
    "airflow2": (
        "orders_etl: `airflow dags test` runs each task in-process; its loads are aql.load_file (pandas), its"
        " transforms and merge the SDK's. Trigger latency: the scheduler creates the consumer run from the"
        " dataset_event. One day: LocalExecutor task processes forked by the scheduler, which also parses"
        " the DAGs. Parse: DagBag after `import airflow`, `import astro.sql` timed apart."
    ),
    "airflow3": (
        "orders_etl: `airflow dags test` runs each task through the Task SDK's in-process execution API;"
        " its loads are the providers' back-end's COPY .. FROM STDIN, its transforms CREATE TABLE .. AS, its"
        " merge INSERT .. ON CONFLICT. Trigger latency: the scheduler creates the consumer run from the"
        " asset_event. One day: LocalExecutor task processes (Task SDK supervisors) that report to the API"
        " server's execution API, the DAGs parsed by the DAG processor. Parse: the Task SDK DagBag"
        " (airflow.dag_processing.dagbag) after `import airflow`, the Task SDK and the providers' hooks"
        " timed apart."
    ),
}


def _figure_key(figure: str) -> str:
    """Rows of the two profiles match by figure; the trigger latency has a name on each."""
    for word in EVENT_WORD.values():
        if figure.startswith(f"{word} trigger latency"):
            return "Dataset (Asset) trigger latency" + figure.removeprefix(f"{word} trigger latency")
    return figure


def side_by_side(merged: dict) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, profile, measured, baseline or goal, ratio, goal met): each figure, a row per profile;
    a profile that has no such figure says why."""
    per_profile: dict[str, dict[str, tuple]] = {}
    order: list[str] = []
    for name, document in merged["profiles"].items():
        per_profile[name] = {}
        if "unmeasured" in document:
            continue
        for row in rows(document):
            key = _figure_key(row[0])
            per_profile[name][key] = row[1:]
            if key not in order:
                order.append(key)
    table = []
    for key in order:
        for name, document in merged["profiles"].items():
            label = PROFILE_NAMES.get(name, name)
            if "unmeasured" in document:
                table.append((key, label, f"not measured: {document['unmeasured']}", "", "", ""))
            elif key in per_profile[name]:
                table.append((key, label, *per_profile[name][key]))
            else:
                table.append((key, label, "not measured (no such figure on this profile)", "", "", ""))
    return table


def render_both(merged: dict) -> str:
    """One Markdown table, a row per figure and profile, then each profile's missed goals."""
    header = ("figure", "profile", "measured: median [min-max]", "baseline or goal", "ratio", "goal met")
    lines = [
        f"ShopStream benchmark, both profiles, {merged['timestamp']}; "
        + " ".join(f"{key}={value}" for key, value in merged["settings"].items()),
    ]
    for name, document in merged["profiles"].items():
        label = PROFILE_NAMES.get(name, name)
        if "unmeasured" in document:
            lines.append(f"- {label}: not measured: {document['unmeasured']}")
        else:
            machine = document["machine"]
            lines.append(f"- {label}: {profile_label(document)}; {machine['cores']} cores; {document['duration_s']} s")
    lines += [
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in side_by_side(merged)]
    for name, document in merged["profiles"].items():
        label = PROFILE_NAMES.get(name, name)
        if "unmeasured" not in document and document.get("notes"):
            lines += ["", f"Goals missed, {label}:"] + [f"- {note}" for note in document["notes"]]
    lines += ["", "What each profile runs:"]
    lines += [f"- {PROFILE_NAMES.get(name, name)}: {CODE_PATHS[name]}" for name in merged["profiles"]]
    return "\n".join(lines)
