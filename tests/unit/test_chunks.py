"""Chunk files (one per mapped API task) and request packing within a chunk."""

from __future__ import annotations

import logging
import math
import os

import orjson
import pytest

from include.chunks import (
    ChunkInfo,
    effective_chunk_size,
    read_chunk,
    write_chunks,
)
from include.ihc_client import RequestLimits, journey_rows
from include.journeys import Journey
from include.records import Session
from tests.api_rows import pack_requests


def make_journey(conv_id: str, n_sessions: int) -> Journey:
    return Journey(
        conv_id,
        tuple(
            Session(f"{conv_id}-s{i}", f"user-{conv_id}", f"2023-09-01 10:{i:02d}:00", "Referral", 1, 0, 0)
            for i in range(n_sessions)
        ),
    )


def api_journey(conv_id: str, n_sessions: int) -> list[dict[str, object]]:
    return journey_rows(make_journey(conv_id, n_sessions))


# --- write_chunks / read_chunk ---------------------------------------------------------------


def test_write_chunks_file_count_sizes_and_labels(tmp_path):
    lengths = [1, 2, 3, 1, 1, 4, 2]
    journeys = [make_journey(f"c{i}", n) for i, n in enumerate(lengths)]
    chunks = write_chunks(iter(journeys), tmp_path, chunk_size=3)

    assert len(chunks) == 3
    assert [c.index for c in chunks] == [0, 1, 2]
    assert {c.total for c in chunks} == {3}
    assert [c.journeys for c in chunks] == [3, 3, 1]
    assert [c.sessions for c in chunks] == [6, 6, 2]
    assert [c.label for c in chunks] == [
        "chunk 1/3 · 3 journeys",
        "chunk 2/3 · 3 journeys",
        "chunk 3/3 · 1 journeys",
    ]
    files = sorted(p.name for p in (tmp_path / "chunks").iterdir())
    assert files == ["chunk-0000.jsonl", "chunk-0001.jsonl", "chunk-0002.jsonl"]
    assert [c.file for c in chunks] == [f"chunks/{name}" for name in files]


def test_write_chunks_exact_multiple_makes_no_empty_chunk(tmp_path):
    chunks = write_chunks((make_journey(f"c{i}", 1) for i in range(6)), tmp_path, chunk_size=3)
    assert [c.journeys for c in chunks] == [3, 3]
    assert len(list(tmp_path.glob("chunks/chunk-*.jsonl"))) == 2


def test_write_chunks_without_journeys_writes_nothing(tmp_path):
    assert write_chunks(iter([]), tmp_path, chunk_size=5) == []
    assert not (tmp_path / "chunks").exists() or not any((tmp_path / "chunks").iterdir())


def test_write_chunks_records_each_chunks_earliest_session_date(tmp_path):
    def journey(conv_id: str, day: str) -> Journey:
        return Journey(conv_id, (Session(f"{conv_id}-s", f"user-{conv_id}", f"{day} 23:59:59", "Referral", 1, 0, 0),))

    days = ["2023-09-03", "2023-08-28", "2023-09-05", "2023-09-04", "2023-09-06"]
    chunks = write_chunks((journey(f"c{i}", day) for i, day in enumerate(days)), tmp_path, chunk_size=2)
    assert [c.first_session_date for c in chunks] == ["2023-08-28", "2023-09-04", "2023-09-06"]


def test_write_chunks_leaves_no_temp_files(tmp_path):
    write_chunks((make_journey(f"c{i}", 2) for i in range(5)), tmp_path, chunk_size=2)
    assert sorted(p.name for p in (tmp_path / "chunks").iterdir()) == [
        "chunk-0000.jsonl",
        "chunk-0001.jsonl",
        "chunk-0002.jsonl",
    ]


def test_read_chunk_round_trip(tmp_path):
    journeys = [make_journey(f"c{i}", n) for i, n in enumerate([2, 1, 3, 1, 5])]
    chunks = write_chunks(iter(journeys), tmp_path, chunk_size=2)
    read_back = [journey for chunk in chunks for journey in read_chunk(tmp_path / chunk.file)]
    assert read_back == [journey_rows(j) for j in journeys]
    for chunk in chunks:
        content = list(read_chunk(tmp_path / chunk.file))
        assert len(content) == chunk.journeys
        assert sum(len(j) for j in content) == chunk.sessions


def test_chunk_info_xcom_round_trip():
    info = ChunkInfo(index=4, total=12, file="chunks/chunk-0004.json", journeys=100, sessions=180)
    data = info.to_xcom()
    assert data["label"] == "chunk 5/12 · 100 journeys"
    assert orjson.loads(orjson.dumps(data)) == data
    assert ChunkInfo.from_xcom(data) == info


def test_chunk_info_from_an_earlier_xcom_has_no_first_session_date():
    earlier = {"index": 0, "total": 1, "file": "chunks/chunk-0000.jsonl", "journeys": 3, "sessions": 5}
    assert ChunkInfo.from_xcom(earlier).first_session_date is None


