"""The report on small hand-built databases, SQLite and PostgreSQL alike: window and math."""

from __future__ import annotations

import pytest

from include import attributions, report, schema
from include.settings import DateRange, RunWindow
from tests.warehouse_rows import (
    add_conversions,
    add_costs,
    add_sessions,
    stored_report,
)


@pytest.fixture
def report_db(db):
    schema.init_schema(db)
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-09-01 10:00:00", "Paid"),  # in both journeys of u1
            ("s2", "u1", "2023-09-01 11:00:00", "Paid"),  # in both journeys of u1
            ("s3", "u2", "2023-09-01 12:00:00", "Paid"),  # never attributed, still costs
            ("s4", "u3", "2023-09-01 13:00:00", "Organic"),  # NULL cost
            ("s5", "u1", "2023-09-02 10:00:00", "Organic"),  # attributed, cost 0
            ("s6", "u4", "2023-09-02 11:00:00", "Organic"),  # no cost row at all
            ("s7", "u4", "2023-09-02 12:00:00", "Paid"),  # NULL cost, never attributed
            ("s8", "u5", "2023-09-03 12:00:00", "Paid"),  # after the window
            ("s9", "u5", "2023-08-30 12:00:00", "Paid"),  # before the window
        ],
    )
    add_costs(
        db,
        [("s1", 10.0), ("s2", 5.0), ("s3", 2.5), ("s4", None), ("s5", 0.0), ("s7", None), ("s8", 7.0), ("s9", 3.0)],
    )
    add_conversions(
        db,
        [("c1", "u1", "2023-09-02 12:00:00", 100.0), ("c2", "u1", "2023-09-03 12:00:00", 50.0)],
    )
    db.insert_many(
        "attribution_customer_journey",
        attributions.ATTRIBUTION_COLUMNS,
        [("c1", "s1", 0.25), ("c1", "s2", 0.75), ("c2", "s1", 0.1), ("c2", "s2", 0.2), ("c2", "s5", 0.7)],
    )
    db.insert_many(
        "channel_reporting",
        ("channel_name", "date", "cost", "ihc", "ihc_revenue"),
        [
            ("Paid", "2023-08-30", 111.0, 2.0, 3.0),  # before the window: untouched
            ("Paid", "2023-09-03", 222.0, 4.0, 5.0),  # after the window: untouched
            ("Gone", "2023-09-01", 9.0, 9.0, 9.0),  # in the window, no sessions any more: removed
            ("Paid", "2023-09-01", 999.0, 9.0, 9.0),  # in the window: recomputed
        ],
    )
    return db


def test_rebuild_report_math(report_db):
    totals = report.rebuild_report(report_db, "2023-09-01", "2023-09-02")
    rows = {(r[0], r[1]): r[2:] for r in stored_report(report_db)}

    # cost: s1 + s2 once each although both are in two journeys, plus unattributed s3
    cost, ihc, ihc_revenue = rows[("Paid", "2023-09-01")]
    assert cost == pytest.approx(17.5)
    assert ihc == pytest.approx(0.25 + 0.75 + 0.1 + 0.2)
    assert ihc_revenue == pytest.approx((0.25 + 0.75) * 100 + (0.1 + 0.2) * 50)

    assert rows[("Organic", "2023-09-01")] == pytest.approx((0.0, 0.0, 0.0))  # NULL cost counts as 0
    assert rows[("Organic", "2023-09-02")] == pytest.approx((0.0, 0.7, 35.0))  # missing cost row counts as 0
    assert rows[("Paid", "2023-09-02")] == pytest.approx((0.0, 0.0, 0.0))  # NULL cost, unattributed

    assert totals.rows == 4
    assert totals.cost == pytest.approx(17.5)
    assert totals.ihc == pytest.approx(2.0)
    assert totals.ihc_revenue == pytest.approx(150.0)


def test_rebuild_report_leaves_rows_outside_the_window_untouched(report_db):
    report.rebuild_report(report_db, "2023-09-01", "2023-09-02")
    rows = {(r[0], r[1]): r[2:] for r in stored_report(report_db)}
    assert rows[("Paid", "2023-08-30")] == (111.0, 2.0, 3.0)
    assert rows[("Paid", "2023-09-03")] == (222.0, 4.0, 5.0)
    assert ("Gone", "2023-09-01") not in rows
    assert set(rows) == {
        ("Paid", "2023-08-30"),
        ("Paid", "2023-09-01"),
        ("Paid", "2023-09-02"),
        ("Paid", "2023-09-03"),
        ("Organic", "2023-09-01"),
        ("Organic", "2023-09-02"),
    }


def test_rebuild_report_is_idempotent(report_db):
    first_totals = report.rebuild_report(report_db, "2023-09-01", "2023-09-02")
    first = stored_report(report_db)
    second_totals = report.rebuild_report(report_db, "2023-09-01", "2023-09-02")
    assert stored_report(report_db) == first
    assert second_totals == first_totals


def test_rebuild_report_cost_matches_session_costs(report_db):
    report.rebuild_report(report_db, "2023-08-01", "2023-09-30")
    report_cost = report_db.execute("SELECT SUM(cost) FROM channel_reporting").fetchone()[0]
    table_cost = report_db.execute("SELECT SUM(COALESCE(cost, 0)) FROM session_costs").fetchone()[0]
    assert report_cost == pytest.approx(table_cost)
    report_ihc = report_db.execute("SELECT SUM(ihc) FROM channel_reporting").fetchone()[0]
    assert report_ihc == pytest.approx(2.0)


def test_report_rows_are_ordered_by_date_then_channel(report_db):
    report.rebuild_report(report_db, "2023-09-01", "2023-09-02")
    keys = [(r.date, r.channel_name) for r in report.report_rows(report_db)]
    assert keys == sorted(keys)
    assert keys[0] == ("2023-08-30", "Paid")


@pytest.mark.parametrize(
    ("start", "end", "lookback", "expected"),
    [
        ("2023-09-01", "2023-09-07", 30, ("2023-08-02", "2023-09-07")),
        ("2023-09-01", "2023-09-07", 0, ("2023-09-01", "2023-09-07")),
        ("2024-01-05", "2024-01-05", 10, ("2023-12-26", "2024-01-05")),
        ("2024-03-01", "2024-03-02", 1, ("2024-02-29", "2024-03-02")),
    ],
)
def test_report_window(start, end, lookback, expected):
    assert report.report_window(RunWindow(DateRange(start, end), lookback)) == expected
