"""channel_roles on a small hand-built database, SQLite and PostgreSQL alike."""

from __future__ import annotations

import csv

import pytest

from include import attributions, export, roles, schema
from tests.unit.test_attributions import ledger_of
from tests.warehouse_rows import add_conversions, add_sessions


@pytest.fixture
def roles_db(db):
    schema.init_schema(db)
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-09-01 10:00:00", "Paid"),
            ("s2", "u1", "2023-09-01 11:00:00", " "),  # no channel
            ("s3", "u1", "2023-09-02 09:00:00", "Organic"),
            ("s4", "u2", "2023-09-02 10:00:00", "Paid"),
            ("s5", "u2", "2023-08-20 10:00:00", "Paid"),  # before the window
        ],
    )
    conversions = [("c1", "u1", "2023-09-02 12:00:00", 100.0), ("c2", "u2", "2023-09-02 12:00:00", 40.0)]
    add_conversions(db, conversions)
    rows = [
        ("c1", "s1", 1.0, 0.25, 0.0, 0.4),
        ("c1", "s2", 0.0, 0.75, 0.25, 0.3),
        ("c1", "s3", 0.0, 0.0, 0.75, 0.3),
        ("c2", "s5", 0.5, 0.0, 0.0, 0.2),
        ("c2", "s4", 0.5, 0.0, 1.0, 0.8),
    ]
    attributions.replace_attributions(
        db, "2023-09-01", "2023-09-07", rows, ledger_of(rows, conversions), tolerance=1e-6, expected_rows=5
    )
    db.insert_many(
        "channel_roles",
        roles.ROLE_COLUMNS,
        [("Gone", "2023-09-01", 1, 1, 1, 1, 1, 1), ("Paid", "2023-08-20", 9, 9, 9, 9, 9, 9)],
    )
    return db


def test_rebuild_roles_sums_each_phase_and_its_revenue_per_channel_and_day(roles_db):
    assert roles.rebuild_roles(roles_db, "2023-09-01", "2023-09-02") == 4
    rows = {(r.channel_name, r.date): r for r in roles.role_rows_between(roles_db, "2023-09-01", "2023-09-02")}
    assert set(rows) == {
        ("Paid", "2023-09-01"),
        ("(no channel)", "2023-09-01"),
        ("Organic", "2023-09-02"),
        ("Paid", "2023-09-02"),
    }
    paid = rows[("Paid", "2023-09-01")]
    assert (paid.initializer, paid.holder, paid.closer) == pytest.approx((1.0, 0.25, 0.0))
    assert (paid.initializer_revenue, paid.holder_revenue, paid.closer_revenue) == pytest.approx((100.0, 25.0, 0.0))
    late = rows[("Paid", "2023-09-02")]
    assert (late.initializer, late.closer, late.closer_revenue) == pytest.approx((0.5, 1.0, 40.0))
    kept = [(r.channel_name, r.date, r.initializer) for r in roles.role_rows(roles_db) if r.date < "2023-09-01"]
    assert kept == [("Paid", "2023-08-20", 9.0)], "a row outside the window is left alone, a gone one removed"


def test_a_rerun_gives_the_same_roles(roles_db):
    roles.rebuild_roles(roles_db, "2023-09-01", "2023-09-02")
    first = list(roles.role_rows(roles_db))
    roles.rebuild_roles(roles_db, "2023-09-01", "2023-09-02")
    assert list(roles.role_rows(roles_db)) == first


def test_the_roles_csv_has_a_row_per_channel_and_day(roles_db, tmp_path):
    roles.rebuild_roles(roles_db, "2023-08-20", "2023-09-02")
    out = tmp_path / export.ROLES_CSV_FILE
    assert export.write_roles_csv(roles.role_rows(roles_db), out) == 5
    with out.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == list(roles.ROLE_COLUMNS)
    organic = next(r for r in table if r["channel_name"] == "Organic")
    assert organic == {
        "channel_name": "Organic",
        "date": "2023-09-02",
        "initializer": "0.0000",
        "holder": "0.0000",
        "closer": "0.7500",
        "initializer_revenue": "0.00",
        "holder_revenue": "0.00",
        "closer_revenue": "75.00",
    }
