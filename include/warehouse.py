"""The SQLite warehouse: schema, the queries of each step, and transactional writes.

All SQL of the pipeline lives here. Writes run in one ``BEGIN IMMEDIATE`` transaction each, so
a crash leaves the old state or the new one, never a part.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import sqlite_utils

from include import settings
from include.records import Conversion, Session

INPUT_COLUMNS = {
    "session_sources": (
        "session_id",
        "user_id",
        "event_date",
        "event_time",
        "channel_name",
        "holder_engagement",
        "closer_engagement",
        "impression_interaction",
    ),
    "conversions": ("conv_id", "user_id", "conv_date", "conv_time", "revenue"),
    "session_costs": ("session_id", "cost"),
}

OUTPUT_DDL = (
    """CREATE TABLE IF NOT EXISTS attribution_customer_journey (
        conv_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        ihc REAL NOT NULL,
        PRIMARY KEY (conv_id, session_id))""",
    """CREATE TABLE IF NOT EXISTS channel_reporting (
        channel_name TEXT NOT NULL,
        date TEXT NOT NULL,
        cost REAL NOT NULL,
        ihc REAL NOT NULL,
        ihc_revenue REAL NOT NULL,
        PRIMARY KEY (channel_name, date))""",
)

INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_session_sources_user_time ON session_sources (user_id, event_date, event_time)",
    "CREATE INDEX IF NOT EXISTS idx_session_sources_date ON session_sources (event_date)",
    "CREATE INDEX IF NOT EXISTS idx_conversions_date ON conversions (conv_date)",
    "CREATE INDEX IF NOT EXISTS idx_attribution_session ON attribution_customer_journey (session_id)",
)

CONVERSIONS_IN_RANGE = """
    SELECT conv_id, user_id, conv_date || ' ' || conv_time, revenue
    FROM conversions
    WHERE conv_date BETWEEN :start AND :end
    ORDER BY user_id, conv_date, conv_time, conv_id"""

COUNT_CONVERSIONS_IN_RANGE = """
    SELECT COUNT(*), COALESCE(SUM(revenue), 0) FROM conversions
    WHERE conv_date BETWEEN :start AND :end"""

SESSIONS_OF_CONVERTING_USERS = """
    WITH users AS (
        SELECT user_id, MIN(conv_date) AS first_date, MAX(conv_date) AS last_date
        FROM conversions
        WHERE conv_date BETWEEN :start AND :end
        GROUP BY user_id)
    SELECT s.session_id, s.user_id, s.event_date || ' ' || s.event_time, s.channel_name,
           s.holder_engagement, s.closer_engagement, s.impression_interaction
    FROM users u
    JOIN session_sources s
      ON s.user_id = u.user_id
     AND (s.event_date BETWEEN date(u.first_date, printf('-%d days', :lookback_days)) AND u.last_date
          OR s.event_date IS NULL OR s.event_time IS NULL
          OR s.event_date NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]')
    ORDER BY s.user_id, s.event_date, s.event_time, s.session_id"""

DELETE_RANGE_ATTRIBUTIONS = """
    DELETE FROM attribution_customer_journey
    WHERE conv_id IN (SELECT conv_id FROM conversions WHERE conv_date BETWEEN :start AND :end)"""

INSERT_ATTRIBUTION = "INSERT INTO attribution_customer_journey (conv_id, session_id, ihc) VALUES (?, ?, ?)"

RANGE_FIRST_SESSION_DATE = """
    SELECT MIN(s.event_date) FROM attribution_customer_journey a
    JOIN session_sources s ON s.session_id = a.session_id
    WHERE a.conv_id IN (SELECT conv_id FROM conversions WHERE conv_date BETWEEN :start AND :end)"""

RANGE_ATTRIBUTION_CHECK = """
    SELECT COUNT(*), COALESCE(SUM(rows), 0), COALESCE(MAX(ABS(total - 1)), 0) FROM (
        SELECT a.conv_id, SUM(a.ihc) AS total, COUNT(*) AS rows
        FROM attribution_customer_journey a
        JOIN conversions c ON c.conv_id = a.conv_id
        WHERE c.conv_date BETWEEN :start AND :end
        GROUP BY a.conv_id)"""

DELETE_REPORT_WINDOW = "DELETE FROM channel_reporting WHERE date BETWEEN :first AND :last"

NO_CHANNEL = "(no channel)"
REPORT_CHANNEL = f"COALESCE(NULLIF(TRIM(s.channel_name), ''), '{NO_CHANNEL}')"
REPORT_DATE_FILTER = (
    "s.event_date BETWEEN :first AND :last AND s.event_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"
)

# Cost and attribution are aggregated separately and joined per (channel, day): joining costs
# to attributions row by row would count a session's cost once per journey it is part of.
# Sessions without a channel keep their cost, under "(no channel)"; malformed dates have no day.
INSERT_REPORT_WINDOW = f"""
    INSERT INTO channel_reporting (channel_name, date, cost, ihc, ihc_revenue)
    WITH costs AS (
        SELECT {REPORT_CHANNEL} AS channel_name, s.event_date AS date, SUM(COALESCE(k.cost, 0)) AS cost
        FROM session_sources s
        LEFT JOIN session_costs k ON k.session_id = s.session_id
        WHERE {REPORT_DATE_FILTER}
        GROUP BY 1, 2),
    attributed AS (
        SELECT {REPORT_CHANNEL} AS channel_name, s.event_date AS date, SUM(a.ihc) AS ihc,
               SUM(a.ihc * COALESCE(c.revenue, 0)) AS ihc_revenue
        FROM session_sources s
        JOIN attribution_customer_journey a ON a.session_id = s.session_id
        JOIN conversions c ON c.conv_id = a.conv_id
        WHERE {REPORT_DATE_FILTER}
        GROUP BY 1, 2)
    SELECT costs.channel_name, costs.date, costs.cost,
           COALESCE(attributed.ihc, 0), COALESCE(attributed.ihc_revenue, 0)
    FROM costs
    LEFT JOIN attributed ON attributed.channel_name = costs.channel_name
                        AND attributed.date = costs.date"""

REPORT_WINDOW_TOTALS = """
    SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(ihc), 0), COALESCE(SUM(ihc_revenue), 0)
    FROM channel_reporting WHERE date BETWEEN :first AND :last"""

ALL_REPORT_ROWS = """
    SELECT channel_name, date, cost, ihc, ihc_revenue
    FROM channel_reporting ORDER BY date, channel_name"""


class WarehouseError(RuntimeError):
    """The warehouse is missing, unreadable, or its data breaks a rule of the pipeline."""


@dataclass(frozen=True)
class ReportRow:
    channel_name: str
    date: str
    cost: float
    ihc: float
    ihc_revenue: float


@dataclass(frozen=True)
class AttributionCheck:
    conversions: int
    rows: int
    max_sum_error: float
    first_session_date: str | None = None


@dataclass(frozen=True)
class ReportTotals:
    rows: int
    cost: float
    ihc: float
    ihc_revenue: float


def explain(exc: sqlite3.Error, path: object) -> WarehouseError:
    """A warehouse error that says what is wrong with which file, from SQLite's terse message."""
    message = str(exc)
    if "readonly" in message or "read-only" in message:
        return WarehouseError(
            f"warehouse database {path} is read-only ({message}): the worker needs write access "
            "to the file and its folder"
        )
    if "locked" in message or "busy" in message:
        return WarehouseError(
            f"warehouse database {path} is locked by another writer for longer than the busy timeout "
            f"({settings.sqlite_busy_timeout_seconds():g} s, env ATTRIBUTION_SQLITE_BUSY_TIMEOUT_SECONDS)"
        )
    return WarehouseError(f"warehouse database {path}: {message}")


