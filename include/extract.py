"""The extract step: the range's conversions and their users' sessions, streamed to files, with
the stored conversions near the range whose journeys late or corrected rows may have changed.

Both files are JSON lines sorted by (user_id, timestamp), so the journey step can merge them
one user at a time without holding a table in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from include.records import Conversion, Session, StoredJourney
from include.runfiles import StoragePath, atomic_writer, read_lines
from include.settings import DateRange, shifted_day
from include.warehouse import Warehouse

CONVERSIONS_FILE = "extract/conversions.jsonl"
SESSIONS_FILE = "extract/sessions.jsonl"
STORED_FILE = "extract/stored_journeys.jsonl"


IN_RANGE = (
    "SELECT conv_id, user_id, conv_date, conv_time, revenue FROM conversions WHERE conv_date BETWEEN :start AND :end"
)

# Stored conversions whose look-back overlaps the session dates the run reads, dated outside its
# range (by their stored date and their date now): their journey may have changed since.
STORED_NEARBY = """
    FROM conversion_journeys j
    JOIN conversions c ON c.conv_id = j.conv_id
    WHERE j.conv_date BETWEEN :reach_start AND :reach_end
      AND c.conv_date BETWEEN :reach_start AND :reach_end AND NOT (c.conv_date BETWEEN :start AND :end)"""

# The range's conversions and, with a reach, the stored ones near it.
WITH_NEARBY = f"""{IN_RANGE}
    UNION ALL
    SELECT c.conv_id, c.user_id, c.conv_date, c.conv_time, c.revenue {STORED_NEARBY}"""

CONVERSIONS = """
    SELECT conv_id, user_id, conv_date || ' ' || conv_time, {{revenue}}
    FROM ({chosen}) c
    ORDER BY user_id{{bytewise}}, conv_date{{bytewise}}, conv_time{{bytewise}}, conv_id{{bytewise}}"""

STORED_JOURNEYS = f"SELECT j.conv_id, j.conv_timestamp, j.fingerprint {STORED_NEARBY}"


COUNT_CONVERSIONS_IN_RANGE = """
    SELECT COUNT(*), COALESCE(SUM({revenue}), 0) FROM conversions
    WHERE conv_date BETWEEN :start AND :end"""


SESSIONS_OF_CONVERTING_USERS = """
    WITH users AS (
        SELECT user_id, MIN(conv_date) AS first_date, MAX(conv_date) AS last_date
        FROM ({chosen}) c
        WHERE {{conv_date_is_a_day}}
        GROUP BY user_id)
    SELECT s.session_id, s.user_id, s.event_date || ' ' || s.event_time, s.channel_name,
           s.holder_engagement, s.closer_engagement, s.impression_interaction
    FROM users u
    JOIN session_sources s
      ON s.user_id = u.user_id
     AND (s.event_date BETWEEN {{lookback_start}} AND u.last_date
          OR s.event_date IS NULL OR s.event_time IS NULL OR NOT ({{event_date_is_iso}}))
    ORDER BY s.user_id{{bytewise}}, s.event_date{{bytewise}}, s.event_time{{bytewise}}, s.session_id{{bytewise}}"""


@dataclass(frozen=True)
class Reach:
    """The conversion dates whose look-back overlaps the session dates of a run over [start, end]:
    [start - look-back, end + look-back]."""

    start: str
    end: str

    @classmethod
    def of(cls, window: DateRange, lookback_days: int) -> Reach:
        return cls(shifted_day(window.start, -lookback_days), shifted_day(window.end, lookback_days))


def _params(start: str, end: str, reach: Reach | None) -> dict[str, object]:
    near = reach or Reach(start, end)
    return {"start": start, "end": end, "reach_start": near.start, "reach_end": near.end}


def _chosen(reach: Reach | None) -> str:
    return WITH_NEARBY if reach else IN_RANGE


def count_conversions(db: Warehouse, start: str, end: str) -> tuple[int, float]:
    count, revenue = db.execute(COUNT_CONVERSIONS_IN_RANGE, {"start": start, "end": end}).fetchone()
    return count, revenue


def iter_conversions(db: Warehouse, start: str, end: str, reach: Reach | None = None) -> Iterator[Conversion]:
    """The range's conversions; with ``reach``, also the stored ones dated within it."""
    for row in db.stream(CONVERSIONS.format(chosen=_chosen(reach)), _params(start, end, reach)):
        yield Conversion(*row)


def iter_sessions_of_converting_users(
    db: Warehouse, start: str, end: str, lookback_days: int, reach: Reach | None = None
) -> Iterator[Session]:
    """Sessions of the users of iter_conversions, by user and time; a superset of the journeys.

    Rows whose date is missing or malformed come along, so the journey step can name them.
    """
    params = {**_params(start, end, reach), "lookback_days": lookback_days}
    for row in db.stream(SESSIONS_OF_CONVERTING_USERS.format(chosen=_chosen(reach)), params):
        yield Session(*row)


def iter_stored_journeys(db: Warehouse, start: str, end: str, reach: Reach) -> Iterator[StoredJourney]:
    """The stored journeys of the conversions near the range that iter_conversions also returns."""
    for row in db.stream(STORED_JOURNEYS, _params(start, end, reach)):
        yield StoredJourney(*row)


@dataclass(frozen=True)
class ExtractResult:
    conversions: int
    sessions: int
    revenue: float
    # Stored conversions near the range whose journeys the journey step compares with now.
    stored_nearby: int = 0


def _write_lines(path: StoragePath, rows: Iterable[object]) -> int:
    count = 0
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(orjson.dumps(dataclasses.astuple(row)))
            handle.write(b"\n")
            count += 1
    return count


def extract(db: Warehouse, window: DateRange, lookback_days: int, run_dir: StoragePath) -> ExtractResult:
    """Writes CONVERSIONS_FILE, SESSIONS_FILE and STORED_FILE in the run folder."""
    reach = Reach.of(window, lookback_days)
    with db.snapshot():
        _, revenue = count_conversions(db, window.start, window.end)
        stored = _write_lines(run_dir / STORED_FILE, iter_stored_journeys(db, window.start, window.end, reach))
        conversions = _write_lines(run_dir / CONVERSIONS_FILE, iter_conversions(db, window.start, window.end, reach))
        sessions = _write_lines(
            run_dir / SESSIONS_FILE,
            iter_sessions_of_converting_users(db, window.start, window.end, lookback_days, reach),
        )
    return ExtractResult(conversions, sessions, revenue, stored)


def read_conversions(path: StoragePath) -> Iterator[Conversion]:
    for line in read_lines(path):
        yield Conversion(*orjson.loads(line))


def read_sessions(path: StoragePath) -> Iterator[Session]:
    for line in read_lines(path):
        yield Session(*orjson.loads(line))


def read_stored_journeys(path: StoragePath) -> dict[str, StoredJourney]:
    return {j.conv_id: j for j in (StoredJourney(*orjson.loads(line)) for line in read_lines(path))}
