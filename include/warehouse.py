"""The warehouse: schema, the queries of each step, and transactional writes, on SQLite or PostgreSQL.

All SQL of the pipeline lives here, written once with ``:name`` parameters. Where the two
dialects differ, a query says so with a ``{field}`` that its :class:`Dialect` fills in. Writes
run in one transaction each that first takes the warehouse's write lock, so a crash leaves the
old state or the new one, never a part, and two runs never interleave their writes.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

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

# The challenge's input tables, for warehouses that the tools here fill (tests, compose, copies).
INPUT_DDL = (
    """CREATE TABLE IF NOT EXISTS session_sources (
        session_id TEXT NOT NULL PRIMARY KEY, user_id TEXT, event_date TEXT, event_time TEXT,
        channel_name TEXT, holder_engagement INTEGER, closer_engagement INTEGER,
        impression_interaction INTEGER)""",
    """CREATE TABLE IF NOT EXISTS conversions (
        conv_id TEXT NOT NULL PRIMARY KEY, user_id TEXT, conv_date TEXT, conv_time TEXT, revenue {float})""",
    "CREATE TABLE IF NOT EXISTS session_costs (session_id TEXT NOT NULL PRIMARY KEY, cost {float})",
)

OUTPUT_DDL = (
    """CREATE TABLE IF NOT EXISTS attribution_customer_journey (
        conv_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        ihc {float} NOT NULL,
        PRIMARY KEY (conv_id, session_id))""",
    """CREATE TABLE IF NOT EXISTS channel_reporting (
        channel_name TEXT NOT NULL,
        date TEXT NOT NULL,
        cost {float} NOT NULL,
        ihc {float} NOT NULL,
        ihc_revenue {float} NOT NULL,
        PRIMARY KEY (channel_name, date))""",
)

INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_session_sources_user_time ON session_sources (user_id, event_date, event_time)",
    "CREATE INDEX IF NOT EXISTS idx_session_sources_date ON session_sources (event_date)",
    "CREATE INDEX IF NOT EXISTS idx_conversions_date ON conversions (conv_date)",
    "CREATE INDEX IF NOT EXISTS idx_attribution_session ON attribution_customer_journey (session_id)",
)

CONVERSIONS_IN_RANGE = """
    SELECT conv_id, user_id, conv_date || ' ' || conv_time, {revenue}
    FROM conversions
    WHERE conv_date BETWEEN :start AND :end
    ORDER BY user_id{bytewise}, conv_date{bytewise}, conv_time{bytewise}, conv_id{bytewise}"""

COUNT_CONVERSIONS_IN_RANGE = """
    SELECT COUNT(*), COALESCE(SUM({revenue}), 0) FROM conversions
    WHERE conv_date BETWEEN :start AND :end"""

SESSIONS_OF_CONVERTING_USERS = """
    WITH users AS (
        SELECT user_id, MIN(conv_date) AS first_date, MAX(conv_date) AS last_date
        FROM conversions
        WHERE conv_date BETWEEN :start AND :end AND {conv_date_is_a_day}
        GROUP BY user_id)
    SELECT s.session_id, s.user_id, s.event_date || ' ' || s.event_time, s.channel_name,
           s.holder_engagement, s.closer_engagement, s.impression_interaction
    FROM users u
    JOIN session_sources s
      ON s.user_id = u.user_id
     AND (s.event_date BETWEEN {lookback_start} AND u.last_date
          OR s.event_date IS NULL OR s.event_time IS NULL OR NOT ({event_date_is_iso}))
    ORDER BY s.user_id{bytewise}, s.event_date{bytewise}, s.event_time{bytewise}, s.session_id{bytewise}"""

DELETE_RANGE_ATTRIBUTIONS = """
    DELETE FROM attribution_customer_journey
    WHERE conv_id IN (SELECT conv_id FROM conversions WHERE conv_date BETWEEN :start AND :end)"""

RANGE_FIRST_SESSION_DATE = """
    SELECT MIN(s.event_date) FROM attribution_customer_journey a
    JOIN session_sources s ON s.session_id = a.session_id
    WHERE a.conv_id IN (SELECT conv_id FROM conversions WHERE conv_date BETWEEN :start AND :end)"""

RANGE_ATTRIBUTION_CHECK = """
    SELECT COUNT(*), CAST(COALESCE(SUM(n_rows), 0) AS BIGINT), COALESCE(MAX(ABS(total - 1)), 0) FROM (
        SELECT a.conv_id, SUM(a.ihc) AS total, COUNT(*) AS n_rows
        FROM attribution_customer_journey a
        JOIN conversions c ON c.conv_id = a.conv_id
        WHERE c.conv_date BETWEEN :start AND :end
        GROUP BY a.conv_id) AS per_conversion"""

DELETE_REPORT_WINDOW = "DELETE FROM channel_reporting WHERE date BETWEEN :first AND :last"

NO_CHANNEL = "(no channel)"

# Cost and attribution are aggregated separately and joined per (channel, day): joining costs
# to attributions row by row would count a session's cost once per journey it is part of.
# Sessions without a channel keep their cost, under "(no channel)"; malformed dates have no day.
INSERT_REPORT_WINDOW = f"""
    INSERT INTO channel_reporting (channel_name, date, cost, ihc, ihc_revenue)
    WITH costs AS (
        SELECT COALESCE(NULLIF(TRIM(s.channel_name), ''), '{NO_CHANNEL}') AS channel_name,
               s.event_date AS date, SUM(COALESCE(k.cost, 0)) AS cost
        FROM session_sources s
        LEFT JOIN session_costs k ON k.session_id = s.session_id
        WHERE s.event_date BETWEEN :first AND :last AND {{event_date_is_iso}}
        GROUP BY 1, 2),
    attributed AS (
        SELECT COALESCE(NULLIF(TRIM(s.channel_name), ''), '{NO_CHANNEL}') AS channel_name,
               s.event_date AS date, SUM(a.ihc) AS ihc, SUM(a.ihc * COALESCE(c.revenue, 0)) AS ihc_revenue
        FROM session_sources s
        JOIN attribution_customer_journey a ON a.session_id = s.session_id
        JOIN conversions c ON c.conv_id = a.conv_id
        WHERE s.event_date BETWEEN :first AND :last AND {{event_date_is_iso}}
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

ATTRIBUTION_COLUMNS = ("conv_id", "session_id", "ihc")

# Any constant key works; it only has to be the same for every writer of one warehouse.
POSTGRES_WRITE_LOCK_KEY = 0x1_4C_A77


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite and PostgreSQL, by name; everything else is shared SQL."""

    name: str
    # REAL is 8 bytes in SQLite but 4 in PostgreSQL.
    float_type: str
    # Revenue as a float: a PostgreSQL warehouse may keep money as NUMERIC (Decimal in Python).
    revenue: str
    # Sort keys compare as Python compares str (the journey step merges two sorted streams);
    # PostgreSQL would otherwise sort text by the database's locale.
    bytewise: str
    # A conversion date the look-back arithmetic can take (SQLite's date() tolerates anything;
    # PostgreSQL's cast fails on 2023-09-31, so only the range's real days pass).
    conv_date_is_a_day: str
    # The session date is YYYY-MM-DD text (SQLite's GLOB, PostgreSQL's regular expression).
    event_date_is_iso: str
    # The user's first conversion date minus the look-back, as YYYY-MM-DD text.
    lookback_start: str
    # The statements that open a write transaction holding the warehouse's single write lock.
    begin_write: tuple[str, ...]
    # A read transaction in which several queries see one state of the tables.
    begin_read: str
    table_columns: str
    # How the driver spells a parameter: named ``:x`` for sqlite3, ``%(x)s`` for psycopg.
    pyformat: bool

    def render(self, template: str) -> str:
        return _render(self, template)

    def fields(self) -> dict[str, str]:
        return {
            "float": self.float_type,
            "revenue": self.revenue,
            "bytewise": self.bytewise,
            "conv_date_is_a_day": self.conv_date_is_a_day,
            "event_date_is_iso": self.event_date_is_iso,
            "lookback_start": self.lookback_start,
        }


_ISO_GLOB = "GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"
_ISO_REGEX = "~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"

SQLITE = Dialect(
    name="sqlite",
    float_type="REAL",
    revenue="revenue",
    bytewise="",
    conv_date_is_a_day=f"conv_date {_ISO_GLOB}",
    event_date_is_iso=f"s.event_date {_ISO_GLOB}",
    lookback_start="date(u.first_date, printf('-%d days', :lookback_days))",
    begin_write=("BEGIN IMMEDIATE",),
    begin_read="BEGIN",
    table_columns="SELECT name FROM pragma_table_info(:table)",
    pyformat=False,
)

POSTGRES = Dialect(
    name="postgresql",
    float_type="DOUBLE PRECISION",
    revenue="CAST(revenue AS DOUBLE PRECISION)",
    bytewise=' COLLATE "C"',
    conv_date_is_a_day="""conv_date IN (
        SELECT to_char(day, 'YYYY-MM-DD')
        FROM generate_series(CAST(:start AS date), CAST(:end AS date), interval '1 day') AS day)""",
    event_date_is_iso=f"s.event_date {_ISO_REGEX}",
    lookback_start="to_char(CAST(u.first_date AS date) - CAST(:lookback_days AS integer), 'YYYY-MM-DD')",
    begin_write=("BEGIN", f"SELECT pg_advisory_xact_lock({POSTGRES_WRITE_LOCK_KEY})"),
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    table_columns="""SELECT column_name FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = :table""",
    pyformat=True,
)

_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@functools.cache
def _render(dialect: Dialect, template: str) -> str:
    sql = template.format(**dialect.fields())
    if dialect.pyformat:
        sql = _NAMED_PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
    return sql


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


class Warehouse:
    """One open DB-API connection in autocommit mode; writes open their own transaction."""

    def __init__(self, conn: Any, dialect: Dialect, label: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.label = label
        # The driver's base error class (sqlite3.Error, psycopg.Error, psycopg2.Error).
        self.errors: type[Exception] = sys.modules[type(conn).__module__.split(".")[0]].Error

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def execute(self, template: str, params: Mapping[str, Any] | Sequence[Any] = ()) -> Any:
        cursor = self.conn.cursor()
        try:
            cursor.execute(self.dialect.render(template), params)
        except self.errors as exc:
            raise self.explain(exc) from exc
        return cursor

    def stream(self, template: str, params: Mapping[str, Any]) -> Iterator[tuple]:
        """Rows of a large result without holding it: PostgreSQL drivers fetch everything unless
        the cursor is named (server-side)."""
        if self.dialect is SQLITE:
            yield from self.execute(template, params)
            return
        cursor = self.conn.cursor("ihc_stream", withhold=True)
        cursor.itersize = 10_000
        try:
            cursor.execute(self.dialect.render(template), params)
            yield from cursor
        except self.errors as exc:
            raise self.explain(exc) from exc
        finally:
            cursor.close()

    def insert_many(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        if self.dialect is SQLITE:
            marks = ", ".join("?" * len(columns))
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            return
        # One statement per batch of rows: psycopg2's executemany makes a round trip per row.
        row_marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
        prefix = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        cursor = self.conn.cursor()
        for batch in _batches(rows, 1000):
            cursor.execute(prefix + ", ".join([row_marks] * len(batch)), [v for row in batch for v in row])

    def columns(self, table: str) -> set[str]:
        return {row[0] for row in self.execute(self.dialect.table_columns, {"table": table})}

    def explain(self, exc: BaseException) -> WarehouseError:
        return explain(exc, self.label, file_based=self.dialect is SQLITE)

    @contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """Takes the write lock up front, commits at the end, rolls back on any error."""
        try:
            for statement in self.dialect.begin_write:
                self.execute(statement)
            yield self
            self.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        self.execute(self.dialect.begin_read)
        try:
            yield
        finally:
            self._rollback()

    def _rollback(self) -> None:
        """Roll back, unless the transaction is already gone (SQLite ends it itself after
        SQLITE_FULL or an I/O error; a lost PostgreSQL connection ends it too)."""
        with suppress(self.errors):
            self.conn.cursor().execute("ROLLBACK")


# What a driver error means, by its code: SQLite's primary result code, PostgreSQL's SQLSTATE
# (message texts differ by driver and are translated by the server's locale).
READ_ONLY = "read-only"
LOCKED = "locked"
NOT_UNIQUE = "not unique"
_MEANINGS = {
    sqlite3.SQLITE_READONLY: READ_ONLY,
    sqlite3.SQLITE_PERM: READ_ONLY,
    sqlite3.SQLITE_BUSY: LOCKED,
    sqlite3.SQLITE_LOCKED: LOCKED,
    sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY: NOT_UNIQUE,
    sqlite3.SQLITE_CONSTRAINT_UNIQUE: NOT_UNIQUE,
    "25006": READ_ONLY,  # read_only_sql_transaction
    "42501": READ_ONLY,  # insufficient_privilege
    "55P03": LOCKED,  # lock_not_available (lock_timeout)
    "23505": NOT_UNIQUE,  # unique_violation
}


def error_meaning(exc: BaseException) -> str | None:
    """READ_ONLY, LOCKED, NOT_UNIQUE or None, from the error's code (sqlite3, psycopg, psycopg2)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:  # an extended code, or its primary code (the low byte)
        return _MEANINGS.get(code) or _MEANINGS.get(code & 0xFF)
    return _MEANINGS.get(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None))


