"""The demo's HTML report in a real headless Chromium: it opens offline, draws every chart, logs
no error, shows per channel the numbers channel_reporting and channel_roles hold, states each
number's window, and a run without conversions leaves it in place."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from include import settings
from include.html_report import CHART_IDS, REPORT_FILE
from tools.report_screenshot import CHROMIUM, show_report


def demo(root: Path, **env_extra: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ATTRIBUTION_"))}
    env |= {"ATTRIBUTION_DATA_DIR": str(root / "data"), "ATTRIBUTION_AIRFLOW_HOME": str(root / "airflow"), **env_extra}
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo"], cwd=settings.PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    """The data folder after ``make demo``, as a user gets it."""
    root = tmp_path_factory.mktemp("demo")
    demo(root)
    return root / "data"


def plotly_data(page, chart: str) -> list[dict]:
    return page.evaluate(
        """id => document.getElementById(id).data.map(t => ({name: t.name, x: t.x, y: t.y,
               customdata: t.customdata, hovertemplate: t.hovertemplate}))""",
        chart,
    )


def table(page, table_id: str) -> dict[str, list[str]]:
    rows = page.locator(f"#{table_id} tbody tr").all()
    return {cells[0]: cells[1:] for cells in ([c.inner_text() for c in r.locator("td").all()] for r in rows)}


def hover_text(page, chart: str) -> str:
    page.locator(f"#{chart} .point path").first.hover(force=True)
    page.wait_for_selector(f"#{chart} .hoverlayer .hovertext", timeout=5_000)
    return page.locator(f"#{chart} .hoverlayer").text_content() or ""


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
            channels = table(page, "channel-table")
            paths = page.locator("#paths tbody tr").count()
            title = page.title()
            roles = table(page, "roles-table")
            roles_chart = plotly_data(page, "chart-roles")
            model_totals = [c.inner_text() for c in page.locator("#model-table tfoot td").all()]
            model_headers = [c.inner_text() for c in page.locator("#model-table thead th").all()]
            cards = page.evaluate(
                """() => [...document.querySelectorAll('.card')].map(card => ({
                    label: card.querySelector('.label').innerText,
                    windows: [...card.querySelectorAll('.window')].map(w => w.innerText)}))"""
            )
            chart_windows = {
                chart: page.locator(f'.window[data-for="{chart}"]').all_inner_texts() for chart in CHART_IDS
            }
            tooltips = {chart: hover_text(page, chart) for chart in ("chart-channels", "chart-roles")}
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
        "roles": roles,
        "roles_chart": roles_chart,
        "model_totals": dict(zip(model_headers, model_totals, strict=True)),
        "cards": cards,
        "chart_windows": chart_windows,
        "tooltips": tooltips,
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
        cells = [None if text == "—" else float(text.replace(",", "")) for text in shown[channel]]
        assert cells[0] == pytest.approx(round(cost, 2), abs=0.005), channel
        assert cells[1] == pytest.approx(round(ihc, 4), abs=0.00005), channel
        assert cells[2] == pytest.approx(round(revenue, 2), abs=0.005), channel
        assert cells[3] == (None if ihc == 0 else pytest.approx(round(cost / ihc, 2), abs=0.005)), channel
        assert cells[4] == (None if cost == 0 else pytest.approx(round(revenue / cost, 4), abs=0.00005)), channel


def number(text: str) -> float:
    return float(text.replace(",", ""))


def test_the_roles_chart_and_table_equal_the_phases_summed_per_channel(page_seen, demo_data):
    with sqlite3.connect(demo_data / "challenge.db") as conn:
        first, last = conn.execute("SELECT MIN(date), MAX(date) FROM channel_roles").fetchone()
        phases = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT COALESCE(NULLIF(TRIM(s.channel_name), ''), '(no channel)'), SUM(p.initializer), "
                "SUM(p.holder), SUM(p.closer) FROM attribution_phases p "
                "JOIN session_sources s ON s.session_id = p.session_id "
                "WHERE s.event_date BETWEEN ? AND ? GROUP BY 1",
                (first, last),
            )
        }
    shown = page_seen["roles"]
    assert set(shown) == set(phases)
    for channel, sums in phases.items():
        cells = shown[channel]
        assert cells[0] in ("initializer", "holder", "closer")
        assert [number(c) for c in cells[1:4]] == pytest.approx([round(v, 4) for v in sums], abs=0.00005), channel
    drawn = page_seen["roles_chart"]
    assert [trace["name"].split()[0] for trace in drawn] == ["Initializer", "Holder", "Closer"]
    for phase, trace in enumerate(drawn):
        credits = dict(zip(trace["y"], (c[0] for c in trace["customdata"]), strict=True))
        assert credits == pytest.approx({ch: sums[phase] for ch, sums in phases.items()}, abs=1e-9)
    shares = [sum(trace["x"][i] for trace in drawn) for i in range(len(drawn[0]["x"]))]
    assert shares == pytest.approx([100.0] * len(shares)), "each bar is its channel's whole phase credit"
    closer_minus_starter = [drawn[2]["x"][i] - drawn[0]["x"][i] for i in range(len(shares))]
    assert closer_minus_starter == sorted(closer_minus_starter), "starters on top, closers at the bottom"


def test_every_models_credits_sum_to_the_attributed_conversions(page_seen, demo_data):
    with sqlite3.connect(demo_data / "challenge.db") as conn:
        attributed = conn.execute(
            "SELECT COUNT(DISTINCT a.conv_id) FROM attribution_customer_journey a JOIN conversions c "
            "ON c.conv_id = a.conv_id WHERE c.conv_date BETWEEN ? AND ?",
            (settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE),
        ).fetchone()[0]
    totals = page_seen["model_totals"]
    assert totals.pop("Channel") == "Total"
    assert any(name.startswith("Markov") for name in totals)
    for model, total in totals.items():
        assert number(total) == pytest.approx(attributed, abs=0.011), model


def test_no_card_or_chart_mixes_windows(page_seen):
    cards = {card["label"]: card["windows"] for card in page_seen["cards"]}
    assert all(len(windows) == 1 for windows in cards.values()), cards
    assert cards["Cost"] == cards["IHC-attributed revenue"] == cards["ROAS"], "a ratio's parts share a window"
    assert cards["Revenue of conversions"] == cards["Conversions in range"]
    assert cards["Revenue of conversions"] != cards["Cost"]
    assert cards["Revenue of conversions"][0].startswith(f"conversions dated {settings.SAMPLE_START_DATE}")
    assert all(len(windows) == 1 for windows in page_seen["chart_windows"].values()), page_seen["chart_windows"]


def test_tooltips_show_euros(page_seen):
    for chart, text in page_seen["tooltips"].items():
        assert re.search(r"\d{1,3}(,\d{3})*\.\d{2} EUR", text), (chart, text)


def test_a_run_without_conversions_leaves_the_latest_report_in_place(demo_data):
    latest = demo_data / "output" / REPORT_FILE
    before = latest.read_bytes()
    demo(demo_data.parent, ATTRIBUTION_START_DATE="2030-01-01", ATTRIBUTION_END_DATE="2030-01-02")
    assert latest.read_bytes() == before
    empty_run = max((demo_data / "runs").glob(f"*/{REPORT_FILE}"), key=lambda p: p.stat().st_mtime)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(latest.resolve().as_uri())
            assert page.title().startswith(f"IHC attribution report {settings.SAMPLE_START_DATE}")
            page.goto(empty_run.resolve().as_uri())
            assert "No conversions in the range 2030-01-01 .. 2030-01-02" in page.locator("main").inner_text()
        finally:
            browser.close()
