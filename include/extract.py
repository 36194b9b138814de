"""The extract step: the range's conversions and their users' sessions, streamed to files.

Both files are JSON lines sorted by (user_id, timestamp), so the journey step can merge them
one user at a time without holding a table in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from include.records import Conversion, Session
from include.runfiles import StoragePath, atomic_writer, read_lines
from include.settings import DateRange
from include.warehouse import Warehouse

CONVERSIONS_FILE = "extract/conversions.jsonl"
SESSIONS_FILE = "extract/sessions.jsonl"


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


@dataclass(frozen=True)
class ExtractResult:
    conversions: int
    sessions: int
    revenue: float


def _write_lines(path: StoragePath, rows: Iterable[object]) -> int:
    count = 0
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(orjson.dumps(dataclasses.astuple(row)))
            handle.write(b"\n")
            count += 1
    return count


def extract(db: Warehouse, window: DateRange, lookback_days: int, run_dir: StoragePath) -> ExtractResult:
    """Writes CONVERSIONS_FILE and SESSIONS_FILE in the run folder."""
    with db.snapshot():
        _, revenue = count_conversions(db, window.start, window.end)
        conversions = _write_lines(run_dir / CONVERSIONS_FILE, iter_conversions(db, window.start, window.end))
        sessions = _write_lines(
            run_dir / SESSIONS_FILE,
            iter_sessions_of_converting_users(db, window.start, window.end, lookback_days),
        )
    return ExtractResult(conversions, sessions, revenue)


def read_conversions(path: StoragePath) -> Iterator[Conversion]:
    for line in read_lines(path):
        yield Conversion(*orjson.loads(line))


def read_sessions(path: StoragePath) -> Iterator[Session]:
    for line in read_lines(path):
        yield Session(*orjson.loads(line))