def explain(exc: BaseException, label: str, *, file_based: bool) -> WarehouseError:
    """A warehouse error that says what is wrong with which warehouse, from the driver's terse message."""
    message = str(exc).strip()
    meaning = error_meaning(exc)
    if meaning == READ_ONLY:
        where = " to the file and its folder" if file_based else ""
        return WarehouseError(f"warehouse {label} is read-only ({message}): the worker needs write access{where}")
    if meaning == LOCKED:
        return WarehouseError(
            f"warehouse {label} is locked by another writer for longer than the lock timeout "
            f"({settings.warehouse_lock_timeout_seconds():g} s, env ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS)"
        )
    return WarehouseError(f"warehouse {label}: {message}")


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse is, and how to open it; ``label`` names it in logs and errors."""

    label: str
    open: Callable[[], Warehouse]


def connect_sqlite(path: Path, *, create: bool = False) -> Warehouse:
    if not create and not path.is_file():
        raise WarehouseError(f"warehouse database {path} does not exist")
    label = f"database {path}"
    try:
        conn = sqlite3.connect(path, timeout=settings.warehouse_lock_timeout_seconds(), isolation_level=None)
    except sqlite3.Error as exc:
        raise explain(exc, label, file_based=True) from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        conn.close()
        raise explain(exc, label, file_based=True) from exc
    return Warehouse(conn, SQLITE, label)


def sqlite_target(path: Path) -> WarehouseTarget:
    return WarehouseTarget(f"SQLite {path}", lambda: connect_sqlite(path))


def connect_postgres(connect: Callable[[], Any], label: str) -> Warehouse:
    """Wrap a psycopg or psycopg2 connection, e.g. from Airflow's PostgresHook.get_conn."""
    try:
        conn = connect()
    except Exception as exc:
        raise WarehouseError(f"cannot connect to the PostgreSQL warehouse {label}: {exc}") from exc
    db = Warehouse(conn, POSTGRES, label)
    try:
        conn.autocommit = True
        # At least 1 ms: 0 would mean "wait forever" here but "fail at once" on SQLite.
        db.execute(f"SET lock_timeout = {max(1, int(settings.warehouse_lock_timeout_seconds() * 1000))}")
    except BaseException:
        conn.close()
        raise
    return db


