"""build_journeys: the journey rules of DESIGN.md on hand-made records."""

from __future__ import annotations

import logging

import pytest

from include.journeys import BadRowError, Journey, JourneyStats, build_journeys
from include.records import Conversion, Session


def sess(
    session_id: str,
    user_id: str,
    timestamp: str,
    channel: str = "Direct Traffic",
    holder: int = 0,
    closer: int = 0,
    impression: int = 0,
) -> Session:
    return Session(session_id, user_id, timestamp, channel, holder, closer, impression)


def conv(conv_id: str, user_id: str, timestamp: str, revenue: float = 10.0) -> Conversion:
    return Conversion(conv_id, user_id, timestamp, revenue)


def build(
    conversions: list[Conversion],
    sessions: list[Session],
    lookback_days: int = 30,
    max_sessions: int = 3000,
) -> tuple[list[Journey], JourneyStats]:
    stats = JourneyStats()
    journeys = list(build_journeys(iter(conversions), iter(sessions), lookback_days, max_sessions, stats))
    return journeys, stats


def ids(journey: Journey) -> list[str]:
    return [s.session_id for s in journey.sessions]


def test_only_sessions_strictly_before_the_conversion():
    sessions = [
        sess("s1", "u1", "2023-09-01 10:00:00"),
        sess("s2", "u1", "2023-09-01 11:59:59"),
        sess("s3", "u1", "2023-09-01 12:00:00"),
        sess("s4", "u1", "2023-09-01 12:00:01"),
        sess("s5", "u1", "2023-09-02 08:00:00"),
    ]
    journeys, stats = build([conv("c1", "u1", "2023-09-01 12:00:00")], sessions)
    assert len(journeys) == 1
    assert journeys[0].conversion_id == "c1"
    assert ids(journeys[0]) == ["s1", "s2"]
    assert (stats.conversions, stats.journeys, stats.sessions) == (1, 1, 2)


def test_session_exactly_at_the_conversion_timestamp_is_excluded():
    journeys, stats = build(
        [conv("c1", "u1", "2023-09-03 09:30:00")],
        [sess("s1", "u1", "2023-09-03 09:30:00")],
    )
    assert journeys == []
    assert stats.without_sessions == 1
    assert stats.without_sessions_ids == ["c1"]


@pytest.mark.parametrize(
    ("lookback_days", "session_time", "included"),
    [
        (30, "2023-08-11 11:59:59", False),  # 30 days + 1 s before: older than the window
        (30, "2023-08-11 12:00:00", True),  # exactly 30 days before: not older, kept
        (30, "2023-08-11 12:00:01", True),  # just inside
        (7, "2023-09-03 11:59:59", False),
        (7, "2023-09-03 12:00:01", True),
        (1, "2023-09-09 11:00:00", False),
        (1, "2023-09-09 13:00:00", True),
    ],
)
def test_lookback_window(lookback_days, session_time, included):
    sessions = [sess("old", "u1", session_time), sess("recent", "u1", "2023-09-10 11:00:00")]
    journeys, stats = build([conv("c1", "u1", "2023-09-10 12:00:00")], sessions, lookback_days=lookback_days)
    assert ids(journeys[0]) == (["old", "recent"] if included else ["recent"])
    assert stats.sessions == (2 if included else 1)


def test_lookback_window_can_leave_a_conversion_without_sessions():
    journeys, stats = build(
        [conv("c1", "u1", "2023-09-10 12:00:00")],
        [sess("s1", "u1", "2023-08-01 12:00:00")],
        lookback_days=30,
    )
    assert journeys == []
    assert stats.without_sessions_ids == ["c1"]


def test_user_with_two_conversions_gets_two_journeys_sharing_sessions():
    sessions = [
        sess("s1", "u1", "2023-09-01 10:00:00"),
        sess("s2", "u1", "2023-09-02 10:00:00"),
        sess("s3", "u1", "2023-09-03 10:00:00"),
        sess("s4", "u1", "2023-09-05 10:00:00"),
    ]
    conversions = [conv("c1", "u1", "2023-09-02 12:00:00"), conv("c2", "u1", "2023-09-04 12:00:00")]
    journeys, stats = build(conversions, sessions)
    assert [j.conversion_id for j in journeys] == ["c1", "c2"]
    assert ids(journeys[0]) == ["s1", "s2"]
    assert ids(journeys[1]) == ["s1", "s2", "s3"]
    assert journeys[0].sessions[0] is journeys[1].sessions[0]
    assert (stats.conversions, stats.journeys, stats.sessions, stats.without_sessions) == (2, 2, 5, 0)


def test_conversions_without_sessions_are_counted_with_their_ids(caplog):
    conversions = [
        conv("c1", "u1", "2023-09-02 12:00:00"),  # no session at all
        conv("c2", "u2", "2023-09-02 12:00:00"),  # only a session after it
        conv("c3", "u3", "2023-09-02 12:00:00"),  # attributable
    ]
    sessions = [sess("s2", "u2", "2023-09-02 13:00:00"), sess("s3", "u3", "2023-09-02 11:00:00")]
    with caplog.at_level(logging.INFO, logger="include.journeys"):
        journeys, stats = build(conversions, sessions)
    assert [j.conversion_id for j in journeys] == ["c3"]
    assert stats.conversions == 3
    assert stats.journeys == 1
    assert stats.without_sessions == 2
    assert stats.without_sessions_ids == ["c1", "c2"]
    assert any("2 conversions have no session" in r.getMessage() and "c1, c2" in r.getMessage() for r in caplog.records)


