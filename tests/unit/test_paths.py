"""Paths to conversion: collapsed repeats, ranking, the bound, and the query on both dialects."""

from __future__ import annotations

from include import attributions, paths, schema
from include.paths import ChannelPath, collapse, summarise
from include.settings import DateRange
from tests.warehouse_rows import add_conversions, add_sessions


def test_consecutive_repeats_collapse_with_their_count():
    assert collapse(["Direct", "Direct", "Email", "Direct"]) == ("Direct ×2", "Email", "Direct")
    assert collapse(["Paid"]) == ("Paid",)


def test_most_frequent_first_then_revenue_and_the_rest_summed():
    journeys = [(("A",), 10.0)] * 3 + [(("B", "A"), 50.0)] * 2 + [(("C",), 100.0)] * 2 + [(("D",), 1.0)]
    result = summarise(journeys, limit=2)
    assert result.top == [ChannelPath(("A",), 3, 30.0), ChannelPath(("C",), 2, 200.0)]
    assert (result.other_paths, result.other_conversions, result.other_revenue) == (2, 3, 101.0)
    assert result.top[0].label == "A" and ChannelPath(("B", "A"), 1, 0).label == "B → A"


def test_top_paths_of_a_range_from_the_tables(db):
    schema.init_schema(db)
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-09-01 09:00:00", "Paid"),
            ("s2", "u1", "2023-09-01 10:00:00", "Email"),
            ("s3", "u1", "2023-09-01 11:00:00", "Email"),
            ("s4", "u2", "2023-09-01 09:00:00", "Paid"),
            ("s5", "u2", "2023-09-01 09:30:00", "Email"),
            ("s6", "u3", "2023-09-05 09:00:00", "Organic"),
        ],
    )
    add_conversions(
        db,
        [
            ("c1", "u1", "2023-09-01 12:00:00", 30.0),
            ("c2", "u2", "2023-09-01 12:00:00", 20.0),
            ("c3", "u3", "2023-09-05 12:00:00", 99.0),
        ],
    )
    db.insert_many(
        "attribution_customer_journey",
        attributions.ATTRIBUTION_COLUMNS,
        [
            ("c1", "s1", 0.2),
            ("c1", "s2", 0.3),
            ("c1", "s3", 0.5),
            ("c2", "s4", 0.5),
            ("c2", "s5", 0.5),
            ("c3", "s6", 1),
        ],
    )
    result = paths.top_paths(db, DateRange("2023-09-01", "2023-09-02"))
    # equal counts: more revenue first; c3 is dated outside the range
    assert result.top == [ChannelPath(("Paid", "Email ×2"), 1, 30.0), ChannelPath(("Paid", "Email"), 1, 20.0)]
    assert result.other_paths == 0
