"""The extract on small hand-built databases, SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from include import attributions, extract, report, schema, warehouse
from include.extract import (
    CONVERSIONS_FILE,
    SESSIONS_FILE,
    STORED_FILE,
    Reach,
    read_conversions,
    read_sessions,
    read_stored_journeys,
)
from include.journeys import JourneyStats, build_journeys
from include.ledger import LEDGER_COLUMNS
from include.records import Conversion, StoredJourney
from include.settings import DateRange
from tests.unit.test_attributions import ledger_of
from tests.warehouse_rows import (
    add_conversions,
    add_costs,
    add_sessions,
    phased,
)


@pytest.fixture
def extract_db(db):
    schema.init_schema(db)  # the extract reads conversion_journeys
    add_conversions(
        db,
        [
            ("c1", "u1", "2023-09-02 12:00:00", 100.0),
            ("c2", "u2", "2023-09-05 08:00:00", 40.0),
            ("c2b", "u2", "2023-09-07 23:59:59", 10.0),
            ("c_before", "u4", "2023-08-25 12:00:00", 999.0),  # before the range
            ("c_after", "u5", "2023-09-08 00:00:00", 999.0),  # after the range
        ],
    )
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-09-01 10:00:00", "FB & IG Ads"),
            ("s2", "u1", "2023-09-02 11:00:00", "Organic Traffic"),
            ("s3", "u2", "2023-08-20 09:00:00", "Referral"),
            ("s4", "u2", "2023-09-06 09:00:00", "Direct Traffic"),
            ("s_old", "u2", "2023-07-01 09:00:00", "Referral"),  # far outside the look-back
            ("s_never", "u3", "2023-09-02 11:00:00", "Referral"),  # user never converts
            ("s_before", "u4", "2023-08-25 11:00:00", "Referral"),  # converts outside the range
            ("s_after", "u5", "2023-09-07 11:00:00", "Referral"),
        ],
    )
    return db


def test_extract_returns_the_range_conversions_and_converting_users_sessions(extract_db, tmp_path):
    result = extract.extract(extract_db, DateRange("2023-09-01", "2023-09-07"), lookback_days=30, run_dir=tmp_path)

    assert (result.conversions, result.stored_nearby) == (3, 0)
    assert result.revenue == pytest.approx(150.0)
    assert read_stored_journeys(tmp_path / STORED_FILE) == {}, "nothing stored yet"
    conversions = list(read_conversions(tmp_path / CONVERSIONS_FILE))
    assert conversions == [
        Conversion("c1", "u1", "2023-09-02 12:00:00", 100.0),
        Conversion("c2", "u2", "2023-09-05 08:00:00", 40.0),
        Conversion("c2b", "u2", "2023-09-07 23:59:59", 10.0),
    ]

    sessions = list(read_sessions(tmp_path / SESSIONS_FILE))
    assert result.sessions == len(sessions)
    assert {s.user_id for s in sessions} == {"u1", "u2"}
    session_ids = [s.session_id for s in sessions]
    assert {"s1", "s2", "s3", "s4"} <= set(session_ids)
    assert not {"s_old", "s_never", "s_before", "s_after"} & set(session_ids)
    assert [(s.user_id, s.timestamp) for s in sessions] == sorted((s.user_id, s.timestamp) for s in sessions)
    s1 = sessions[session_ids.index("s1")]
    assert (s1.timestamp, s1.channel_name, s1.holder_engagement) == ("2023-09-01 10:00:00", "FB & IG Ads", 1)

    stats = JourneyStats()
    journeys = list(build_journeys(iter(conversions), iter(sessions), 30, 3000, stats))
    assert {j.conversion_id: [s.session_id for s in j.sessions] for j in journeys} == {
        "c1": ["s1", "s2"],
        "c2": ["s3"],
        "c2b": ["s3", "s4"],
    }


def test_extract_single_day_range(extract_db, tmp_path):
    extract.extract(extract_db, DateRange("2023-09-05", "2023-09-05"), lookback_days=30, run_dir=tmp_path)
    assert [c.conv_id for c in read_conversions(tmp_path / CONVERSIONS_FILE)] == ["c2"]
    assert {s.user_id for s in read_sessions(tmp_path / SESSIONS_FILE)} == {"u2"}


def test_extract_shorter_lookback_drops_older_sessions(extract_db, tmp_path):
    extract.extract(extract_db, DateRange("2023-09-01", "2023-09-07"), lookback_days=3, run_dir=tmp_path)
    session_ids = {s.session_id for s in read_sessions(tmp_path / SESSIONS_FILE)}
    assert "s3" not in session_ids  # 2023-08-20 is more than 3 days before u2's first conversion
    assert {"s1", "s2", "s4"} <= session_ids


def test_count_conversions(extract_db):
    assert extract.count_conversions(extract_db, "2023-09-01", "2023-09-07") == (3, pytest.approx(150.0))
    assert extract.count_conversions(extract_db, "2024-01-01", "2024-01-31") == (0, 0)


def test_postgres_numeric_money_columns_come_back_as_floats(postgres_url, tmp_path):
    """A PostgreSQL warehouse may keep revenue and cost as NUMERIC; XCom and files need floats."""
    with warehouse.postgres_target(postgres_url, "numeric").open() as db:
        db.execute(
            "CREATE TABLE conversions (conv_id TEXT PRIMARY KEY, user_id TEXT, conv_date TEXT, conv_time TEXT, "
            "revenue NUMERIC(12, 2))"
        )
        db.execute("CREATE TABLE session_costs (session_id TEXT PRIMARY KEY, cost NUMERIC(12, 4))")
        schema.create_input_tables(db)
        schema.init_schema(db)
        add_conversions(db, [("c1", "u1", "2023-09-02 12:00:00", 100.25)])
        add_sessions(db, [("s1", "u1", "2023-09-01 10:00:00", "Paid")])
        add_costs(db, [("s1", 1.5)])

        result = extract.extract(db, DateRange("2023-09-01", "2023-09-07"), lookback_days=30, run_dir=tmp_path)
        assert (result.conversions, result.revenue) == (1, 100.25) and type(result.revenue) is float
        assert list(read_conversions(tmp_path / CONVERSIONS_FILE)) == [
            Conversion("c1", "u1", "2023-09-02 12:00:00", 100.25)
        ]
        rows = phased([("c1", "s1", 1.0)])
        ledger = ledger_of(rows, [("c1", "u1", "2023-09-02 12:00:00", 100.25)])
        attributions.replace_attributions(db, "2023-09-01", "2023-09-07", rows, ledger, 1e-3, 1)
        totals = report.rebuild_report(db, "2023-09-01", "2023-09-07")
        assert totals == report.ReportTotals(1, 1.5, 1.0, 100.25)
        assert all(type(value) is float for value in (totals.cost, totals.ihc, totals.ihc_revenue))


def test_postgres_sorts_ids_as_python_does_whatever_the_column_collation(postgres_url, tmp_path):
    """The journey step merges two streams sorted by user id; a locale collation (ICU en-US here,
    which puts 'a1' before 'B3') must not reorder them, or users would silently lose journeys."""
    users = ["a1", "a-2", "B3", "b1", "_z"]
    with warehouse.postgres_target(postgres_url, "icu").open() as db:
        schema.create_input_tables(db)
        for table in ("session_sources", "conversions"):
            db.execute(f'ALTER TABLE {table} ALTER COLUMN user_id TYPE TEXT COLLATE "en-US-x-icu"')
        schema.init_schema(db)
        add_conversions(db, [(f"c-{u}", u, "2023-09-02 12:00:00", 10.0) for u in users])
        add_sessions(db, [(f"s-{u}", u, "2023-09-01 10:00:00", "Paid") for u in users])
        assert [r[0] for r in db.execute("SELECT user_id FROM conversions ORDER BY user_id")] != sorted(users)

        extract.extract(db, DateRange("2023-09-01", "2023-09-07"), lookback_days=30, run_dir=tmp_path)
    journeys = build_journeys(
        read_conversions(tmp_path / CONVERSIONS_FILE), read_sessions(tmp_path / SESSIONS_FILE), 30, 3000, JourneyStats()
    )
    assert {j.conversion_id: [s.session_id for s in j.sessions] for j in journeys} == {
        f"c-{u}": [f"s-{u}"] for u in users
    }


def test_an_impossible_conversion_date_is_a_bad_row_not_a_failed_extract(db, tmp_path):
    schema.init_schema(db)
    add_conversions(db, [("c1", "u1", "2023-09-02 12:00:00", 10.0), ("c_bad", "u2", "2023-09-31 12:00:00", 5.0)])
    add_sessions(db, [("s1", "u1", "2023-09-01 10:00:00", "Paid"), ("s2", "u2", "2023-09-01 10:00:00", "Paid")])

    result = extract.extract(db, DateRange("2023-09-01", "2023-10-05"), lookback_days=30, run_dir=tmp_path)

    assert result.conversions == 2
    stats = JourneyStats()
    journeys = list(
        build_journeys(
            read_conversions(tmp_path / CONVERSIONS_FILE), read_sessions(tmp_path / SESSIONS_FILE), 30, 3000, stats
        )
    )
    assert [j.conversion_id for j in journeys] == ["c1"]
    assert [issue["ids"] for issue in stats.row_issues.values()] == [["c_bad"]]


def store_journeys(db, rows):
    """conversion_journeys rows: (conv_id, stored timestamp, sessions, fingerprint)."""
    db.insert_many("conversion_journeys", LEDGER_COLUMNS, [(c, ts, ts[:10], n, fp) for c, ts, n, fp in rows])


def test_stored_conversions_near_the_range_come_back_with_their_fingerprints(extract_db, tmp_path):
    """With a look-back of 30 days the run over 09-01..09-07 reaches the conversion dates
    08-02..10-07: the stored conversions dated there, by their stored date and their date now,
    come back beside the range's, with the journey they were stored with."""
    db = extract_db
    add_conversions(
        db,
        [
            ("c_far", "u6", "2023-06-01 12:00:00", 7.0),  # stored, far before the range
            ("c_moved_near", "u7", "2023-09-20 12:00:00", 8.0),  # stored on 09-03, moved near
            ("c_moved_far", "u8", "2023-12-01 12:00:00", 9.0),  # stored on 09-04, moved far
        ],
    )
    add_sessions(
        db,
        [
            ("s_far", "u6", "2023-05-30 10:00:00", "Paid"),
            ("s_moved_near", "u7", "2023-09-19 10:00:00", "Paid"),
            ("s_moved_far", "u8", "2023-11-30 10:00:00", "Paid"),
        ],
    )
    store_journeys(
        db,
        [
            ("c1", "2023-09-02 12:00:00", 2, "fp-c1"),  # in the range: a conversion of the range anyway
            ("c_before", "2023-08-25 12:00:00", 1, "fp-before"),
            ("c_far", "2023-06-01 12:00:00", 1, "fp-far"),
            ("c_moved_near", "2023-09-03 12:00:00", 1, "fp-moved-near"),
            ("c_moved_far", "2023-09-04 12:00:00", 1, "fp-moved-far"),
        ],
    )
    window = DateRange("2023-09-01", "2023-09-07")
    reach = Reach.of(window, 30)
    assert reach == Reach("2023-08-02", "2023-10-07")

    near = {
        "c_before": StoredJourney("c_before", "2023-08-25 12:00:00", "fp-before"),
        "c_moved_near": StoredJourney("c_moved_near", "2023-09-03 12:00:00", "fp-moved-near"),
    }
    assert {j.conv_id: j for j in extract.iter_stored_journeys(db, window.start, window.end, reach)} == near
    in_range = ["c1", "c2", "c2b"]
    assert sorted(c.conv_id for c in extract.iter_conversions(db, window.start, window.end)) == in_range
    conversions = list(extract.iter_conversions(db, window.start, window.end, reach))
    assert sorted(c.conv_id for c in conversions) == sorted([*in_range, *near]), "each once, the far ones not"
    assert conversions[[c.conv_id for c in conversions].index("c_moved_near")] == Conversion(
        "c_moved_near", "u7", "2023-09-20 12:00:00", 8.0
    ), "as it is now"
    with_reach = extract.iter_sessions_of_converting_users(db, window.start, window.end, 30, reach)
    sessions = {s.session_id for s in with_reach}
    assert {"s_before", "s_moved_near"} <= sessions
    assert not {"s_far", "s_moved_far", "s_after", "s_never"} & sessions
    without_reach = {s.session_id for s in extract.iter_sessions_of_converting_users(db, window.start, window.end, 30)}
    assert not {"s_before", "s_moved_near"} & without_reach

    result = extract.extract(db, window, lookback_days=30, run_dir=tmp_path)
    assert (result.conversions, result.stored_nearby) == (5, 2)
    assert result.revenue == pytest.approx(150.0), "the range's conversions' revenue"
    assert read_stored_journeys(tmp_path / STORED_FILE) == near
    assert sorted(c.conv_id for c in read_conversions(tmp_path / CONVERSIONS_FILE)) == sorted([*in_range, *near])
