"""Chunk files of whole journeys (one per mapped API task) and requests within a chunk.

A journey is never split: the API normalises each request on its own, so a journey spread over
two requests would come back summing to 2. A chunk file holds one journey per JSON line, in the
request shape, so the API task decodes it a request at a time while the first requests are out.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Generator, Iterable
from dataclasses import asdict, dataclass

import orjson

from include.ihc_client import ApiJourney, RequestLimits, journey_rows
from include.journeys import Journey
from include.runfiles import StoragePath, atomic_writer, read_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChunkInfo:
    """What the mapped task needs to know about its chunk: small enough for XCom."""

    index: int
    total: int
    file: str  # relative to the run folder, which each worker resolves on its own storage
    journeys: int
    sessions: int
    # Its earliest session's date: the writer's report window starts there at the latest, known
    # without reading the new rows back. None in a description written before it was recorded.
    first_session_date: str | None = None
    # Its latest session's date: where the report window ends at the earliest.
    last_session_date: str | None = None

    @property
    def label(self) -> str:
        return f"chunk {self.index + 1}/{self.total} · {self.journeys} journeys"

    def to_xcom(self) -> dict[str, object]:
        return {**asdict(self), "label": self.label}

    @classmethod
    def from_xcom(cls, data: dict[str, object]) -> ChunkInfo:
        return cls(**{k: v for k, v in data.items() if k != "label"})


def effective_chunk_size(expected_journeys: int, chunk_size: int, max_chunks: int) -> int:
    """The configured chunk size, grown when the chunk count would exceed ``max_chunks``."""
    needed = math.ceil(expected_journeys / max_chunks) if expected_journeys else 1
    if needed > chunk_size:
        log.warning(
            "chunk size %d would give more than %d chunks for %d journeys: using %d instead",
            chunk_size,
            max_chunks,
            expected_journeys,
            needed,
        )
        return needed
    return chunk_size


def chunk_file(index: int) -> str:
    return f"chunks/chunk-{index:04d}.jsonl"


def write_chunks(
    journeys: Iterable[Journey], run_dir: StoragePath, chunk_size: int, limits: RequestLimits | None = None
) -> list[ChunkInfo]:
    """Stream journeys into files of ``chunk_size`` journeys each; returns their descriptions.

    With ``limits`` a chunk ends only where a request would end when the whole range is packed,
    so each chunk holds whole requests (a few journeys more than ``chunk_size`` at most) and the
    run sends no more requests than one packing of all its journeys: no half-empty request per
    chunk, which counts on a free account's 200 sessions per request.
    """
    written: list[tuple[str, int, int, str, str]] = []
    buffer: list[ApiJourney] = []
    sessions = 0
    request_journeys = request_sessions = 0

    def flush() -> None:
        nonlocal buffer, sessions
        name = chunk_file(len(written))
        with atomic_writer(run_dir / name) as handle:
            for journey in buffer:  # one by one: orjson keeps ~4 kB behind each result
                handle.write(orjson.dumps(journey, option=orjson.OPT_APPEND_NEWLINE))
        # A journey's rows are in time order, their timestamps ISO: its first is its earliest.
        first_date = min(journey[0]["timestamp"] for journey in buffer)[:10]
        last_date = max(journey[-1]["timestamp"] for journey in buffer)[:10]
        written.append((name, len(buffer), sessions, first_date, last_date))
        buffer, sessions = [], 0

    for journey in journeys:
        size = len(journey.sessions)
        if limits is None or limits.starts_new_request(request_journeys, request_sessions, size):
            if len(buffer) >= chunk_size:
                flush()
            request_journeys = request_sessions = 0
        buffer.append(journey_rows(journey))
        sessions += size
        request_journeys += 1
        request_sessions += size
    if buffer:
        flush()
    return [ChunkInfo(i, len(written), name, j, s, first, last) for i, (name, j, s, first, last) in enumerate(written)]


def read_chunk(path: StoragePath) -> Generator[ApiJourney, None, None]:
    """The chunk's journeys, each read and decoded when it is taken: the first request goes out
    after its own journeys are read, not the whole file, and no copy of the file is held.

    A missing file, or one that is empty or starts blank, fails here. A line that is not JSON or
    not a non-empty list starting with a row object fails when it is reached, after the requests
    before it went out (the file is written whole by write_chunks, so that means damage).
    """
    lines = read_lines(path)
    try:
        first = next(lines, b"")
    except FileNotFoundError:
        raise FileNotFoundError(f"chunk file {path} is missing") from None
    if not first.strip():
        lines.close()
        why = "it starts with an empty line" if first else "it is empty"
        raise ValueError(f"chunk file {path} is not a valid chunk: {why}")
    return _journeys(path, first, lines)


def _journeys(path: StoragePath, first: bytes, rest: Generator[bytes, None, None]) -> Generator[ApiJourney, None, None]:
    """Closing it (or its failing) closes the file too: on an object store that is a connection."""
    try:
        for number, line in enumerate(itertools.chain([first], rest), start=1):
            try:
                journey = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"chunk file {path} is not a valid chunk: line {number}: {exc}") from exc
            if not isinstance(journey, list) or not journey or not isinstance(journey[0], dict):
                raise ValueError(f"chunk file {path} is not a valid chunk: line {number} is not a list of rows")
            yield journey
    finally:
        rest.close()