def connect(path: Path, *, create: bool = False) -> sqlite_utils.Database:
    """Open the warehouse in autocommit mode; writes open their own transaction."""
    if not create and not path.is_file():
        raise WarehouseError(f"warehouse database {path} does not exist")
    try:
        conn = sqlite3.connect(path, timeout=settings.sqlite_busy_timeout_seconds(), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise explain(exc, path) from exc
    return sqlite_utils.Database(conn)


def check_input_tables(db: sqlite_utils.Database) -> None:
    for table, columns in INPUT_COLUMNS.items():
        if not db[table].exists():
            raise WarehouseError(f"warehouse has no table {table!r} (expected columns {columns})")
        missing = set(columns) - set(db[table].columns_dict)
        if missing:
            raise WarehouseError(f"table {table!r} lacks the columns {sorted(missing)}")


def init_schema(db: sqlite_utils.Database) -> None:
    """Create the output tables and the indexes the queries filter by, if missing."""
    check_input_tables(db)
    with transaction(db):
        for statement in OUTPUT_DDL + INDEXES:
            db.execute(statement)


@contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: takes the write lock up front, rolls back on any error."""
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise explain(exc, conn.execute("PRAGMA database_list").fetchone()[2]) from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except sqlite3.OperationalError as exc:
        _rollback(conn)
        raise explain(exc, conn.execute("PRAGMA database_list").fetchone()[2]) from exc
    except BaseException:
        _rollback(conn)
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back unless SQLite already did (after SQLITE_FULL or an I/O error it may have)."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


@contextmanager
def snapshot(db: sqlite_utils.Database) -> Iterator[None]:
    """One read transaction, so several queries see the same state of the tables."""
    db.conn.execute("BEGIN")
    try:
        yield
    finally:
        _rollback(db.conn)


def count_conversions(db: sqlite_utils.Database, start: str, end: str) -> tuple[int, float]:
    count, revenue = db.execute(COUNT_CONVERSIONS_IN_RANGE, {"start": start, "end": end}).fetchone()
    return count, revenue


def iter_conversions(db: sqlite_utils.Database, start: str, end: str) -> Iterator[Conversion]:
    for row in db.execute(CONVERSIONS_IN_RANGE, {"start": start, "end": end}):
        yield Conversion(*row)


def iter_sessions_of_converting_users(
    db: sqlite_utils.Database, start: str, end: str, lookback_days: int
) -> Iterator[Session]:
    """Sessions of the range's converting users, by user and time; a superset of the journeys.

    Rows whose date is missing or malformed come along, so the journey step can name them.
    """
    params = {"start": start, "end": end, "lookback_days": lookback_days}
    for row in db.execute(SESSIONS_OF_CONVERTING_USERS, params):
        yield Session(*row)


def replace_range_attributions(
    db: sqlite_utils.Database,
    start: str,
    end: str,
    rows: Iterable[tuple[str, str, float]],
    tolerance: float,
    expected_rows: int,
) -> AttributionCheck:
    """Swap the range's attributions for ``rows`` in one transaction, checking Σ ihc = 1.

    Also returns the earliest session date of the old or new rows: the report must be rebuilt
    from there, even when the look-back was longer on an earlier run.
    """
    params = {"start": start, "end": end}
    with transaction(db) as conn:
        old_first = conn.execute(RANGE_FIRST_SESSION_DATE, params).fetchone()[0]
        conn.execute(DELETE_RANGE_ATTRIBUTIONS, params)
        try:
            conn.executemany(INSERT_ATTRIBUTION, rows)
        except sqlite3.IntegrityError as exc:
            raise WarehouseError(f"attribution rows are not unique per (conv_id, session_id): {exc}") from exc
        check = AttributionCheck(*conn.execute(RANGE_ATTRIBUTION_CHECK, params).fetchone())
        if check.rows != expected_rows:
            raise WarehouseError(
                f"{check.rows} attribution rows would be stored for {expected_rows} sessions sent "
                "(a conversion changed since extract?); nothing was written"
            )
        if check.max_sum_error > tolerance:
            raise WarehouseError(
                f"sum of ihc per conversion is off by up to {check.max_sum_error:.6f} "
                f"(tolerance {tolerance}); nothing was written"
            )
        new_first = conn.execute(RANGE_FIRST_SESSION_DATE, params).fetchone()[0]
    firsts = [d for d in (old_first, new_first) if d]
    return AttributionCheck(check.conversions, check.rows, check.max_sum_error, min(firsts) if firsts else None)


def report_window(start: str, end: str, lookback_days: int, first_changed: str | None = None) -> tuple[str, str]:
    """Session dates whose report rows a run over [start, end] can change.

    ``first_changed`` is the earliest session date of the attributions the run replaced, which
    lies further back when an earlier run used a longer look-back.
    """
    first = (date.fromisoformat(start) - timedelta(days=lookback_days)).isoformat()
    return (min(first, first_changed) if first_changed else first), end


def rebuild_report(db: sqlite_utils.Database, first: str, last: str) -> ReportTotals:
    """Recompute channel_reporting for the window from the tables, in one transaction."""
    params = {"first": first, "last": last}
    with transaction(db) as conn:
        conn.execute(DELETE_REPORT_WINDOW, params)
        conn.execute(INSERT_REPORT_WINDOW, params)
        return ReportTotals(*conn.execute(REPORT_WINDOW_TOTALS, params).fetchone())


def report_rows(db: sqlite_utils.Database) -> Iterator[ReportRow]:
    for row in db.execute(ALL_REPORT_ROWS):
        yield ReportRow(*row)
