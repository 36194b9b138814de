"""The run summary file and its text."""

from __future__ import annotations

from dataclasses import replace

from include.summary import LEFT_IN_PLACE, SUMMARY_FILE, RunSummary


def make_summary(**overrides) -> RunSummary:
    summary = RunSummary(
        start="2023-09-01",
        end="2023-09-07",
        conversions=2000,
        attributed=1940,
        without_sessions=60,
        chunks=5,
        requests=23,
        attempts=27,
        sessions_sent=3703,
        trimmed_journeys=2,
        max_sum_error=0.00012,
        revenue=115748.05,
        report_rows=150,
        report_cost=294010.57,
        report_ihc_revenue=112345.6,
        csv_path="/data/output/channel_reporting.csv",
        without_sessions_ids=["C04200000017", "C04200000042"],
    )
    return replace(summary, **overrides)


def test_json_load_round_trip(tmp_path):
    summary = make_summary(html_replaced=False)
    path = tmp_path / SUMMARY_FILE
    path.write_bytes(summary.to_json())
    assert RunSummary.load(path) == summary


def test_text_says_when_the_latest_files_are_an_earlier_runs():
    assert "left in place" not in make_summary().text()
    lines = make_summary(conversions=0, html_replaced=False).text().splitlines()
    assert f"  latest files              {LEFT_IN_PLACE}" in lines
    assert "no conversions in this range" in LEFT_IN_PLACE


def test_text_contains_the_key_numbers():
    text = make_summary().text()
    for expected in [
        "2023-09-01 .. 2023-09-07",
        "2,000",
        "1,940",
        "60",
        "C04200000017, C04200000042",
        "3,703",
        "23 (27)",
        "0.000120",
        "115,748.05 EUR",
        "150",
        "294,010.57 EUR",
        "112,345.60 EUR",
        "/data/output/channel_reporting.csv",
    ]:
        assert expected in text, expected
    lines = text.splitlines()
    assert any(line.split()[:2] == ["without", "sessions"] and "60" in line for line in lines)
    assert any(line.split()[:2] == ["journeys", "trimmed"] and line.split()[2] == "2" for line in lines)
    assert any(line.split()[0] == "chunks" and line.split()[1] == "5" for line in lines)


def test_text_says_which_session_dates_the_report_figures_cover():
    """A short range's report covers its look-back too, where sessions of conversions outside the
    range count: its IHC revenue can exceed the range's revenue, and the text says why."""
    lines = make_summary(report_first="2023-08-02", report_last="2023-09-07").text().splitlines()
    assert "  report, session dates     2023-08-02 .. 2023-09-07" in lines
    revenue = next(line for line in lines if line.split()[:3] == ["report", "IHC", "revenue"])
    assert "112,345.60 EUR (all conversions' sessions on those dates)" in revenue
    assert not any("session dates" in line for line in make_summary().text().splitlines())


def test_text_names_the_local_engine_parameters_only_when_there_are_some():
    assert "local engine parameters" not in make_summary().text()
    text = make_summary(engine_parameters=["/data/engine/default.json"]).text()
    assert "  local engine parameters   /data/engine/default.json" in text.splitlines()


def test_text_without_unattributable_conversions_shows_no_examples():
    text = make_summary(without_sessions=0, without_sessions_ids=[]).text()
    assert "e.g." not in text
    assert any(line.split()[:3] == ["without", "sessions", "0"] for line in text.splitlines())


def test_text_shows_at_most_five_example_ids():
    ids = [f"C{i}" for i in range(8)]
    text = make_summary(without_sessions=8, without_sessions_ids=ids).text()
    assert "C0, C1, C2, C3, C4)" in text
    assert "C5" not in text
