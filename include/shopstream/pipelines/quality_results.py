"""quality_results: what data_quality_checks ran, on which tables, and what failed, in one place.

Runs after every check has finished, passed or not. It writes the results as JSON to
``s3://shopstream/quality/results/ds=<date>/<run>.json`` (the task's extra link opens it) and
logs the same summary. When a check failed it fails too, so the run still fails on a breach,
but it pages no one: the failed check has already alerted with its own message.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

from include.shopstream.ops import alerting, links
from include.shopstream.pipelines.quality import CHOOSER, GROUP
from include.shopstream.platform.compat import AirflowFailException, TriggerRule, run_moment, task

log = logging.getLogger(__name__)

OUTCOME = {
    "success": "passed",
    "failed": "failed",
    "upstream_failed": "not run",
    "skipped": "not triggered",
}


class ChecksFailed(AirflowFailException):
    """Some checks failed; each of them has alerted on its own."""


class ResultsFailureNotifier(alerting.FailureNotifier):
    """The usual critical alert, except for ``ChecksFailed``, whose checks have paged already."""

    def send(self, context) -> None:
        if isinstance(context.get("exception"), ChecksFailed):
            log.info("not alerting again: the failed checks each alerted")
            return
        super().send(context)


alert_unless_checks_failed = ResultsFailureNotifier()


def describe(operator) -> dict:
    """The table (or file) a check task looks at, and the names of its checks."""
    if hasattr(operator, "column_mapping"):  # SQLColumnCheckOperator
        checks = [f"{column}.{check}" for column, kinds in operator.column_mapping.items() for check in kinds]
        return {"on": operator.table, "checks": checks}
    if hasattr(operator, "checks") and hasattr(operator, "table"):  # SQLTableCheckOperator
        return {"on": operator.table, "checks": list(operator.checks)}
    subject = next((arg for arg in getattr(operator, "op_args", ()) if isinstance(arg, str)), "")
    return {"on": subject, "checks": [operator.task_id.rsplit(".", 1)[-1].rsplit("_", 1)[-1]]}


def is_check(operator) -> bool:
    """A task of the group that checks something (not the task that chooses which checks run)."""
    return operator.task_id.startswith(f"{GROUP}.") and operator.task_id != f"{GROUP}.{CHOOSER}"


def summarize(dag, states: dict[str, str | None]) -> dict:
    """The results document: one entry per check task of ``dag``, with its outcome."""
    results = []
    for operator in sorted((t for t in dag.tasks if is_check(t)), key=lambda t: t.task_id):
        state = states.get(operator.task_id)
        results.append(
            {"task": operator.task_id, "outcome": OUTCOME.get(state or "", state or "not run"), **describe(operator)}
        )
    counts = Counter(result["outcome"] for result in results)
    return {"counts": dict(sorted(counts.items())), "results": results}


def summary_lines(document: dict) -> list[str]:
    counts = document["counts"]
    head = ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) or "no checks"
    lines = [f"data quality: {sum(counts.values())} check tasks: {head}"]
    for result in document["results"]:
        checks = ", ".join(result["checks"])
        lines.append(f"  {result['outcome']:<13} {result['on'] or '-':<28} {result['task']}: {checks}")
    return lines


@task(task_id="quality_results", trigger_rule=TriggerRule.ALL_DONE, on_failure_callback=alert_unless_checks_failed)
def publish_results(**context) -> dict:
    """Write and log which checks ran on which tables, then fail if any check failed."""
    from include.shopstream.platform import run_states
    from include.shopstream.platform.lake import lake_hook
    from include.shopstream.platform.names import BUCKET, lake_uri
    from include.shopstream.platform.outputs import QUALITY_RESULTS

    run_id = context["run_id"]
    states = run_states.task_states(context["dag"].dag_id, run_ids=[run_id], context=context).get(run_id, {})
    document = summarize(context["dag"], states)
    document["run_id"] = context["run_id"]
    for line in summary_lines(document):
        log.info("%s", line)
    moment = run_moment(context)
    key = QUALITY_RESULTS.key_for(moment, f"{moment:%Y%m%dT%H%M%S}.json")  # ds=<ds>/<ts_nodash>.json
    lake_hook().load_string(json.dumps(document, indent=2), key=key, bucket_name=BUCKET, replace=True)
    published = {"results": lake_uri(key), **document["counts"]}
    failed = [r for r in document["results"] if r["outcome"] == "failed"]
    if failed:
        # The link must work on a failed run too: that is when someone opens it.
        context["ti"].xcom_push(key="return_value", value=published)
        raise ChecksFailed(
            f"{len(failed)} quality check task(s) failed: "
            + "; ".join(f"{r['task']} on {r['on']}" for r in failed)
            + f" (results: {lake_uri(key)})"
        )
    return published


def quality_results():
    """The results task, with its extra link."""
    return links.attach(publish_results(), links.QualityResultsLink())
