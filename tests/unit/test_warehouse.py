"""The warehouse on small hand-built databases, SQLite and PostgreSQL alike: schema, extract, writes, report math."""

from __future__ import annotations

import pytest

from include import attributions, extract, report, schema, warehouse
from include.extract import CONVERSIONS_FILE, SESSIONS_FILE, read_conversions, read_sessions
from include.journeys import JourneyStats, build_journeys
from include.records import Conversion
from include.schema import INPUT_COLUMNS
from include.settings import DateRange
from include.warehouse import WarehouseError

OUTPUT_TABLES = {"attribution_customer_journey", "channel_reporting"}
INDEXES = {
    "idx_session_sources_user_time",
    "idx_session_sources_date",
    "idx_conversions_date",
    "idx_attribution_session",
}


def add_sessions(db, rows):
    """rows: (session_id, user_id, 'YYYY-MM-DD HH:MM:SS', channel[, holder, closer, impression])."""
    full = []
    for row in rows:
        session_id, user_id, ts, channel, *flags = row
        day, time = ts.split(" ")
        full.append((session_id, user_id, day, time, channel, *(flags or (1, 0, 0))))
    db.insert_many("session_sources", INPUT_COLUMNS["session_sources"], full)


def add_conversions(db, rows):
    """rows: (conv_id, user_id, 'YYYY-MM-DD HH:MM:SS', revenue)."""
    full = [(c, u, *ts.split(" "), revenue) for c, u, ts, revenue in rows]
    db.insert_many("conversions", INPUT_COLUMNS["conversions"], full)


def add_costs(db, rows):
    db.insert_many("session_costs", INPUT_COLUMNS["session_costs"], rows)


CATALOG = {
    ("sqlite", "table"): "SELECT name FROM sqlite_master WHERE type = 'table'",
    ("sqlite", "index"): "SELECT name FROM sqlite_master WHERE type = 'index'",
    ("postgresql", "table"): "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    ("postgresql", "index"): "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
    ("sqlite", "pk"): "SELECT name FROM pragma_table_info(:table) WHERE pk > 0 ORDER BY pk",
    ("postgresql", "pk"): """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary
        ORDER BY array_position(i.indkey, a.attnum)""",
}


def table_names(db, kind):
    return {r[0] for r in db.execute(CATALOG[db.dialect.name, kind])}


def primary_key(db, table):
    return [r[0] for r in db.execute(CATALOG[db.dialect.name, "pk"], {"table": table})]


def in_transaction(db) -> bool:
    conn = db.conn
    if db.dialect is warehouse.SQLITE:
        return conn.in_transaction
    status = conn.info.transaction_status if hasattr(conn, "info") else conn.get_transaction_status()
    return status != 0  # IDLE


def stored_attributions(db):
    return sorted(db.execute("SELECT conv_id, session_id, ihc FROM attribution_customer_journey").fetchall())


def stored_report(db):
    return db.execute(
        "SELECT channel_name, date, cost, ihc, ihc_revenue FROM channel_reporting ORDER BY 1, 2"
    ).fetchall()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """An empty warehouse with the input tables, on each dialect."""
    if request.param == "sqlite":
        database = warehouse.connect_sqlite(tmp_path / "w.db", create=True)
    else:
        database = warehouse.postgres_target(request.getfixturevalue("postgres_url"), "test").open()
    schema.create_input_tables(database)
    yield database
    database.close()


# --- connect / schema ---------------------------------------------------------------------------


def test_connect_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "challenge.db"
    with pytest.raises(WarehouseError) as info:
        warehouse.connect_sqlite(path)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_connect_create_makes_the_file(tmp_path):
    path = tmp_path / "new.db"
    database = warehouse.connect_sqlite(path, create=True)
    try:
        assert path.is_file()
        assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        database.close()


def test_init_schema_creates_output_tables_and_indexes(db):
    assert not OUTPUT_TABLES & table_names(db, "table")
    schema.init_schema(db)
    assert table_names(db, "table") >= OUTPUT_TABLES
    assert table_names(db, "index") >= INDEXES
    assert primary_key(db, "attribution_customer_journey") == ["conv_id", "session_id"]
    assert primary_key(db, "channel_reporting") == ["channel_name", "date"]
    assert db.columns("channel_reporting") == {"channel_name", "date", "cost", "ihc", "ihc_revenue"}


