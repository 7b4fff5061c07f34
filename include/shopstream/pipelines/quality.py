"""data_quality_checks: real checks on every gold table and on the customer features.

For each published output declared in ``outputs.py``: column checks (nulls, key uniqueness,
ranges) and table checks (row counts, referential integrity) with the common-sql check
operators, plus freshness; the feature file is checked as a file. A run checks the datasets
whose events triggered it (all of them when started by hand), so a
sibling pipeline that is still writing never raises a false alarm. Any breach fails the run.

One task, ``outputs_to_check``, chooses those checks and skips the rest: a run starts one
process to decide, not one per output (the platform runs once per event, several times a day).
"""

from __future__ import annotations

from airflow.providers.common.sql.operators.sql import SQLColumnCheckOperator, SQLTableCheckOperator

from include.shopstream.platform import outputs
from include.shopstream.platform.compat import task, task_group
from include.shopstream.platform.names import WAREHOUSE_CONN_ID

# How far behind its Dataset event a table's newest row may be: the producer writes, then announces.
MAX_LAG_MINUTES = 60
# Started by hand (no triggering event), a table must have been written within this many hours.
MAX_AGE_HOURS = 36

# The published outputs with a gold table behind them; the others are files, checked as files.
TABLES = tuple(output for output in outputs.PUBLISHED if output.table)
FILES = tuple(output for output in outputs.PUBLISHED if not output.table)


GROUP = "data_quality_checks"  # the task group; quality_results reads its tasks by this prefix
CHOOSER = "outputs_to_check"


@task.branch(task_id=CHOOSER)
def outputs_to_check(checks: dict[str, list[str]], **context) -> list[str]:
    """The check tasks of the datasets whose events triggered the run (all of them when started by hand)."""
    from include.shopstream.platform.events import newest_event_times

    triggered = newest_event_times(context)
    chosen = [uri for uri in checks if not triggered or uri in triggered]
    print(f"checking {', '.join(chosen) or 'nothing'}")
    return [task_id for uri in chosen for task_id in checks[uri]]


@task
def freshness(table: str, uri: str, **context) -> str:
    """The table was written by the run that announced it (or, started by hand, recently)."""
    from datetime import UTC, datetime, timedelta

    from include.shopstream.platform.compat import AirflowFailException
    from include.shopstream.platform.events import newest_event_times
    from include.shopstream.platform.warehouse import warehouse_hook

    newest = warehouse_hook().get_first(f"SELECT max(loaded_at) FROM {table}")[0]
    event_at = newest_event_times(context).get(uri)
    if event_at is not None:
        floor, why = event_at - timedelta(minutes=MAX_LAG_MINUTES), f"its Dataset event at {event_at:%Y-%m-%d %H:%M}"
    else:
        floor, why = datetime.now(UTC) - timedelta(hours=MAX_AGE_HOURS), f"the last {MAX_AGE_HOURS} hours"
    if newest is None or newest < floor:
        raise AirflowFailException(f"{table} is stale: its newest row was loaded at {newest}, not within {why}")
    return f"{table} loaded at {newest:%Y-%m-%d %H:%M:%S}"


@task
def check_file(uri: str) -> dict:
    """The output's newest file: present, not empty, one row per key, no nulls where its checks forbid them."""
    import io

    import pandas as pd

    from include.shopstream.platform.compat import AirflowFailException
    from include.shopstream.platform.lake import lake_hook
    from include.shopstream.platform.names import BUCKET, lake_uri

    output = next(o for o in FILES if o.uri == uri)
    (lake_file,) = output.files
    hook = lake_hook()
    keys = sorted(hook.list_keys(bucket_name=BUCKET, prefix=lake_file.prefix + "/") or [])
    if not keys:
        raise AirflowFailException(f"no {output.name} file under {lake_uri(lake_file.prefix + '/')}")
    key = keys[-1]
    frame = pd.read_parquet(io.BytesIO(hook.get_key(key, bucket_name=BUCKET).get()["Body"].read()))
    problems = []
    if frame.empty:
        problems.append("it has no rows")
    duplicated = frame.duplicated(list(output.key))
    if duplicated.any():
        problems.append(f"{int(duplicated.sum())} {'/'.join(output.key)} values appear twice")
    not_null = [c for c, kinds in output.columns.items() if "null_check" in kinds]
    nulls = frame[not_null].isna().sum()
    if nulls.any():
        problems.append(f"null features: {nulls[nulls > 0].to_dict()}")
    if problems:
        raise AirflowFailException(f"{lake_uri(key)} fails its checks: " + "; ".join(problems))
    return {"file": lake_uri(key), "rows": len(frame)}


@task_group(group_id=GROUP)
def data_quality_checks():
    """Checks for every published output whose dataset triggered the run."""
    checks: dict[str, list] = {}
    for output in TABLES:
        checks[output.uri] = [
            SQLColumnCheckOperator(
                task_id=f"{output.name}_columns",
                conn_id=WAREHOUSE_CONN_ID,
                table=output.table,
                column_mapping=output.columns,
            ),
            SQLTableCheckOperator(
                task_id=f"{output.name}_table",
                conn_id=WAREHOUSE_CONN_ID,
                table=output.table,
                checks={
                    "has_rows": {"check_statement": "COUNT(*) > 0"},
                    **{name: {"check_statement": statement} for name, statement in output.checks.items()},
                },
            ),
            freshness.override(task_id=f"{output.name}_freshness")(output.table, output.uri).operator,
        ]
    for output in FILES:
        checks[output.uri] = [check_file.override(task_id=f"{output.name}_file")(output.uri).operator]
    chooser = outputs_to_check({uri: [check.task_id for check in tasks] for uri, tasks in checks.items()})
    for tasks in checks.values():
        chooser >> tasks
