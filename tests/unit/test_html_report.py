"""The HTML report's content, built from hand-made inputs (the browser test opens a real one)."""

from __future__ import annotations

import re

from include import html_report, run_config
from include.html_report import CHART_IDS, ReportInputs, channel_totals
from include.ihc_client import ApiTarget
from include.model_comparison import ModelCredit
from include.paths import ChannelPath, PathSummary
from include.report import ReportRow
from include.settings import DateRange
from include.summary import RunSummary

ROWS = [
    ReportRow("Paid", "2023-09-01", 100.0, 2.0, 50.0),
    ReportRow("Paid", "2023-09-02", 300.0, 1.0, 30.0),
    ReportRow("Organic", "2023-09-01", 0.0, 3.0, 90.0),
]
API = ApiTarget("https://api.example", "secret-key-123", "purchase")


def summary() -> RunSummary:
    return RunSummary(
        "2023-09-01", "2023-09-02", 7, 6, 1, 2, 3, 4, 12, 0, 0.0, 170.0, 3, 400.0, 170.0, "/out/channel_reporting.csv"
    )


def render() -> str:
    config = run_config.resolve(DateRange("2023-09-01", "2023-09-02"), lambda name: None, API)
    inputs = ReportInputs(
        summary=summary(),
        window=("2023-08-02", "2023-09-02"),
        channel_rows=ROWS,
        credits=[ModelCredit("ihc", "Paid", 3.0, 80.0), ModelCredit("linear", "Organic", 2.5, 75.0)],
        paths=PathSummary([ChannelPath(("Paid", "Organic ×2"), 4, 120.0)], 2, 2, 50.0),
        parameters=html_report.run_parameters(config, summary(), ("2023-08-02", "2023-09-02")),
    )
    return html_report.render(inputs).decode()


def test_channels_are_summed_over_the_window_with_cpo_and_roas():
    paid, organic = channel_totals(ROWS)
    assert (paid.channel_name, paid.cost, paid.ihc, paid.ihc_revenue) == ("Paid", 400.0, 3.0, 80.0)
    assert (paid.cpo, paid.roas) == (400.0 / 3, 0.2)
    assert (organic.cpo, organic.roas) == (0.0, None), "no cost: ROAS undefined, CPO 0"


def test_the_page_holds_every_section_and_no_reference_outside_it():
    page = render()
    for chart in CHART_IDS:
        assert f'id="{chart}"' in page
    for table in ("channel-table", "model-table", "paths", "parameters"):
        assert f'<table id="{table}">' in page
    assert '<td class="name">Paid → Organic ×2</td>' in page
    assert "2 other paths" in page
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page), "everything is inline"
    assert "also those outside the range that other runs attributed" in page, "why it can exceed the revenue"


def test_the_run_parameters_name_the_api_but_never_its_key():
    page = render()
    assert "https://api.example/v1/compute_ihc?conv_type_id=purchase" in page
    assert "secret-key-123" not in page


def test_an_empty_range_says_so_instead_of_drawing_empty_charts():
    config = run_config.resolve(DateRange("2030-01-01", "2030-01-01"), lambda name: None, API)
    empty = RunSummary("2030-01-01", "2030-01-01", 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, 0.0, 0.0, "")
    inputs = ReportInputs(
        empty,
        ("2029-12-02", "2030-01-01"),
        [],
        [],
        PathSummary(),
        html_report.run_parameters(config, empty, ("a", "b")),
    )
    page = html_report.render(inputs).decode()
    assert not any(f'id="{chart}"' in page for chart in CHART_IDS)
    assert "No channel_reporting rows for the session dates 2029-12-02 .. 2030-01-01." in page
    assert "No attributed conversion dated 2030-01-01 .. 2030-01-01." in page
