"""The warehouse connection: SQLite or PostgreSQL behind one adapter.

Each stage's module owns its SQL, written once with ``:name`` parameters; where the two dialects
differ, a query says so with a ``{field}`` that the :class:`Dialect` fills in. Writes run in one
transaction each that first takes the warehouse's write lock, so a crash leaves the old state or
the new one, never a part, and two runs never interleave their writes. Driver errors are
classified by their codes, not their message text.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from include import settings
from include.errors import FinalError, TransientError

log = logging.getLogger(__name__)

POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
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
    # Read session_sources by idx_session_sources_path (SQLite's planner prefers the date index).
    sessions_by_user: str
    # A conversion date the look-back arithmetic can take (SQLite's date() tolerates anything;
    # PostgreSQL's cast fails on 2023-09-31, so only the real days of the run's reach pass).
    conv_date_is_a_day: str
    # The session date is YYYY-MM-DD text (SQLite's GLOB, PostgreSQL's regular expression).
    event_date_is_iso: str
    # The user's first conversion date minus the look-back, as YYYY-MM-DD text.
    lookback_start: str
    # Hours from session s to conversion c, from their UTC date and time texts.
    hours_before_conversion: str
    # Σ of the session costs (k.cost) of a group, the same bits on every run: PostgreSQL reads a
    # plain SELECT with parallel workers, whose partial float sums would add up in varying order.
    cost_sum: str
    # The statements that open a write transaction holding the warehouse's single write lock.
    begin_write: tuple[str, ...]
    # A read transaction in which several queries see one state of the tables.
    begin_read: str
    table_columns: str
    # About how many rows session_sources holds, at no more cost than a lookup.
    sessions_estimate: str
    # session_sources.user_id at about a thousand points spread over its rows (a user with more
    # sessions is likelier to be one), in the order the warehouse compares them.
    user_sample: str
    # How the driver spells a parameter: named ``:x`` for sqlite3, ``%(x)s`` for psycopg.
    pyformat: bool

    def render(self, template: str) -> str:
        return _render(self, template)

    def fields(self) -> dict[str, str]:
        return {
            "float": self.float_type,
            "revenue": self.revenue,
            "bytewise": self.bytewise,
            "sessions_by_user": self.sessions_by_user,
            "conv_date_is_a_day": self.conv_date_is_a_day,
            "event_date_is_iso": self.event_date_is_iso,
            "lookback_start": self.lookback_start,
            "hours_before_conversion": self.hours_before_conversion,
            "cost_sum": self.cost_sum,
        }


_ISO_GLOB = "GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"


_ISO_REGEX = "~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$'"


SQLITE = Dialect(
    name="sqlite",
    float_type="REAL",
    revenue="revenue",
    bytewise="",
    sessions_by_user=" INDEXED BY idx_session_sources_path",
    conv_date_is_a_day=f"conv_date {_ISO_GLOB}",
    event_date_is_iso=f"s.event_date {_ISO_GLOB}",
    lookback_start="date(u.first_date, printf('-%d days', :lookback_days))",
    hours_before_conversion="24.0 * (julianday(c.conv_date || ' ' || c.conv_time)"
    " - julianday(s.event_date || ' ' || s.event_time))",
    cost_sum="SUM(COALESCE(k.cost, 0))",
    begin_write=("BEGIN IMMEDIATE",),
    begin_read="BEGIN",
    table_columns="SELECT name FROM pragma_table_info(:table)",
    # One MIN or MAX per SELECT: SQLite seeks the rowid's ends then, and scans for both at once.
    sessions_estimate="""SELECT COALESCE((SELECT MAX(rowid) FROM session_sources)
                                  - (SELECT MIN(rowid) FROM session_sources) + 1, 0)""",
    user_sample="""
        WITH RECURSIVE point(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM point WHERE i < 1000),
        span AS (SELECT (SELECT MIN(rowid) FROM session_sources) AS low,
                        (SELECT MAX(rowid) FROM session_sources) AS high)
        SELECT user_id FROM session_sources
        WHERE rowid IN (SELECT low + (high - low) * i / 1000 FROM point, span) AND user_id IS NOT NULL
        ORDER BY user_id""",
    pyformat=False,
)


POSTGRES = Dialect(
    name="postgresql",
    float_type="DOUBLE PRECISION",
    revenue="CAST(revenue AS DOUBLE PRECISION)",
    bytewise=' COLLATE "C"',
    sessions_by_user="",
    conv_date_is_a_day="""conv_date IN (
        SELECT to_char(day, 'YYYY-MM-DD')
        FROM generate_series(CAST(:reach_start AS date), CAST(:reach_end AS date), interval '1 day') AS day)""",
    event_date_is_iso=f"s.event_date {_ISO_REGEX}",
    lookback_start="to_char(CAST(u.first_date AS date) - CAST(:lookback_days AS integer), 'YYYY-MM-DD')",
    hours_before_conversion="CAST(EXTRACT(EPOCH FROM CAST(c.conv_date || ' ' || c.conv_time AS timestamp)"
    " - CAST(s.event_date || ' ' || s.event_time AS timestamp)) AS DOUBLE PRECISION) / 3600",
    cost_sum="CAST(SUM(CAST(COALESCE(k.cost, 0) AS NUMERIC)) AS DOUBLE PRECISION)",
    begin_write=("BEGIN", f"SELECT pg_advisory_xact_lock({POSTGRES_WRITE_LOCK_KEY})"),
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    table_columns="""SELECT column_name FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = :table""",
    # The planner's statistics (ANALYZE; autovacuum keeps them): nothing is read but them.
    sessions_estimate="""SELECT GREATEST(COALESCE(MAX(reltuples), 0), 0)
                         FROM pg_class WHERE oid = to_regclass('session_sources')""",
    user_sample="""
        SELECT b.user_id
        FROM pg_stats, unnest(CAST(CAST(histogram_bounds AS text) AS text[])) WITH ORDINALITY AS b(user_id, i)
        WHERE schemaname = current_schema() AND tablename = 'session_sources' AND attname = 'user_id'
        ORDER BY b.i""",
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


class WarehouseSetupError(WarehouseError, FinalError):
    """The warehouse cannot serve the pipeline as it is set up: no such file, read-only, tables
    or columns missing, rows that break a rule of the output tables."""


class WarehouseBusyError(WarehouseError, TransientError):
    """The warehouse did not serve in time: locked by another writer, or not reachable."""


class WarehouseUnreachableError(WarehouseBusyError):
    """No connection could be made: at a run's start a setting to fix, later a network that may
    come back."""


# One query's rows read on a connection of its own: (template, params) -> rows.
ReadApart = Callable[[str, Mapping[str, Any]], list[tuple]]


class Warehouse:
    """One open DB-API connection in autocommit mode; writes open their own transaction."""

    def __init__(self, conn: Any, dialect: Dialect, label: str, read_apart: ReadApart | None = None) -> None:
        self.conn = conn
        self.dialect = dialect
        self.label = label
        self.read_apart = read_apart
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

    def read_each(self, queries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[tuple]]:
        """Each query's rows, the queries run at once on connections of their own: the parts of one
        read that a single core serves too slowly, split by the caller so that they add up. Each
        part sees the warehouse as committed when it starts, not this connection's transaction."""
        if len(queries) < 2 or self.read_apart is None:
            return [self.execute(template, params).fetchall() for template, params in queries]
        read_apart = self.read_apart
        with ThreadPoolExecutor(len(queries), thread_name_prefix="warehouse-part") as pool:
            return list(pool.map(lambda query: read_apart(*query), queries))

    def insert_many(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        if self.dialect is SQLITE:
            marks = ", ".join("?" * len(columns))
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
            return
        # COPY streams the rows in one statement, with no parameter to bind and parse per value.
        copy_rows(self.conn.cursor(), f"COPY {table} ({', '.join(columns)}) FROM STDIN", rows)

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
        return WarehouseSetupError(f"warehouse {label} is read-only ({message}): the worker needs write access{where}")
    if meaning == LOCKED:
        return WarehouseBusyError(
            f"warehouse {label} is locked by another writer for longer than the lock timeout "
            f"({settings.warehouse_lock_timeout_seconds():g} s, env {settings.LOCK_TIMEOUT_ENV})"
        )
    return WarehouseError(f"warehouse {label}: {message}")


def copy_rows(cursor: Any, statement: str, rows: Iterable[Sequence[object]]) -> None:
    """COPY ... FROM STDIN through either driver: psycopg 3 writes rows itself; psycopg2 (the
    Airflow 2.10 line, older images) reads them as COPY text from a file-like object."""
    if hasattr(cursor, "copy"):
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
        return
    text = _CopyText(rows)
    try:
        cursor.copy_expert(statement, text)
    except Exception:
        # psycopg2 turns an exception of read() into a cancelled COPY: the rows' own error
        # (a damaged result file, say) is the one to raise.
        if text.failure is not None:
            raise text.failure from None
        raise


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class _CopyText:
    """Rows as COPY text lines, produced as psycopg2's copy_expert reads them, a block at a time."""

    def __init__(self, rows: Iterable[Sequence[object]]) -> None:
        self._lines = ("\t".join(map(_copy_field, row)).encode() + b"\n" for row in rows)
        self._pending = bytearray()
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            try:
                line = next(self._lines, None)
            except BaseException as exc:
                self.failure = exc
                raise
            if line is None:
                break
            self._pending += line
        taken = bytes(self._pending if size < 0 else self._pending[:size])
        del self._pending[: len(taken)]
        return taken


@dataclass(frozen=True)
class WarehouseTarget:
    """Where the warehouse is, and how to open it; ``label`` names it in logs and errors."""

    label: str
    open: Callable[[], Warehouse]
    # The bundled sample database, used because no warehouse connection is set at all.
    sample: bool = False
    # For checks that only read: opens without changing anything (SQLite: no switch to WAL).
    open_read_only: Callable[[], Warehouse] | None = None

    def reader(self) -> Warehouse:
        return (self.open_read_only or self.open)()


def _use_wal(conn: sqlite3.Connection, path: Path) -> None:
    """WAL, deliberately and for good: the extract of one run and the write of another, or an
    analyst's query, do not block each other (README, "The SQLite warehouse's journal mode")."""
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
        log.warning(
            "switched the SQLite warehouse %s from journal mode %s to WAL (persistent; "
            "PRAGMA journal_mode=%s switches it back when no run is going)",
            path,
            mode,
            mode.upper(),
        )


def _use_cores(conn: sqlite3.Connection) -> None:
    """Sorts (a GROUP BY over tens of millions of sessions, as the Markov model's) in the
    machine's cores: SQLite's sorter works in one thread unless told otherwise."""
    conn.execute(f"PRAGMA threads = {os.cpu_count() or 1}")


_SQLITE_READER = Path(__file__).with_name("sqlite_reader.py")


def _read_in_process(path: Path, label: str, template: str, params: Mapping[str, Any]) -> list[tuple]:
    """A query's rows from a process of its own (``include/sqlite_reader.py``): two threads of one
    process share SQLite's allocator lock, two processes share nothing."""
    request = {
        "path": str(path),
        "sql": SQLITE.render(template),
        "params": dict(params),
        "timeout": settings.warehouse_lock_timeout_seconds(),
        # The processes run side by side: one core each.
        "threads": 1,
    }
    done = subprocess.run(
        [sys.executable, "-I", str(_SQLITE_READER)], input=json.dumps(request), capture_output=True, text=True
    )
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise WarehouseError(
            f"warehouse {label}: a reader process ended with exit code {done.returncode}: {done.stderr.strip()[-2000:]}"
        ) from None
    if "error" in answer:
        error = sqlite3.OperationalError(answer["error"])
        error.sqlite_errorcode = answer["code"]
        raise explain(error, label, file_based=True)
    return [tuple(row) for row in answer["rows"]]


def connect_sqlite(path: Path, *, create: bool = False, read_only: bool = False) -> Warehouse:
    """A SQLite warehouse in WAL mode; ``read_only`` opens it without changing a byte of it."""
    if not create and not path.is_file():
        raise WarehouseSetupError(f"warehouse database {path} does not exist")
    label = f"database {path}"
    timeout = settings.warehouse_lock_timeout_seconds()
    read_apart = functools.partial(_read_in_process, path, label)
    try:
        if read_only:
            conn = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro", timeout=timeout, isolation_level=None, uri=True
            )
            _use_cores(conn)
            return Warehouse(conn, SQLITE, label, read_apart)
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise explain(exc, label, file_based=True) from exc
    try:
        _use_cores(conn)
        _use_wal(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise explain(exc, label, file_based=True) from exc
    return Warehouse(conn, SQLITE, label, read_apart)


def sqlite_target(path: Path) -> WarehouseTarget:
    return WarehouseTarget(
        f"SQLite {path}", lambda: connect_sqlite(path), open_read_only=lambda: connect_sqlite(path, read_only=True)
    )


def sample_target(path: Path) -> WarehouseTarget:
    """The sample database, said so in every label: its numbers must never pass for a warehouse's."""
    return replace(
        sqlite_target(path),
        label=f"sample database {path} (no connection {settings.WAREHOUSE_CONN_ID} set)",
        sample=True,
    )


SQLITE_CONN_TYPES = ("sqlite",)
POSTGRES_CONN_TYPES = ("postgres", "postgresql")


def sqlite_path(conn: settings.ConnectionFields) -> Path:
    """The SQLite file of a connection: its host (``{"conn_type": "sqlite", "host": "/path"}``),
    or an absolute path in its schema (the URI form ``sqlite:////path``)."""
    if conn.host:
        return Path(conn.host)
    if conn.schema and conn.schema.startswith("/"):
        return Path(conn.schema)
    raise settings.SettingError(
        f"connection {conn.conn_id} of type sqlite names no file: put its absolute path in host "
        f'(JSON {{"conn_type": "sqlite", "host": "/path/to/challenge.db"}}) or use the URI sqlite:////path/to/challenge.db'
    )


def target_from_connection(conn: settings.ConnectionFields, postgres_connect: Callable[[], Any]) -> WarehouseTarget:
    """The warehouse a connection names; ``postgres_connect`` opens a PostgreSQL one (Airflow's hook)."""
    kind = (conn.conn_type or "").lower()
    if kind in POSTGRES_CONN_TYPES:
        label = f"{conn.host}:{conn.port or 5432}/{conn.schema} (connection {conn.conn_id})"
        return WarehouseTarget(f"PostgreSQL {label}", lambda: connect_postgres(postgres_connect, label))
    if kind in SQLITE_CONN_TYPES:
        return sqlite_target(sqlite_path(conn))
    raise settings.SettingError(
        f"connection {conn.conn_id} has type {conn.conn_type!r}; the pipeline reads 'sqlite' (the file in host) "
        "or 'postgres'"
    )


def connect_postgres(connect: Callable[[], Any], label: str) -> Warehouse:
    """Wrap a psycopg or psycopg2 connection, e.g. from Airflow's PostgresHook.get_conn."""
    # libpq's own default is to wait forever; a connection's extra connect_timeout still wins.
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(POSTGRES_CONNECT_TIMEOUT_SECONDS))
    try:
        conn = connect()
    except Exception as exc:
        raise WarehouseUnreachableError(f"cannot connect to the PostgreSQL warehouse {label}: {exc}") from exc
    db = Warehouse(conn, POSTGRES, label, functools.partial(_read_on_new_connection, connect, label))
    try:
        conn.autocommit = True
        # At least 1 ms: 0 would mean "wait forever" here but "fail at once" on SQLite.
        db.execute(f"SET lock_timeout = {max(1, int(settings.warehouse_lock_timeout_seconds() * 1000))}")
    except BaseException:
        conn.close()
        raise
    return db


def _read_on_new_connection(
    connect: Callable[[], Any], label: str, template: str, params: Mapping[str, Any]
) -> list[tuple]:
    """A query's rows from a connection of its own: its own server backend, its own core."""
    with connect_postgres(connect, label) as db:
        return db.execute(template, params).fetchall()


def postgres_target(dsn: str, label: str) -> WarehouseTarget:
    """A PostgreSQL warehouse reached without Airflow (tests, tools), with whichever psycopg is installed."""
    try:
        import psycopg as driver
    except ImportError:
        import psycopg2 as driver
    return WarehouseTarget(f"PostgreSQL {label}", lambda: connect_postgres(lambda: driver.connect(dsn), label))