def test_without_sessions_ids_are_a_sample_but_the_count_is_complete():
    conversions = [conv(f"c{i:02d}", f"u{i:02d}", "2023-09-02 12:00:00") for i in range(15)]
    journeys, stats = build(conversions, [])
    assert journeys == []
    assert stats.without_sessions == 15
    assert stats.without_sessions_ids == [f"c{i:02d}" for i in range(10)]


def test_long_journey_keeps_its_most_recent_sessions_and_warns(caplog):
    sessions = [sess(f"a{i}", "u1", f"2023-09-01 1{i}:00:00") for i in range(5)]
    sessions += [sess(f"b{i}", "u2", f"2023-09-01 1{i}:00:00") for i in range(4)]
    sessions += [sess(f"c{i}", "u3", f"2023-09-01 1{i}:00:00") for i in range(3)]
    conversions = [
        conv("ca", "u1", "2023-09-02 00:00:00"),
        conv("cb", "u2", "2023-09-02 00:00:00"),
        conv("cc", "u3", "2023-09-02 00:00:00"),
    ]
    with caplog.at_level(logging.WARNING, logger="include.journeys"):
        journeys, stats = build(conversions, sessions, max_sessions=3)
    assert ids(journeys[0]) == ["a2", "a3", "a4"]
    assert ids(journeys[1]) == ["b1", "b2", "b3"]
    assert ids(journeys[2]) == ["c0", "c1", "c2"]  # exactly at the limit: untouched
    assert stats.trimmed_journeys == 2
    assert stats.trimmed_sessions == 3
    assert stats.sessions == 9
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "2 journeys" in message
    assert "3-session" in message
    assert "dropped 3" in message


def test_no_trim_warning_when_nothing_is_trimmed(caplog):
    with caplog.at_level(logging.WARNING, logger="include.journeys"):
        journeys, stats = build(
            [conv("c1", "u1", "2023-09-02 00:00:00")],
            [sess("s1", "u1", "2023-09-01 00:00:00")],
            max_sessions=1,
        )
    assert ids(journeys[0]) == ["s1"]
    assert stats.trimmed_journeys == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_interleaved_users_in_sorted_streams_merge_correctly():
    # Sorted by (user_id, timestamp). Users with sessions only (a, d, f), a user with a
    # conversion and no session (c), a conversion user before every session user (_first) and
    # one after every session user (z).
    sessions = [
        sess("a1", "a", "2023-09-01 08:00:00"),
        sess("a2", "a", "2023-09-02 08:00:00"),
        sess("b1", "b", "2023-09-01 09:00:00"),
        sess("b2", "b", "2023-09-03 09:00:00"),
        sess("d1", "d", "2023-09-01 10:00:00"),
        sess("e1", "e", "2023-09-02 10:00:00"),
        sess("e2", "e", "2023-09-02 11:00:00"),
        sess("f1", "f", "2023-09-01 10:00:00"),
    ]
    conversions = [
        conv("c_first", "_first", "2023-09-02 12:00:00"),
        conv("cb", "b", "2023-09-02 12:00:00"),
        conv("cc", "c", "2023-09-02 12:00:00"),
        conv("ce", "e", "2023-09-02 12:00:00"),
        conv("cz", "z", "2023-09-02 12:00:00"),
    ]
    journeys, stats = build(conversions, sessions)
    assert {j.conversion_id: ids(j) for j in journeys} == {"cb": ["b1"], "ce": ["e1", "e2"]}
    assert [j.conversion_id for j in journeys] == ["cb", "ce"]
    assert stats.conversions == 5
    assert stats.without_sessions_ids == ["c_first", "cc", "cz"]
    for journey in journeys:
        users = {s.user_id for s in journey.sessions}
        assert users == {journey.conversion_id[1:]}


@pytest.mark.parametrize("bad", ["2023-09-01T10:00:00", "01.09.2023 10:00", "2023-9-1 10:00:00", "", None])
def test_session_with_malformed_timestamp_is_skipped_and_named(bad):
    stats = JourneyStats()
    journeys = list(
        build_journeys(
            [conv("c1", "u1", "2023-09-02 12:00:00")],
            [sess("s-bad", "u1", bad), sess("s-ok", "u1", "2023-09-02 10:00:00")],
            30,
            3000,
            stats,
        )
    )
    assert [[s.session_id for s in j.sessions] for j in journeys] == [["s-ok"]]
    issue = stats.row_issues["session_sources: NULL or malformed event_date/event_time"]
    assert issue == {"count": 1, "ids": ["s-bad"]}


@pytest.mark.parametrize("bad", ["2023-09-02", "2023-09-02 25:00:00", None])
def test_conversion_with_malformed_timestamp_is_skipped_and_named(bad):
    stats = JourneyStats()
    journeys = list(
        build_journeys(
            [conv("c-bad", "u1", bad), conv("c-ok", "u1", "2023-09-02 12:00:00")],
            [sess("s1", "u1", "2023-09-01 10:00:00")],
            30,
            3000,
            stats,
        )
    )
    assert [j.conversion_id for j in journeys] == ["c-ok"]
    assert stats.row_issues["conversions: NULL or malformed conv_date/conv_time"]["ids"] == ["c-bad"]
    assert stats.conversions == 1 and stats.conversions_read == 2


def test_bad_row_error_is_a_value_error():
    assert issubclass(BadRowError, ValueError)
