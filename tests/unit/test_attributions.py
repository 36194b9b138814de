"""Per-chunk result files: written by the API task, checked and read by the writer task."""

from __future__ import annotations

import pytest

from include.attributions import ChunkResult, ResultsError, check_complete, iter_rows, result_file, write_result
from include.chunks import ChunkInfo
from include.ihc_client import Attribution, ChunkOutcome


def chunk(index: int, total: int, sessions: int, journeys: int = 1) -> ChunkInfo:
    return ChunkInfo(
        index=index, total=total, file=f"chunks/chunk-{index:04d}.json", journeys=journeys, sessions=sessions
    )


def attribution(conv_id: str, session_id: str, ihc: float) -> Attribution:
    return Attribution(conv_id, session_id, initializer=ihc / 2, holder=ihc / 4, closer=ihc / 4, ihc=ihc)


def test_write_result_and_iter_rows_round_trip(tmp_path):
    first = write_result(
        tmp_path,
        chunk(0, 2, sessions=2),
        ChunkOutcome(
            [attribution("c1", "s1", 0.25), attribution("c1", "s2", 0.75)],
            requests=1,
            attempts=3,
            engine_parameters="/data/engine/default.json",
        ),
    )
    second = write_result(
        tmp_path, chunk(1, 2, sessions=1), ChunkOutcome([attribution("c2", "s3", 1.0)], requests=2, attempts=2)
    )

    assert first == ChunkResult(0, result_file(0), 2, 1, 3, "/data/engine/default.json")
    assert second.rows == 1 and second.engine_parameters is None
    assert (second.requests, second.attempts) == (2, 2)
    assert (tmp_path / first.file).is_file()
    assert (tmp_path / first.file).parent == tmp_path / "results"
    assert first.file != second.file
    assert list(iter_rows(tmp_path, [first, second])) == [("c1", "s1", 0.25), ("c1", "s2", 0.75), ("c2", "s3", 1.0)]
    assert first.to_xcom() == {
        "index": 0,
        "file": first.file,
        "rows": 2,
        "requests": 1,
        "attempts": 3,
        "engine_parameters": "/data/engine/default.json",
    }


def test_write_result_overwrites_a_previous_try(tmp_path):
    info = chunk(0, 1, sessions=1)
    write_result(tmp_path, info, ChunkOutcome([attribution("c1", "s1", 0.5)], requests=1, attempts=1))
    again = write_result(tmp_path, info, ChunkOutcome([attribution("c1", "s1", 1.0)], requests=1, attempts=1))
    assert list(iter_rows(tmp_path, [again])) == [("c1", "s1", 1.0)]
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["chunk-0000.json"]


def test_iter_rows_missing_file_names_the_path(tmp_path):
    missing = ChunkResult(0, "results/chunk-0000.json", rows=1, requests=1, attempts=1)
    with pytest.raises(ResultsError) as info:
        list(iter_rows(tmp_path, [missing]))
    assert str(tmp_path / missing.file) in str(info.value)


def test_check_complete_passes_when_everything_matches():
    chunks = [chunk(0, 2, sessions=3), chunk(1, 2, sessions=5)]
    results = [ChunkResult(1, "b", 5, 1, 1), ChunkResult(0, "a", 3, 1, 1)]
    check_complete(chunks, results)  # order of results does not matter


def test_check_complete_raises_for_a_missing_chunk_result():
    chunks = [chunk(0, 3, sessions=3), chunk(1, 3, sessions=5, journeys=4), chunk(2, 3, sessions=1)]
    results = [ChunkResult(0, "a", 3, 1, 1), ChunkResult(2, "c", 1, 1, 1)]
    with pytest.raises(ResultsError) as info:
        check_complete(chunks, results)
    assert "chunk 2/3 · 4 journeys" in str(info.value)
    assert "1 chunks have no result" in str(info.value)


def test_check_complete_raises_when_there_are_no_results():
    with pytest.raises(ResultsError):
        check_complete([chunk(0, 1, sessions=1)], [])


def test_check_complete_raises_for_a_row_count_mismatch():
    chunks = [chunk(0, 2, sessions=3), chunk(1, 2, sessions=5, journeys=2)]
    results = [ChunkResult(0, "a", 3, 1, 1), ChunkResult(1, "b", 4, 1, 1)]
    with pytest.raises(ResultsError) as info:
        check_complete(chunks, results)
    message = str(info.value)
    assert "chunk 2/2 · 2 journeys" in message
    assert "4 attributed sessions for 5 sent" in message


def test_check_complete_raises_for_a_duplicate_result():
    chunks = [chunk(0, 1, sessions=2)]
    with pytest.raises(ResultsError):
        check_complete(chunks, [ChunkResult(0, "a", 2, 1, 1), ChunkResult(0, "a", 2, 1, 1)])