def test_read_chunk_missing_file_names_the_path(tmp_path):
    path = tmp_path / "chunk-0042.json"
    with pytest.raises(FileNotFoundError) as info:
        read_chunk(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "it is empty"), (b"\n \n", "it starts with an empty line")],
    ids=["empty", "blank"],
)
def test_read_chunk_empty_file_fails_before_any_journey(tmp_path, content, reason):
    path = tmp_path / "chunk-0007.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=reason) as info:
        read_chunk(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "line",
    [b"{not json", b'{"journeys": []}', b"[1, 2, 3]", b"[]"],
    ids=["broken-json", "object", "list-of-numbers", "empty-journey"],
)
def test_read_chunk_damaged_line_names_the_path_and_line_when_reached(tmp_path, line):
    path = tmp_path / "chunk-0007.jsonl"
    first = orjson.dumps(api_journey("c1", 2))
    path.write_bytes(first + b"\n" + line + b"\n")
    journeys = read_chunk(path)
    assert next(journeys) == api_journey("c1", 2)
    with pytest.raises(ValueError) as info:
        next(journeys)
    assert str(path) in str(info.value)
    assert "line 2" in str(info.value)


def test_read_chunk_reads_a_journey_when_it_is_taken(tmp_path):
    chunks = write_chunks(iter([make_journey("c1", 1), make_journey("c2", 3)]), tmp_path, chunk_size=5)
    path = tmp_path / chunks[0].file
    assert path.read_bytes().count(b"\n") == 2, "one journey per line"
    journeys = read_chunk(path)
    assert len(next(journeys)) == 1
    with path.open("ab") as handle:  # a file read whole up front would not show this line
        handle.write(orjson.dumps(api_journey("c3", 2)) + b"\n")
    assert [len(j) for j in journeys] == [3, 2]


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_closing_the_journeys_or_a_blank_start_closes_the_file(tmp_path):
    chunks = write_chunks(iter([make_journey("c1", 1), make_journey("c2", 3)]), tmp_path, chunk_size=5)
    before = open_files()
    journeys = read_chunk(tmp_path / chunks[0].file)
    next(journeys)
    assert open_files() == before + 1
    journeys.close()
    assert open_files() == before

    blank = tmp_path / "chunk-0009.jsonl"
    blank.write_bytes(b"\n" + orjson.dumps(api_journey("c1", 1)) + b"\n")
    with pytest.raises(ValueError, match="empty line"):
        read_chunk(blank)
    assert open_files() == before


# --- effective_chunk_size ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "chunk_size", "max_chunks"),
    [(1940, 400, 1024), (0, 400, 1024), (409_600, 400, 1024), (10, 1, 10), (1, 1, 1)],
)
def test_effective_chunk_size_keeps_the_configured_size(caplog, expected, chunk_size, max_chunks):
    with caplog.at_level(logging.WARNING, logger="include.chunks"):
        assert effective_chunk_size(expected, chunk_size, max_chunks) == chunk_size
    assert not caplog.records


@pytest.mark.parametrize(
    ("expected", "chunk_size", "max_chunks", "grown"),
    [(409_601, 400, 1024, 401), (1_000_000, 400, 1024, 977), (11, 1, 10, 2), (250, 10, 3, 84)],
)
def test_effective_chunk_size_grows_to_stay_under_max_chunks(caplog, expected, chunk_size, max_chunks, grown):
    with caplog.at_level(logging.WARNING, logger="include.chunks"):
        size = effective_chunk_size(expected, chunk_size, max_chunks)
    assert size == grown
    assert math.ceil(expected / size) <= max_chunks
    assert len(caplog.records) == 1
    record = caplog.records[0]
    assert record.levelno == logging.WARNING
    assert str(grown) in record.getMessage()
    assert str(max_chunks) in record.getMessage()


def test_effective_chunk_size_gives_at_most_max_chunks_files(tmp_path):
    journeys = [make_journey(f"c{i}", 1) for i in range(25)]
    size = effective_chunk_size(len(journeys), chunk_size=2, max_chunks=4)
    chunks = write_chunks(iter(journeys), tmp_path, chunk_size=size)
    assert len(chunks) <= 4
    assert sum(c.journeys for c in chunks) == 25


@pytest.mark.parametrize(
    ("max_journeys", "max_sessions", "chunk_size"), [(100, 200, 100), (100, 200, 7), (5, 3000, 12)]
)
def test_chunks_of_whole_requests_need_no_more_requests_than_one_packing(
    tmp_path, max_journeys, max_sessions, chunk_size
):
    journeys = [make_journey(f"c{i}", 1 + i % 7) for i in range(400)]
    everything = pack_requests([journey_rows(j) for j in journeys], max_journeys, max_sessions)
    limits = RequestLimits(max_journeys, max_sessions)

    aligned = write_chunks(iter(journeys), tmp_path / "aligned", chunk_size, limits)
    plain = write_chunks(iter(journeys), tmp_path / "plain", chunk_size)

    def requests(chunks, folder) -> int:
        return sum(len(pack_requests(read_chunk(folder / c.file), max_journeys, max_sessions)) for c in chunks)

    assert requests(aligned, tmp_path / "aligned") == len(everything)
    assert requests(plain, tmp_path / "plain") > len(everything), "cutting anywhere costs requests"
    assert sum(c.journeys for c in aligned) == 400
    assert all(c.journeys >= chunk_size for c in aligned[:-1])
    assert all(c.journeys < chunk_size + max_journeys for c in aligned)