def test_init_schema_is_idempotent_and_keeps_data(db):
    schema.init_schema(db)
    add_conversions(db, [("c1", "u1", "2023-09-01 10:00:00", 5.0)])
    db.execute("INSERT INTO attribution_customer_journey VALUES ('c1', 's1', 1.0)")
    db.execute("INSERT INTO channel_reporting VALUES ('Referral', '2023-09-01', 1.0, 1.0, 5.0)")
    tables, indexes = table_names(db, "table"), table_names(db, "index")

    schema.init_schema(db)
    schema.init_schema(db)

    assert table_names(db, "table") == tables
    assert table_names(db, "index") == indexes
    assert stored_attributions(db) == [("c1", "s1", 1.0)]
    assert stored_report(db) == [("Referral", "2023-09-01", 1.0, 1.0, 5.0)]


@pytest.mark.parametrize("missing", ["session_sources", "conversions", "session_costs"])
def test_missing_input_table_is_named(db, missing):
    db.execute(f"DROP TABLE {missing}")
    with pytest.raises(WarehouseError) as info:
        schema.init_schema(db)
    assert repr(missing) in str(info.value)
    assert not OUTPUT_TABLES & table_names(db, "table")


@pytest.mark.parametrize(
    ("table", "column"),
    [("session_sources", "closer_engagement"), ("conversions", "revenue"), ("session_costs", "cost")],
)
def test_missing_input_column_is_named(db, table, column):
    db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    with pytest.raises(WarehouseError) as info:
        schema.init_schema(db)
    assert table in str(info.value)
    assert column in str(info.value)


# --- extract ------------------------------------------------------------------------------------


@pytest.fixture
def extract_db(db):
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

    assert result.conversions == 3
    assert result.revenue == pytest.approx(150.0)
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


# --- replace_range_attributions -----------------------------------------------------------------


@pytest.fixture
def attribution_db(db):
    schema.init_schema(db)
    add_conversions(
        db,
        [
            ("c1", "u1", "2023-09-02 12:00:00", 100.0),
            ("c2", "u2", "2023-09-03 12:00:00", 50.0),
            ("c_out", "u3", "2023-08-25 12:00:00", 20.0),
        ],
    )
    db.execute("INSERT INTO attribution_customer_journey VALUES ('c_out', 'sx', 1.0)")
    return db


def test_replace_range_attributions_replaces_the_range(attribution_db):
    db = attribution_db
    first = attributions.replace_range_attributions(
        db,
        "2023-09-01",
        "2023-09-07",
        [("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0)],
        tolerance=1e-3,
        expected_rows=3,
    )
    assert (first.conversions, first.rows) == (2, 3)
    assert first.max_sum_error == pytest.approx(0.0, abs=1e-9)
    assert stored_attributions(db) == [("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0), ("c_out", "sx", 1.0)]

    second = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", iter([("c1", "s9", 0.5), ("c1", "s2", 0.5)]), tolerance=1e-3, expected_rows=2
    )
    assert (second.conversions, second.rows) == (1, 2)
    assert stored_attributions(db) == [("c1", "s2", 0.5), ("c1", "s9", 0.5), ("c_out", "sx", 1.0)]


def test_replace_range_attributions_only_touches_its_range(attribution_db):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", [("c1", "s1", 1.0), ("c2", "s3", 1.0)], tolerance=1e-3, expected_rows=2
    )
    attributions.replace_range_attributions(
        db, "2023-09-03", "2023-09-03", [("c2", "s4", 1.0)], tolerance=1e-3, expected_rows=1
    )
    assert stored_attributions(db) == [("c1", "s1", 1.0), ("c2", "s4", 1.0), ("c_out", "sx", 1.0)]


def test_replace_range_attributions_accepts_rounding_within_tolerance(attribution_db):
    check = attributions.replace_range_attributions(
        attribution_db,
        "2023-09-01",
        "2023-09-07",
        [("c1", "s1", 0.3333), ("c1", "s2", 0.6666)],
        tolerance=1e-3,
        expected_rows=2,
    )
    assert check.max_sum_error == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "bad_rows",
    [
        [("c1", "s1", 0.5), ("c1", "s2", 0.2), ("c2", "s3", 1.0)],  # c1 sums to 0.7
        [("c1", "s1", 1.0), ("c2", "s3", 1.0), ("c2", "s4", 1.0)],  # c2 sums to 2 (a split journey)
    ],
)
def test_replace_range_attributions_rolls_back_when_sum_is_off(attribution_db, bad_rows):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", [("c1", "s1", 1.0), ("c2", "s3", 1.0)], tolerance=1e-3, expected_rows=2
    )
    before = stored_attributions(db)
    with pytest.raises(WarehouseError, match="sum of ihc"):
        attributions.replace_range_attributions(
            db, "2023-09-01", "2023-09-07", bad_rows, tolerance=1e-3, expected_rows=len(bad_rows)
        )
    assert stored_attributions(db) == before
    assert not in_transaction(db)


