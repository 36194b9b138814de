"""The HTML report's content, built from hand-made inputs (the browser test opens a real one)."""

from __future__ import annotations

import re

from include import attributions, html_report, run_config, schema
from include.html_report import CHART_IDS, RangeTotals, ReportInputs, channel_roles, channel_totals
from include.ihc_client import ApiTarget
from include.model_comparison import ModelCredit
from include.paths import ChannelPath, PathSummary
from include.report import ReportRow
from include.roles import RoleRow
from include.settings import DateRange
from include.summary import RunSummary
from tests.warehouse_rows import add_conversions

ROWS = [
    ReportRow("Paid", "2023-09-01", 100.0, 2.0, 50.0),
    ReportRow("Paid", "2023-09-02", 300.0, 1.0, 30.0),
    ReportRow("Organic", "2023-09-01", 0.0, 3.0, 90.0),
]
ROLES = [
    RoleRow("Paid", "2023-09-01", 2.0, 0.5, 0.25, 40.0, 10.0, 5.0),
    RoleRow("Paid", "2023-09-02", 1.0, 0.0, 0.0, 20.0, 0.0, 0.0),
    RoleRow("Organic", "2023-09-01", 0.5, 0.5, 3.0, 10.0, 10.0, 60.0),
    RoleRow("Email", "2023-09-01", 0.1, 2.0, 0.1, 1.0, 40.0, 2.0),
]
API = ApiTarget("https://api.example", "secret-key-123", "purchase")
# The range as the warehouse holds it, apart from the run's own counts in summary().
TOTALS = RangeTotals(conversions=8, revenue=1234.5, attributed=5)
NONE = RangeTotals(0, 0.0, 0)


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
        totals=TOTALS,
        roles=ROLES,
        window_credits=[ModelCredit("ihc", "Paid", 3.0, 80.0), ModelCredit("linear", "Paid", 2.0, 100.0)],
    )
    return html_report.render(inputs).decode()


def test_channels_are_summed_over_the_window_with_cpo_and_roas():
    paid, organic = channel_totals(ROWS)
    assert (paid.channel_name, paid.cost, paid.ihc, paid.ihc_revenue) == ("Paid", 400.0, 3.0, 80.0)
    assert (paid.cpo, paid.roas) == (400.0 / 3, 0.2)
    assert (organic.cpo, organic.roas) == (0.0, None), "no cost: ROAS undefined, CPO 0"


def test_undefined_ratios_show_a_dash_never_zero():
    page = render()
    organic = re.search(r'<tr><td class="name">Organic</td>(.*?)</tr>', page).group(1)
    assert organic.endswith('<td class="num">—</td>'), "Organic has no cost: its ROAS is undefined"
    roas = re.search(r'<table id="roas-table">.*?</table>', page).group(0)
    cells = ("400.00", "0.2000", "0.0000", "0.0000", "0.2500")
    paid = "".join(f'<td class="num">{cell}</td>' for cell in cells)
    assert paid in roas, "a cost without model revenue is a ROAS of 0"
    organic_roas = re.search(r'<td class="name">Organic</td><td class="num">0.00</td>(.*?)</tr>', roas).group(1)
    assert set(re.findall(r">([^<]*)</td>", organic_roas)) == {"—"}


def test_channel_roles_are_summed_per_channel_starters_first_closers_last():
    profiles = channel_roles(ROLES)
    assert [p.channel_name for p in profiles] == ["Paid", "Email", "Organic"]
    paid, email, organic = profiles
    assert paid.credit == {"initializer": 3.0, "holder": 0.5, "closer": 0.25}
    assert paid.revenue == {"initializer": 60.0, "holder": 10.0, "closer": 5.0}
    assert (paid.main_role, email.main_role, organic.main_role) == ("initializer", "holder", "closer")
    assert organic.share("closer") == 3.0 / 4.0


def test_every_card_states_one_window_and_a_ratio_relates_numbers_of_its_own_window():
    page = render()
    cards = re.findall(
        r'<div class="label">([^<]+)</div><div class="value"[^>]*>([^<]+)</div><div class="window">([^<]+)</div>', page
    )
    window = {label: win for label, _, win in cards}
    assert (
        window["Revenue of conversions"]
        == window["Conversions in range"]
        == "conversions dated 2023-09-01 .. 2023-09-02"
    )
    assert window["Cost"] == window["IHC-attributed revenue"] == window["ROAS"]
    assert window["Cost"].startswith("sessions dated 2023-08-02 .. 2023-09-02")
    assert dict((label, value) for label, value, _ in cards)["ROAS"] == f"{170.0 / 400.0:.4f}"


