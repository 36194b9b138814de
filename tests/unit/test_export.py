"""CSV export of channel_reporting with CPO and ROAS."""

from __future__ import annotations

import csv
import math

import pytest

from include.export import HEADER, csv_row, fmt, ratio, write_csv
from include.report import ReportRow


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_header_and_formatting(tmp_path):
    path = tmp_path / "report.csv"
    rows = [
        ReportRow("FB & IG Ads", "2023-09-01", 1234.5, 2.5, 150.0),
        ReportRow("Paid Search, Brand", "2023-09-02", 10.0, 0.33333, 19.999),
    ]
    assert write_csv(rows, path) == 2
    content = read_csv(path)
    assert content[0] == ["channel_name", "date", "cost", "ihc", "ihc_revenue", "CPO", "ROAS"]
    assert tuple(content[0]) == HEADER
    assert content[1] == ["FB & IG Ads", "2023-09-01", "1234.50", "2.5000", "150.00", "493.80", "0.1215"]
    # a comma in a channel name is quoted, not a new column
    assert content[2] == ["Paid Search, Brand", "2023-09-02", "10.00", "0.3333", "20.00", "30.00", "1.9999"]
    raw = path.read_text(encoding="utf-8")
    assert raw.startswith("channel_name,date,cost,ihc,ihc_revenue,CPO,ROAS\n")
    assert '"Paid Search, Brand"' in raw
    assert "\r" not in raw


def test_cpo_is_cost_per_ihc_and_roas_is_revenue_per_cost():
    row = ReportRow("Referral", "2023-09-03", 200.0, 4.0, 500.0)
    cells = dict(zip(HEADER, csv_row(row), strict=True))
    assert float(cells["CPO"]) == pytest.approx(200.0 / 4.0)
    assert float(cells["ROAS"]) == pytest.approx(500.0 / 200.0)
    assert cells["CPO"] == "50.00"
    assert cells["ROAS"] == "2.5000"


@pytest.mark.parametrize(
    ("cost", "ihc", "ihc_revenue", "cpo", "roas"),
    [
        (50.0, 0.0, 0.0, "", "0.0000"),  # nothing attributed: no CPO
        (0.0, 2.0, 120.0, "0.00", ""),  # free channel: no ROAS, CPO is a real 0
        (0.0, 0.0, 0.0, "", ""),  # neither
    ],
)
def test_zero_denominators_give_empty_cells(tmp_path, cost, ihc, ihc_revenue, cpo, roas):
    path = tmp_path / "report.csv"
    write_csv([ReportRow("Organic Traffic", "2023-09-04", cost, ihc, ihc_revenue)], path)
    row = read_csv(path)[1]
    assert row[5:] == [cpo, roas]
    text = path.read_text().lower()
    assert "inf" not in text
    assert "nan" not in text


def test_ratio_and_fmt():
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(10.0, 0.0) is None
    assert ratio(0.0, 0.0) is None
    assert fmt(None, 2) == ""
    assert fmt(1.005, 4) == "1.0050"
    assert fmt(-0.0001, 2) == "0.00"  # no "-0.00"
    assert fmt(-1.5, 2) == "-1.50"
    assert not math.isinf(float(fmt(1e12, 2)))


def test_a_sum_on_a_half_cent_gives_one_cell_whatever_its_float_noise():
    # The sample's Pinterest Ads cost of 2023-09-05, exactly 401.8050, as SQLite and PostgreSQL sum it.
    assert fmt(401.80499999999915, 2) == fmt(401.805, 2) == "401.81"
    assert fmt(742.155, 2) == "742.16"  # 742.15499999999997 in binary
    assert fmt(-0.125, 2) == "-0.13"  # half away from zero
    assert fmt(0.12344999, 4) == "0.1234"  # below the tie by more than float noise


def test_write_is_atomic_and_replaces_the_file(tmp_path):
    path = tmp_path / "out" / "channel_reporting.csv"
    path.parent.mkdir()
    path.write_text("old content that is longer than the new file " * 100)
    count = write_csv([ReportRow("Referral", "2023-09-01", 1.0, 1.0, 2.0)], path)
    assert count == 1
    content = read_csv(path)
    assert len(content) == 2
    assert content[1][0] == "Referral"
    assert "old content" not in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["channel_reporting.csv"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "channel_reporting.csv"
    path.write_text("previous report\n")

    def broken_rows():
        yield ReportRow("Referral", "2023-09-01", 1.0, 1.0, 2.0)
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        write_csv(broken_rows(), path)
    assert path.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["channel_reporting.csv"]


def test_empty_report_has_only_the_header(tmp_path):
    path = tmp_path / "nested" / "report.csv"
    assert write_csv(iter([]), path) == 0
    assert read_csv(path) == [list(HEADER)]


def test_row_count_returned(tmp_path):
    rows = [ReportRow("Referral", f"2023-09-{d:02d}", float(d), 1.0, 2.0) for d in range(1, 11)]
    path = tmp_path / "report.csv"
    assert write_csv(iter(rows), path) == 10
    assert len(read_csv(path)) == 11