def test_replace_range_attributions_rolls_back_on_duplicate_rows(attribution_db):
    db = attribution_db
    before = stored_attributions(db)
    with pytest.raises(WarehouseError, match="not unique"):
        attributions.replace_range_attributions(
            db, "2023-09-01", "2023-09-07", [("c1", "s1", 0.5), ("c1", "s1", 0.5)], tolerance=1e-3, expected_rows=2
        )
    assert stored_attributions(db) == before
    assert not in_transaction(db)


def test_a_not_null_violation_is_not_taken_for_a_duplicate(attribution_db):
    with pytest.raises(WarehouseError) as raised:
        attributions.replace_range_attributions(
            attribution_db, "2023-09-01", "2023-09-07", [("c1", None, 1.0)], tolerance=1e-3, expected_rows=1
        )
    assert "not unique" not in str(raised.value)
    assert raised.value.__cause__ is not None
    assert warehouse.error_meaning(raised.value.__cause__) is None


# --- rebuild_report -----------------------------------------------------------------------------


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
    assert report.report_window(start, end, lookback) == expected


def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
        raise RuntimeError("boom")
    assert db.execute("SELECT COUNT(*) FROM session_costs").fetchone()[0] == 0
    assert not in_transaction(db)


def test_replace_range_attributions_rolls_back_when_the_row_count_differs(attribution_db):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", [("c1", "s1", 1.0), ("c2", "s3", 1.0)], tolerance=1e-3, expected_rows=2
    )
    before = stored_attributions(db)
    with pytest.raises(WarehouseError, match="1 attribution rows would be stored for 2 sessions sent"):
        attributions.replace_range_attributions(
            db, "2023-09-01", "2023-09-07", [("c1", "s1", 1.0)], tolerance=1e-3, expected_rows=2
        )
    assert stored_attributions(db) == before


def test_replace_reports_the_earliest_session_date_of_old_and_new_rows(attribution_db):
    db = attribution_db
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-08-20 10:00:00", "A"),
            ("s2", "u1", "2023-08-30 10:00:00", "A"),
            ("s3", "u2", "2023-09-01 10:00:00", "B"),
        ],
    )
    first = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", [("c1", "s1", 1.0), ("c2", "s3", 1.0)], tolerance=1e-3, expected_rows=2
    )
    assert first.first_session_date == "2023-08-20"
    second = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", [("c1", "s2", 1.0), ("c2", "s3", 1.0)], tolerance=1e-3, expected_rows=2
    )
    assert second.first_session_date == "2023-08-20", "the replaced rows' dates count too"
    third = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", [("c1", "s2", 1.0), ("c2", "s3", 1.0)], tolerance=1e-3, expected_rows=2
    )
    assert third.first_session_date == "2023-08-30"
    assert report.report_window("2023-09-05", "2023-09-07", 1, "2023-08-01") == ("2023-08-01", "2023-09-07")


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
        attributions.replace_range_attributions(db, "2023-09-01", "2023-09-07", [("c1", "s1", 1.0)], 1e-3, 1)
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


def test_postgres_write_lock_timeout_names_the_cause_and_leaves_no_transaction(postgres_url, monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "0.2")
    target = warehouse.postgres_target(postgres_url, "locked")
    with target.open() as holder, target.open() as db:
        schema.create_input_tables(db)
        with holder.transaction():
            with pytest.raises(WarehouseError, match=r"locked by another writer .*\(0\.2 s"), db.transaction():
                db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
            assert not in_transaction(db)
        with db.transaction():
            db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
        assert db.execute("SELECT COUNT(*) FROM session_costs").fetchone()[0] == 1
