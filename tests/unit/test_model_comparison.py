"""The models on hand-computed journeys, SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from include import attributions, model_comparison, schema
from include.model_comparison import MODELS
from include.settings import DateRange, RunWindow
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
# The Markov credits as the report step stores them, a hand-chosen split: c1's s3 has none (0).
MARKOV = [
    ("c1", "s1", 0.5), ("c1", "s2", 0.2), ("c1", "s4", 0.3),
    ("c2", "s5", 0.3), ("c2", "s6", 0.7),
    ("c3", "s7", 1.0),
    ("c4", "s8", 0.4), ("c4", "s9", 0.4), ("c4", "s10", 0.2),
]  # fmt: skip
MARKOV_COLUMNS = ("conv_id", "session_id", "credit")


HALF_LIFE_DAYS = 7.0


def every_credit(db, window: RunWindow, half_life_days: float) -> list[model_comparison.ModelCredit]:
    """Every model's credits for the range, the Markov ones as stored."""
    return model_comparison.credits_by_channel(db, window, half_life_days)


def filled(db, first: str, last: str):
    """The journeys above in the tables, and the comparison rebuilt for [first, last]."""
    schema.init_schema(db)
    add_sessions(db, SESSIONS)
    add_conversions(db, CONVERSIONS)
    db.insert_many("attribution_customer_journey", attributions.ATTRIBUTION_COLUMNS, IHC)
    db.insert_many("attribution_markov", MARKOV_COLUMNS, MARKOV)
    assert model_comparison.rebuild_model_comparison(db, first, last, HALF_LIFE_DAYS) is None
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
    # markov: the stored credits, joined like ihc; c1's s3 has none and counts 0
    assert credit(rows, "markov", "Paid", "2023-09-01") == pytest.approx(0.5)
    assert credit(rows, "markov", "Organic", "2023-09-02") == pytest.approx(0.3)
    assert credit(rows, "markov", "Paid", "2023-09-02") == pytest.approx(0.3)
    assert credit(rows, "markov", "Email", "2023-09-02") == pytest.approx(0.7)
    assert credit(rows, "markov", "Email", "2023-09-03") == pytest.approx(1.0)
    assert credit(rows, "markov", "Organic", "2023-09-01") == pytest.approx(0.4), "c4's s9"
    assert rows["markov", "Email", "2023-09-01"] == pytest.approx((0.2 + 0.2, 0.2 * 100.0 + 0.2 * 40.0)), "c1, c4"
    assert ("markov", "Paid", "2023-08-20") not in rows, "c4's s8 is before the window"
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
    model_comparison.rebuild_model_comparison(comparison_db, "2023-09-03", "2023-09-03", HALF_LIFE_DAYS)
    after = table(comparison_db)
    assert {k: v for k, v in after.items() if k[2] != "2023-09-03"} == {
        k: v for k, v in before.items() if k[2] != "2023-09-03"
    }
    assert [k for k in after if k[2] == "2023-09-03"] == []


def test_credits_by_channel_cover_a_range_of_conversions_whole(comparison_db):
    window = RunWindow(DateRange("2023-09-02", "2023-09-03"), 30)
    credits = every_credit(comparison_db, window, HALF_LIFE_DAYS)
    by_key = {(c.model, c.channel_name): c for c in credits}
    assert by_key["last_touch", "Email"].credit == pytest.approx(2.0), "c2 and c3"
    assert by_key["first_touch", "Paid"].credit == pytest.approx(1.0), "c1, its first session on 09-01"
    assert by_key["position_based", "Paid"].revenue == pytest.approx(0.8 * 100.0)
    assert by_key["markov", "Paid"].credit == pytest.approx(0.5 + 0.3), "c1's s1 and s4"
    assert by_key["markov", "Organic"].credit == pytest.approx(0.3), "c2's s5; c1's s3 has no Markov credit"
    assert by_key["markov", "Email"].revenue == pytest.approx(0.2 * 100.0 + 0.7 * 50.0 + 1.0 * 10.0)
    for model in MODELS:
        assert sum(c.credit for c in credits if c.model == model) == pytest.approx(3.0), model


def one_conversion(db, sessions, half_life_days: float) -> dict[str, tuple[float, float]]:
    """The time_decay credit and revenue per channel of one conversion (2023-09-02 12:00, 90 EUR)
    whose journey is ``sessions``."""
    schema.init_schema(db)
    add_sessions(db, sessions)
    add_conversions(db, [("c1", "u1", "2023-09-02 12:00:00", 90.0)])
    journey = [("c1", session_id, 1 / len(sessions)) for session_id, *_ in sessions]
    db.insert_many("attribution_customer_journey", attributions.ATTRIBUTION_COLUMNS, journey)
    db.insert_many("attribution_markov", MARKOV_COLUMNS, journey)
    window = RunWindow(DateRange("2023-09-02", "2023-09-02"), 30)
    credits = every_credit(db, window, half_life_days)
    return {c.channel_name: (c.credit, c.revenue) for c in credits if c.model == "time_decay"}


def test_time_decay_halves_a_sessions_weight_each_half_life_before_the_conversion(db):
    """Sessions 7 days and 0 days before the conversion, half-life 7 days: weights 0.5 and 1, so
    credits 1/3 and 2/3 of the conversion and of its 90 EUR."""
    sessions = [("s1", "u1", "2023-08-26 12:00:00", "Paid"), ("s2", "u1", "2023-09-02 12:00:00", "Email")]
    credits = one_conversion(db, sessions, 7.0)
    assert credits["Paid"] == pytest.approx((1 / 3, 30.0), abs=1e-9)
    assert credits["Email"] == pytest.approx((2 / 3, 60.0), abs=1e-9)
    model_comparison.rebuild_model_comparison(db, "2023-08-02", "2023-09-02", 7.0)
    rows = table(db)
    assert rows["time_decay", "Paid", "2023-08-26"] == pytest.approx((1 / 3, 30.0), abs=1e-9)
    assert rows["time_decay", "Email", "2023-09-02"] == pytest.approx((2 / 3, 60.0), abs=1e-9)


def test_time_decay_counts_the_hours_across_midnight(db):
    """36 h and 12 h before the conversion with a half-life of 1 day: weights 2^-1.5 and 2^-0.5."""
    sessions = [("s1", "u1", "2023-09-01 00:00:00", "Paid"), ("s2", "u1", "2023-09-02 00:00:00", "Email")]
    credits = one_conversion(db, sessions, 1.0)
    assert credits["Paid"][0] == pytest.approx(1 / 3, abs=1e-9)
    assert credits["Email"][0] == pytest.approx(2 / 3, abs=1e-9)


def test_time_decay_gives_a_weight_too_small_for_a_float_nothing(db):
    """A session 30 days back at a half-life of 0.01 days weighs 2^-3000: 0, and no error."""
    sessions = [("s1", "u1", "2023-08-03 12:00:00", "Paid"), ("s2", "u1", "2023-09-02 11:00:00", "Email")]
    credits = one_conversion(db, sessions, 0.01)
    assert credits["Paid"] == (0.0, 0.0)
    assert credits["Email"] == pytest.approx((1.0, 90.0))


@pytest.mark.parametrize(("day", "conversions"), [("2023-09-01", 1), ("2023-09-02", 2), ("2023-09-03", 1)])
def test_time_decay_gives_each_conversion_one_credit(comparison_db, day, conversions):
    window = RunWindow(DateRange(day, day), 30)
    credits = every_credit(comparison_db, window, HALF_LIFE_DAYS)
    assert sum(c.credit for c in credits if c.model == "time_decay") == pytest.approx(conversions, abs=1e-12)
