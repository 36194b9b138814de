"""The extract step: the range's conversions and their users' sessions, streamed to files.

Both files are JSON lines sorted by (user_id, timestamp), so the journey step can merge them
one user at a time without holding a table in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import orjson

from include import warehouse
from include.records import Conversion, Session
from include.runfiles import StoragePath, atomic_writer, read_lines
from include.settings import DateRange

CONVERSIONS_FILE = "extract/conversions.jsonl"
SESSIONS_FILE = "extract/sessions.jsonl"


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


def extract(db: warehouse.Warehouse, window: DateRange, lookback_days: int, run_dir: StoragePath) -> ExtractResult:
    """Writes CONVERSIONS_FILE and SESSIONS_FILE in the run folder."""
    with db.snapshot():
        _, revenue = warehouse.count_conversions(db, window.start, window.end)
        conversions = _write_lines(run_dir / CONVERSIONS_FILE, warehouse.iter_conversions(db, window.start, window.end))
        sessions = _write_lines(
            run_dir / SESSIONS_FILE,
            warehouse.iter_sessions_of_converting_users(db, window.start, window.end, lookback_days),
        )
    return ExtractResult(conversions, sessions, revenue)


def read_conversions(path: StoragePath) -> Iterator[Conversion]:
    for line in read_lines(path):
        yield Conversion(*orjson.loads(line))


def read_sessions(path: StoragePath) -> Iterator[Session]:
    for line in read_lines(path):
        yield Session(*orjson.loads(line))