def test_the_range_cards_are_the_warehouses_not_the_runs_counts():
    """The run counted 7 conversions and wrote 6; the warehouse holds 8 in the range, 5 attributed:
    the cards show the warehouse's, the run's own counts stay in its Run section."""
    page = render()
    values = dict(re.findall(r'<div class="value" id="total-([a-z-]+)">([^<]+)</div>', page))
    assert values["conversions-in-range"] == "8"
    assert values["attributed"] == "5"
    assert values["not-attributed"] == "3"
    assert values["revenue-of-conversions"] == "1,234.50 EUR"
    assert '<td class="name">Chunks, API requests (attempts)</td><td class="name">2, 3 (4)</td>' in page
    assert '<td class="num">80.0%</td>' in page, "a path's share is of the range's attributed conversions"


def test_the_trend_shades_the_look_back_and_draws_its_revenue_apart():
    page = render()
    assert "look-back" in page and "journeys reaching back only" not in page, "no session row before the range"
    rows = [*ROWS, ReportRow("Paid", "2023-08-20", 50.0, 0.1, 5.0)]
    config = run_config.resolve(DateRange("2023-09-01", "2023-09-02"), lambda name: None, API)
    inputs = ReportInputs(
        summary(),
        ("2023-08-02", "2023-09-02"),
        rows,
        [],
        PathSummary(),
        html_report.run_parameters(config, summary(), ("a", "b")),
        TOTALS,
    )
    page = html_report.render(inputs).decode()
    assert "IHC revenue, look-back days (journeys reaching back only)" in page
    assert '"type":"rect"' in page.replace(" ", "")


def test_tooltips_show_euros_with_separators():
    page = render()
    assert "Cost: %{x:,.2f} EUR" in page and "IHC revenue: %{y:,.2f} EUR" in page
    assert "%{customdata[1]:,.2f} EUR" in page, "the roles chart's revenue"


def test_the_page_holds_every_section_and_no_reference_outside_it():
    page = render()
    for chart in CHART_IDS:
        assert f'id="{chart}"' in page
    for table in ("channel-table", "roles-table", "model-table", "roas-table", "paths", "parameters"):
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
        NONE,
    )
    page = html_report.render(inputs).decode()
    assert not any(f'id="{chart}"' in page for chart in CHART_IDS)
    assert "No conversions in the range 2030-01-01 .. 2030-01-01" in page
    assert '<table id="parameters">' in page


def test_a_range_whose_conversions_have_no_sessions_says_so_per_section():
    config = run_config.resolve(DateRange("2030-01-01", "2030-01-01"), lambda name: None, API)
    unattributed = RunSummary("2030-01-01", "2030-01-01", 3, 0, 3, 0, 0, 0, 0, 0, 0.0, 30.0, 0, 0.0, 0.0, "")
    inputs = ReportInputs(
        unattributed,
        ("2029-12-02", "2030-01-01"),
        [],
        [],
        PathSummary(),
        html_report.run_parameters(config, unattributed, ("a", "b")),
        RangeTotals(3, 30.0, 0),
    )
    page = html_report.render(inputs).decode()
    assert not any(f'id="{chart}"' in page for chart in CHART_IDS)
    assert "No channel_reporting rows for the session dates 2029-12-02 .. 2030-01-01." in page
    assert "No attributed conversion dated 2030-01-01 .. 2030-01-01." in page


def test_the_range_totals_count_the_ranges_conversions_and_those_with_attribution_rows(db):
    schema.init_schema(db)
    add_conversions(
        db,
        [
            ("c1", "u1", "2023-09-01 12:00:00", 30.0),
            ("c2", "u2", "2023-09-02 12:00:00", None),
            ("c3", "u3", "2023-09-02 13:00:00", 20.5),
            ("c4", "u4", "2023-09-03 12:00:00", 99.0),
        ],
    )
    rows = [("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0), ("c4", "s4", 1.0)]
    db.insert_many("attribution_customer_journey", attributions.ATTRIBUTION_COLUMNS, rows)

    totals = html_report.range_totals(db, DateRange("2023-09-01", "2023-09-02"))

    assert totals == RangeTotals(conversions=3, revenue=50.5, attributed=2)
    assert totals.not_attributed == 1
    assert html_report.range_totals(db, DateRange("2030-01-01", "2030-01-02")) == NONE
