"""The rule-based models on hand-computed journeys, SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from include import attributions, model_comparison, schema
from include.model_comparison import MODELS
from include.settings import DateRange
from tests.warehouse_rows import add_conversions, add_sessions

# c1: Paid -> Email -> Organic -> Paid (4 touches, revenue 100)
# c2: Organic -> Email (2 touches, revenue 50)
# c3: Email (1 touch, revenue 10)
# c4: Paid -> Organic -> Email, but its first session lies before the window (revenue 40)
SESSIONS = [
    ("s1", "u1", "2023-09-01 09:00:00", "Paid"),
    ("s2", "u1", "2023-09-01 10:00:00", "Email"),
    ("s3", "u1", "2023-09-02 09:00:00", "Organic"),
    ("s4", "u1", "2023-09-02 10:00:00", "Paid"),
    ("s5", "u2", "2023-09-02 09:00:00", "Organic"),
    ("s6", "u2", "2023-09-02 11:00:00", "Email"),
    ("s7", "u3", "2023-09-03 09:00:00", "Email"),
    ("s8", "u4", "2023-08-20 09:00:00", "Paid"),
    ("s9", "u4", "2023-09-01 09:00:00", "Organic"),
    ("s10", "u4", "2023-09-01 12:00:00", "Email"),
]
CONVERSIONS = [
    ("c1", "u1", "2023-09-02 11:00:00", 100.0),
    ("c2", "u2", "2023-09-02 12:00:00", 50.0),
    ("c3", "u3", "2023-09-03 10:00:00", 10.0),
    ("c4", "u4", "2023-09-01 13:00:00", 40.0),
]
IHC = [
    ("c1", "s1", 0.1), ("c1", "s2", 0.2), ("c1", "s3", 0.3), ("c1", "s4", 0.4),
    ("c2", "s5", 0.6), ("c2", "s6", 0.4),
    ("c3", "s7", 1.0),
    ("c4", "s8", 0.5), ("c4", "s9", 0.25), ("c4", "s10", 0.25),
]  # fmt: skip


def filled(db, first: str, last: str):
    """The journeys above in the tables, and the comparison rebuilt for [first, last]."""
    schema.init_schema(db)
    add_sessions(db, SESSIONS)
    add_conversions(db, CONVERSIONS)
    db.insert_many("attribution_customer_journey", attributions.ATTRIBUTION_COLUMNS, IHC)
    model_comparison.rebuild_model_comparison(db, first, last)
    return db


@pytest.fixture
def comparison_db(db):
    return filled(db, "2023-09-01", "2023-09-03")


def table(db) -> dict[tuple[str, str, str], tuple[float, float]]:
    rows = db.execute("SELECT model, channel_name, date, credit, revenue FROM channel_model_comparison").fetchall()
    return {(m, ch, d): (credit, revenue) for m, ch, d, credit, revenue in rows}


def credit(rows, model: str, channel: str, date: str) -> float:
    return rows.get((model, channel, date), (0.0, 0.0))[0]


def test_each_model_splits_the_hand_computed_way(comparison_db):
    rows = table(comparison_db)
    # first touch: c1 -> Paid 09-01, c2 -> Organic 09-02, c3 -> Email 09-03; c4's first touch is
    # before the window (08-20), so nothing of c4 here
    assert credit(rows, "first_touch", "Paid", "2023-09-01") == 1.0
    assert credit(rows, "first_touch", "Organic", "2023-09-02") == 1.0
    assert credit(rows, "first_touch", "Organic", "2023-09-01") == 0.0
    # last touch: c1 -> Paid 09-02, c2 -> Email 09-02, c3 -> Email 09-03, c4 -> Email 09-01
    assert credit(rows, "last_touch", "Paid", "2023-09-02") == 1.0
    assert credit(rows, "last_touch", "Email", "2023-09-02") == 1.0
    assert credit(rows, "last_touch", "Email", "2023-09-01") == 1.0
    # linear: c1 quarters, c2 halves, c3 whole, c4 thirds
    assert credit(rows, "linear", "Paid", "2023-09-01") == pytest.approx(0.25)
    assert credit(rows, "linear", "Email", "2023-09-01") == pytest.approx(0.25 + 1 / 3)
    assert credit(rows, "linear", "Organic", "2023-09-02") == pytest.approx(0.25 + 0.5)
    # position based 40/20/40: c1 0.4 / 0.1 / 0.1 / 0.4, c2 0.5 / 0.5, c3 1, c4 0.4 / 0.2 / 0.4
    assert credit(rows, "position_based", "Paid", "2023-09-01") == pytest.approx(0.4)
    assert credit(rows, "position_based", "Email", "2023-09-01") == pytest.approx(0.1 + 0.4)
    assert credit(rows, "position_based", "Organic", "2023-09-01") == pytest.approx(0.2)
    assert credit(rows, "position_based", "Organic", "2023-09-02") == pytest.approx(0.1 + 0.5)
    assert credit(rows, "position_based", "Email", "2023-09-03") == pytest.approx(1.0)
    # ihc: the API's shares
    assert credit(rows, "ihc", "Organic", "2023-09-02") == pytest.approx(0.3 + 0.6)
    assert rows["linear", "Email", "2023-09-03"] == pytest.approx((1.0, 10.0)), "revenue = credit x revenue"


def test_every_model_gives_each_conversion_one_credit(db):
    rows = table(filled(db, "2023-08-01", "2023-09-30"))
    for model in MODELS:
        total = sum(c for (m, _, _), (c, _) in rows.items() if m == model)
        revenue = sum(r for (m, _, _), (_, r) in rows.items() if m == model)
        assert total == pytest.approx(len(CONVERSIONS)), model
        assert revenue == pytest.approx(sum(r for *_, r in CONVERSIONS)), model


def test_a_rebuild_replaces_only_its_window(comparison_db):
    before = table(comparison_db)
    comparison_db.execute("DELETE FROM attribution_customer_journey WHERE conv_id = 'c3'")
    model_comparison.rebuild_model_comparison(comparison_db, "2023-09-03", "2023-09-03")
    after = table(comparison_db)
    assert {k: v for k, v in after.items() if k[2] != "2023-09-03"} == {
        k: v for k, v in before.items() if k[2] != "2023-09-03"
    }
    assert [k for k in after if k[2] == "2023-09-03"] == []


def test_credits_by_channel_cover_a_range_of_conversions_whole(comparison_db):
    credits = model_comparison.credits_by_channel(comparison_db, DateRange("2023-09-02", "2023-09-03"))
    by_key = {(c.model, c.channel_name): c for c in credits}
    assert by_key["last_touch", "Email"].credit == pytest.approx(2.0), "c2 and c3"
    assert by_key["first_touch", "Paid"].credit == pytest.approx(1.0), "c1, its first session on 09-01"
    assert by_key["position_based", "Paid"].revenue == pytest.approx(0.8 * 100.0)
    for model in MODELS:
        assert sum(c.credit for c in credits if c.model == model) == pytest.approx(3.0), model
