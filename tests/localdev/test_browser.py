"""What a person does in the UI, in a real headless Chromium: log in, see the DAGs, trigger the
ingest, watch the Dataset chain run, open the 30-day chart through its extra link.

Chromium is Debian's ``chromium`` package driven by ``playwright`` (``executable_path``; no
browser download). ``.ci/run`` installs it. Without it this test fails and says how to install
it; it never skips. A screenshot of every step is kept in ``test-artifacts/browser/``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import PROJECT
from tests.localdev.test_run import api, run_env, start_run, stop_run

pytestmark = [pytest.mark.services, pytest.mark.xdist_group("make-run")]

ARTIFACTS = Path(os.environ.get("SHOPSTREAM_TEST_ARTIFACTS", PROJECT / "test-artifacts")) / "browser"
DAGS = ("sales_core_pipeline", "inventory_mgmt_pipeline", "analytics_and_reporting_pipeline", "observability_pipeline")
CHART_LINK = "Revenue chart, 30 days (PNG)"
PNG = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    path = os.environ.get("SHOPSTREAM_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "Chromium is not installed, so the browser test cannot run: install Debian's `chromium` package"
            " (apt-get install chromium; .ci/run does) or name a Chromium binary in SHOPSTREAM_CHROMIUM",
            pytrace=False,
        )
    return path


class Steps:
    """Screenshots of each step, numbered in order."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.count = 0
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)

    def shot(self, name: str, page: Page | None = None) -> None:
        self.count += 1
        (page or self.page).screenshot(path=str(ARTIFACTS / f"{self.count:02d}-{name}.png"), full_page=True)


def manual_run(env, dag_id: str) -> dict:
    runs = api(env, f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
    manual = [r for r in runs if r["run_type"] == "manual"]
    assert len(manual) == 1, runs
    return manual[0]


def consumer_of(env, dag_id: str, source_run_id: str) -> dict | None:
    """The run of ``dag_id`` that a Dataset event of ``source_run_id`` triggered, if there is one yet."""
    for run in api(env, f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]:
        if run["run_type"] != "dataset_triggered":
            continue
        events = api(env, f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamDatasetEvents")
        if any(e["source_run_id"] == source_run_id for e in events["dataset_events"]):
            return run
    return None


def wait_in_ui(page: Page, url: str, text, count: int, timeout: float, steps: Steps, name: str) -> None:
    """Reload ``url`` until ``text`` shows at least ``count`` times, as a person refreshing would.

    Airflow's React views render in a shadow root, which Playwright's locators pierce.
    """
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        try:
            expect(page.get_by_text(text).nth(count - 1)).to_be_visible(timeout=15_000)
        except AssertionError:
            if time.monotonic() > deadline:
                steps.shot(f"{name}-timed-out")
                raise
            time.sleep(5)
            continue
        steps.shot(name)
        return


def wait_for(what: str, probe, timeout: float = 900):
    """Poll ``probe`` (through the REST API) until it answers something true."""
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(5)
    return found


def test_a_person_triggers_the_ingest_and_opens_the_chart_from_the_ui(tmp_path):
    executable = chromium()
    env = run_env(tmp_path / "state", SHOPSTREAM_BACKFILL_DAYS="0")
    process, _ = start_run(env)
    base = f"http://localhost:{env['SHOPSTREAM_WEBSERVER_PORT']}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(60_000)
            steps = Steps(page)

            page.goto(f"{base}/login/")
            page.fill("input#username", "admin")
            page.fill("input#password", "admin")
            steps.shot("login")
            page.click("input[type=submit]")
            page.wait_for_url(re.compile(r"/home"))
            for dag_id in DAGS:
                expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
            steps.shot("dags")

            page.goto(f"{base}/dags/sales_core_pipeline/grid")
            page.on("dialog", lambda dialog: dialog.accept())  # the UI may ask to confirm a trigger
            steps.shot("dag")
            page.locator('[aria-label="Trigger DAG"]').first.click()
            expect(page.get_by_text("Triggered sales_core_pipeline")).to_be_visible()
            steps.shot("triggered")
            triggered = manual_run(env, "sales_core_pipeline")["dag_run_id"]

            orders = "s3://shopstream/gold/orders"

            def order_events() -> list[dict]:
                events = api(env, "/datasets/events?limit=100")["dataset_events"]
                return [e for e in events if e["dataset_uri"] == orders]

            published = lambda: any(e["source_run_id"] == triggered for e in order_events())  # noqa: E731
            wait_for(f"a Dataset event of {triggered}", published)
            events = len(order_events())
            wait_in_ui(page, f"{base}/datasets?uri={quote(orders, safe='')}", "Source:", events, 60, steps, "events")

            consumers = {}
            for dag_id in ("analytics_and_reporting_pipeline", "observability_pipeline"):

                def finished(dag_id=dag_id):
                    run = consumer_of(env, dag_id, triggered)
                    return run if run and run["state"] in ("success", "failed") else None

                consumers[dag_id] = wait_for(f"a {dag_id} run from {triggered}", finished)
                assert consumers[dag_id]["state"] == "success", consumers[dag_id]
                grid = f"{base}/dags/{dag_id}/grid?dag_run_id={quote(consumers[dag_id]['dag_run_id'], safe='')}"
                wait_in_ui(page, grid, "dataset_triggered", 1, 60, steps, f"{dag_id}-run")
                status = page.locator("tr", has=page.get_by_text("Status", exact=True))
                expect(status.first).to_contain_text("success")

            run = consumers["analytics_and_reporting_pipeline"]
            page.goto(
                f"{base}/dags/analytics_and_reporting_pipeline/grid?dag_run_id={quote(run['dag_run_id'], safe='')}"
                "&task_id=daily_reports.write_report_files&tab=details"
            )
            link = page.get_by_role("link", name=CHART_LINK)
            expect(link).to_be_visible()
            steps.shot("extra-links")
            # The button opens the presigned URL in a new tab; open it there as the browser would.
            href = link.get_attribute("href")
            assert href and href.startswith(f"http://127.0.0.1:{env['SHOPSTREAM_S3_PORT']}/shopstream/reports/daily/")
            chart = browser.new_page()
            response = chart.goto(href)
            assert response.ok and response.headers["content-type"] == "image/png", response.headers
            assert response.body()[:8] == PNG
            steps.shot("chart", chart)
            browser.close()
    finally:
        stop_run(process)
