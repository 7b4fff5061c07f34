"""The CI/CD workflow deploys only what passed `make test`, with credentials from the CI's secrets.

This checks the workflow file's structure; the workflow itself has never run from here (no
GitHub runner, no Astro Deployment): see docs/deployment.md, "Deployment".
"""

from __future__ import annotations

import re

import yaml

from tests.conftest import PROJECT

WORKFLOW = PROJECT / ".github" / "workflows" / "deploy.yml"


def steps(job: dict) -> list[str]:
    return [step.get("run", "") for step in job["steps"]]


def test_deploy_runs_only_after_make_test_passed_on_main():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    jobs = workflow["jobs"]
    assert any(run.strip() == "make test" for run in steps(jobs["test"]))
    deploy = jobs["deploy"]
    assert deploy["needs"] == "test"
    assert "refs/heads/main" in deploy["if"] and "pull_request" in deploy["if"]
    runs = steps(deploy)
    assert any(re.match(r"astro deploy \S+ --parse$", run.strip()) for run in runs), runs
    assert not any("--force" in run for run in runs), "--force would deploy DAGs that do not parse"


def test_credentials_come_from_the_ci_secrets_never_from_the_file():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    deploy = next(s for s in workflow["jobs"]["deploy"]["steps"] if "astro deploy" in s.get("run", ""))
    assert deploy["env"]["ASTRO_API_TOKEN"] == "${{ secrets.ASTRO_API_TOKEN }}"
    assert "airflow_settings.yaml" not in WORKFLOW.read_text().split("\njobs:")[1]