def postgres_target(dsn: str, label: str) -> WarehouseTarget:
    """A PostgreSQL warehouse reached without Airflow (tests, tools), with whichever psycopg is installed."""
    try:
        import psycopg as driver
    except ImportError:
        import psycopg2 as driver
    return WarehouseTarget(f"PostgreSQL {label}", lambda: connect_postgres(lambda: driver.connect(dsn), label))


def check_input_tables(db: Warehouse) -> None:
    for table, columns in INPUT_COLUMNS.items():
        present = db.columns(table)
        if not present:
            raise WarehouseError(f"{db.label} has no table {table!r} (expected columns {columns})")
        missing = set(columns) - present
        if missing:
            raise WarehouseError(f"{db.label}: table {table!r} lacks the columns {sorted(missing)}")


def init_schema(db: Warehouse) -> None:
    """Create the output tables and the indexes the queries filter by, if missing."""
    check_input_tables(db)
    with db.transaction():
        for statement in OUTPUT_DDL + INDEXES:
            db.execute(statement)


def create_input_tables(db: Warehouse) -> None:
    with db.transaction():
        for statement in INPUT_DDL:
            db.execute(statement)


def copy_inputs(source: Warehouse, dest: Warehouse) -> dict[str, int]:
    """Copy the input tables into another warehouse (e.g. the sample into PostgreSQL), replacing
    its input rows in one transaction."""
    create_input_tables(dest)
    counts = {}
    with dest.transaction():
        for table, columns in INPUT_COLUMNS.items():
            dest.execute(f"DELETE FROM {table}")
            rows = source.stream(f"SELECT {', '.join(columns)} FROM {table}", {})
            dest.insert_many(table, columns, rows)
            counts[table] = dest.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return counts


