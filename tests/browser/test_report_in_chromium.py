"""The demo's HTML report in a real headless Chromium: it opens offline, draws every chart, logs
no error, and shows per channel the numbers channel_reporting holds."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from include import settings
from include.html_report import CHART_IDS, REPORT_FILE
from tools.report_screenshot import CHROMIUM, show_report


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """The data folder after ``make demo``, as a user gets it."""
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ATTRIBUTION_"))}
    env |= {"ATTRIBUTION_DATA_DIR": str(root / "data"), "ATTRIBUTION_AIRFLOW_HOME": str(root / "airflow")}
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo"], cwd=settings.PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "data"


@pytest.fixture(scope="module")
def page_seen(demo_data):
    """What Chromium saw opening the report: the page's tables, console errors, requests."""
    report = demo_data / "output" / REPORT_FILE
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            requests: list[str] = []
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            show_report(page, report)
            charts = {chart: page.locator(f"#{chart} .main-svg").count() for chart in CHART_IDS}
            rows = page.locator("#channel-table tbody tr").all()
            channels = {
                cells[0]: cells[1:] for cells in ([c.inner_text() for c in r.locator("td").all()] for r in rows)
            }
            paths = page.locator("#paths tbody tr").count()
            title = page.title()
        finally:
            browser.close()
    return {
        "report": report,
        "requests": requests,
        "errors": errors,
        "charts": charts,
        "channels": channels,
        "paths": paths,
        "title": title,
    }


def test_the_report_opens_offline_without_errors(page_seen):
    assert page_seen["errors"] == []
    assert page_seen["requests"] == [page_seen["report"].resolve().as_uri()], "nothing but the file itself"
    assert page_seen["title"].startswith(f"IHC attribution report {settings.SAMPLE_START_DATE}")


def test_every_chart_is_drawn(page_seen):
    assert all(count >= 1 for count in page_seen["charts"].values()), page_seen["charts"]
    assert page_seen["paths"] > 1


def test_each_channel_shows_what_channel_reporting_holds(page_seen, demo_data):
    with sqlite3.connect(demo_data / "challenge.db") as conn:
        expected = {
            channel: (cost, ihc, revenue)
            for channel, cost, ihc, revenue in conn.execute(
                "SELECT channel_name, SUM(cost), SUM(ihc), SUM(ihc_revenue) FROM channel_reporting GROUP BY 1"
            )
        }
    shown = page_seen["channels"]
    assert set(shown) == set(expected)
    for channel, (cost, ihc, revenue) in expected.items():
        cells = [float(text.replace(",", "")) if text else None for text in shown[channel]]
        assert cells[0] == pytest.approx(round(cost, 2), abs=0.005), channel
        assert cells[1] == pytest.approx(round(ihc, 4), abs=0.00005), channel
        assert cells[2] == pytest.approx(round(revenue, 2), abs=0.005), channel
        assert cells[3] == (None if ihc == 0 else pytest.approx(round(cost / ihc, 2), abs=0.005)), channel
        assert cells[4] == (None if cost == 0 else pytest.approx(round(revenue / cost, 4), abs=0.00005)), channel
