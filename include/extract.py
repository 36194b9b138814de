"""The extract step: the range's conversions and their users' sessions, streamed to files.

Both files are JSON lines sorted by (user_id, timestamp), so the journey step can merge them
one user at a time without holding a table in memory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from include import warehouse
from include.records import Conversion, Session
from include.runfiles import atomic_writer
from include.settings import DateRange

CONVERSIONS_FILE = "extract/conversions.jsonl"
SESSIONS_FILE = "extract/sessions.jsonl"


@dataclass(frozen=True)
class ExtractResult:
    conversions: int
    sessions: int
    revenue: float
    conversions_path: str
    sessions_path: str


def _write_lines(path: Path, rows: Iterable[object]) -> int:
    count = 0
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(orjson.dumps(dataclasses.astuple(row)))
            handle.write(b"\n")
            count += 1
    return count


def extract(db: warehouse.Warehouse, window: DateRange, lookback_days: int, run_dir: Path) -> ExtractResult:
    conversions_path = run_dir / CONVERSIONS_FILE
    sessions_path = run_dir / SESSIONS_FILE
    with db.snapshot():
        _, revenue = warehouse.count_conversions(db, window.start, window.end)
        conversions = _write_lines(conversions_path, warehouse.iter_conversions(db, window.start, window.end))
        sessions = _write_lines(
            sessions_path,
            warehouse.iter_sessions_of_converting_users(db, window.start, window.end, lookback_days),
        )
    return ExtractResult(conversions, sessions, revenue, str(conversions_path), str(sessions_path))


def read_conversions(path: Path) -> Iterator[Conversion]:
    with path.open("rb") as handle:
        for line in handle:
            yield Conversion(*orjson.loads(line))


def read_sessions(path: Path) -> Iterator[Session]:
    with path.open("rb") as handle:
        for line in handle:
            yield Session(*orjson.loads(line))