def count_conversions(db: Warehouse, start: str, end: str) -> tuple[int, float]:
    count, revenue = db.execute(COUNT_CONVERSIONS_IN_RANGE, {"start": start, "end": end}).fetchone()
    return count, revenue


def iter_conversions(db: Warehouse, start: str, end: str) -> Iterator[Conversion]:
    for row in db.stream(CONVERSIONS_IN_RANGE, {"start": start, "end": end}):
        yield Conversion(*row)


def iter_sessions_of_converting_users(db: Warehouse, start: str, end: str, lookback_days: int) -> Iterator[Session]:
    """Sessions of the range's converting users, by user and time; a superset of the journeys.

    Rows whose date is missing or malformed come along, so the journey step can name them.
    """
    params = {"start": start, "end": end, "lookback_days": lookback_days}
    for row in db.stream(SESSIONS_OF_CONVERTING_USERS, params):
        yield Session(*row)


def replace_range_attributions(
    db: Warehouse,
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
    with db.transaction():
        old_first = db.execute(RANGE_FIRST_SESSION_DATE, params).fetchone()[0]
        db.execute(DELETE_RANGE_ATTRIBUTIONS, params)
        try:
            db.insert_many("attribution_customer_journey", ATTRIBUTION_COLUMNS, rows)
        except db.errors as exc:
            if error_meaning(exc) != NOT_UNIQUE:
                raise db.explain(exc) from exc
            raise WarehouseError(f"attribution rows are not unique per (conv_id, session_id): {exc}") from exc
        check = AttributionCheck(*db.execute(RANGE_ATTRIBUTION_CHECK, params).fetchone())
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
        new_first = db.execute(RANGE_FIRST_SESSION_DATE, params).fetchone()[0]
    firsts = [d for d in (old_first, new_first) if d]
    return AttributionCheck(check.conversions, check.rows, check.max_sum_error, min(firsts) if firsts else None)


def report_window(start: str, end: str, lookback_days: int, first_changed: str | None = None) -> tuple[str, str]:
    """Session dates whose report rows a run over [start, end] can change.

    ``first_changed`` is the earliest session date of the attributions the run replaced, which
    lies further back when an earlier run used a longer look-back.
    """
    first = (date.fromisoformat(start) - timedelta(days=lookback_days)).isoformat()
    return (min(first, first_changed) if first_changed else first), end


def rebuild_report(db: Warehouse, first: str, last: str) -> ReportTotals:
    """Recompute channel_reporting for the window from the tables, in one transaction."""
    params = {"first": first, "last": last}
    with db.transaction():
        db.execute(DELETE_REPORT_WINDOW, params)
        db.execute(INSERT_REPORT_WINDOW, params)
        return ReportTotals(*db.execute(REPORT_WINDOW_TOTALS, params).fetchone())


def report_rows(db: Warehouse) -> Iterator[ReportRow]:
    for row in db.stream(ALL_REPORT_ROWS, {}):
        yield ReportRow(*row)
