"""The attributions: per-chunk result files, and the range's rows replaced in one checked
transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson
import pytest

from include import attributions, report, schema, warehouse
from include.attributions import (
    ChunkResult,
    EncodedRows,
    ResultsError,
    check_complete,
    iter_rows,
    result_file,
    write_result,
)
from include.chunks import ChunkInfo
from include.ihc_client import Attribution, ChunkOutcome
from include.settings import DateRange, RunWindow
from include.warehouse import WarehouseError
from tests.warehouse_rows import (
    add_conversions,
    add_sessions,
    in_transaction,
    phased,
    stored_attributions,
    stored_phases,
)


def chunk(index: int, total: int, sessions: int, journeys: int = 1) -> ChunkInfo:
    return ChunkInfo(
        index=index, total=total, file=f"chunks/chunk-{index:04d}.json", journeys=journeys, sessions=sessions
    )


def attribution(conv_id: str, session_id: str, ihc: float) -> Attribution:
    return Attribution(conv_id, session_id, initializer=ihc / 2, holder=ihc / 4, closer=ihc / 4, ihc=ihc)


def encoded(*batches: list[Attribution]) -> EncodedRows:
    """The rows as the client hands them over, one batch per answer."""
    rows = EncodedRows()
    for batch in batches:
        rows.add(batch)
    return rows


def test_write_result_and_iter_rows_round_trip(tmp_path):
    first = write_result(
        tmp_path,
        chunk(0, 2, sessions=2),
        encoded([attribution("c1", "s1", 0.25)], [], [attribution("c1", "s2", 0.75)]),
        ChunkOutcome(requests=1, attempts=3, engine_parameters="/data/engine/default.json"),
    )
    second = write_result(
        tmp_path, chunk(1, 2, sessions=1), encoded([attribution("c2", "s3", 1.0)]), ChunkOutcome(2, 2)
    )

    assert first == ChunkResult(0, result_file(0), 2, 1, 3, "/data/engine/default.json")
    assert second.rows == 1 and second.engine_parameters is None
    assert (second.requests, second.attempts) == (2, 2)
    assert (tmp_path / first.file).is_file()
    assert (tmp_path / first.file).parent == tmp_path / "results"
    assert first.file != second.file
    assert list(iter_rows(tmp_path, [first, second])) == [
        ("c1", "s1", 0.125, 0.0625, 0.0625, 0.25),
        ("c1", "s2", 0.375, 0.1875, 0.1875, 0.75),
        ("c2", "s3", 0.5, 0.25, 0.25, 1.0),
    ]
    # each row holds the Attribution's fields in order, shares included
    assert orjson.loads((tmp_path / second.file).read_bytes()) == {
        "chunk": 1,
        "rows": [["c2", "s3", 0.5, 0.25, 0.25, 1.0]],
    }
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
    write_result(tmp_path, info, encoded([attribution("c1", "s1", 0.5)]), ChunkOutcome(1, 1))
    again = write_result(tmp_path, info, encoded([attribution("c1", "s1", 1.0)]), ChunkOutcome(1, 1))
    assert [row[-1] for row in iter_rows(tmp_path, [again])] == [1.0]
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


@pytest.fixture
def attribution_db(db):
    schema.init_schema(db)
    add_conversions(
        db,
        [
            ("c1", "u1", "2023-09-02 12:00:00", 100.0),
            ("c2", "u2", "2023-09-03 12:00:00", 50.0),
            ("c_out", "u3", "2023-08-25 12:00:00", 20.0),
        ],
    )
    db.execute("INSERT INTO attribution_customer_journey VALUES ('c_out', 'sx', 1.0)")
    return db


def test_replace_range_attributions_replaces_the_range(attribution_db):
    db = attribution_db
    first = attributions.replace_range_attributions(
        db,
        "2023-09-01",
        "2023-09-07",
        phased([("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0)]),
        tolerance=1e-3,
        expected_rows=3,
    )
    assert (first.conversions, first.rows) == (2, 3)
    assert first.max_sum_error == pytest.approx(0.0, abs=1e-9)
    assert stored_attributions(db) == [("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0), ("c_out", "sx", 1.0)]

    second = attributions.replace_range_attributions(
        db,
        "2023-09-01",
        "2023-09-07",
        phased(iter([("c1", "s9", 0.5), ("c1", "s2", 0.5)])),
        tolerance=1e-3,
        expected_rows=2,
    )
    assert (second.conversions, second.rows) == (1, 2)
    assert stored_attributions(db) == [("c1", "s2", 0.5), ("c1", "s9", 0.5), ("c_out", "sx", 1.0)]


def test_replace_range_attributions_only_touches_its_range(attribution_db):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), tolerance=1e-3, expected_rows=2
    )
    attributions.replace_range_attributions(
        db, "2023-09-03", "2023-09-03", phased([("c2", "s4", 1.0)]), tolerance=1e-3, expected_rows=1
    )
    assert stored_attributions(db) == [("c1", "s1", 1.0), ("c2", "s4", 1.0), ("c_out", "sx", 1.0)]


def test_replace_range_attributions_accepts_rounding_within_tolerance(attribution_db):
    check = attributions.replace_range_attributions(
        attribution_db,
        "2023-09-01",
        "2023-09-07",
        phased([("c1", "s1", 0.3333), ("c1", "s2", 0.6666)]),
        tolerance=1e-3,
        expected_rows=2,
    )
    assert check.max_sum_error == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "bad_rows",
    [
        [("c1", "s1", 0.5), ("c1", "s2", 0.2), ("c2", "s3", 1.0)],  # c1 sums to 0.7
        [("c1", "s1", 1.0), ("c2", "s3", 1.0), ("c2", "s4", 1.0)],  # c2 sums to 2 (a split journey)
    ],
)
def test_replace_range_attributions_rolls_back_when_sum_is_off(attribution_db, bad_rows):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), tolerance=1e-3, expected_rows=2
    )
    before = stored_attributions(db)
    with pytest.raises(WarehouseError, match="sum of ihc"):
        attributions.replace_range_attributions(
            db, "2023-09-01", "2023-09-07", phased(bad_rows), tolerance=1e-3, expected_rows=len(bad_rows)
        )
    assert stored_attributions(db) == before
    assert not in_transaction(db)


def test_replace_range_attributions_rolls_back_on_duplicate_rows(attribution_db):
    db = attribution_db
    before = stored_attributions(db)
    with pytest.raises(WarehouseError, match="not unique"):
        attributions.replace_range_attributions(
            db,
            "2023-09-01",
            "2023-09-07",
            phased([("c1", "s1", 0.5), ("c1", "s1", 0.5)]),
            tolerance=1e-3,
            expected_rows=2,
        )
    assert stored_attributions(db) == before
    assert not in_transaction(db)


def test_a_not_null_violation_is_not_taken_for_a_duplicate(attribution_db):
    with pytest.raises(WarehouseError) as raised:
        attributions.replace_range_attributions(
            attribution_db, "2023-09-01", "2023-09-07", phased([("c1", None, 1.0)]), tolerance=1e-3, expected_rows=1
        )
    assert "not unique" not in str(raised.value)
    assert raised.value.__cause__ is not None
    assert warehouse.error_meaning(raised.value.__cause__) is None


def test_replace_range_attributions_rolls_back_when_the_row_count_differs(attribution_db):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), tolerance=1e-3, expected_rows=2
    )
    before = stored_attributions(db)
    with pytest.raises(WarehouseError, match="1 attribution rows would be stored for 2 sessions sent"):
        attributions.replace_range_attributions(
            db, "2023-09-01", "2023-09-07", phased([("c1", "s1", 1.0)]), tolerance=1e-3, expected_rows=2
        )
    assert stored_attributions(db) == before


def test_replace_reports_the_earliest_session_date_of_old_and_new_rows(attribution_db):
    db = attribution_db
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-08-20 10:00:00", "A"),
            ("s2", "u1", "2023-08-30 10:00:00", "A"),
            ("s3", "u2", "2023-09-01 10:00:00", "B"),
        ],
    )
    first = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), tolerance=1e-3, expected_rows=2
    )
    assert first.first_session_date == "2023-08-20"
    second = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]), tolerance=1e-3, expected_rows=2
    )
    assert second.first_session_date == "2023-08-20", "the replaced rows' dates count too"
    third = attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]), tolerance=1e-3, expected_rows=2
    )
    assert third.first_session_date == "2023-08-30"
    known = attributions.replace_range_attributions(
        db,
        "2023-09-01",
        "2023-09-07",
        phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]),
        1e-3,
        2,
        rows_first_date="2023-08-29",
    )
    assert known.first_session_date == "2023-08-29", "a date the caller knows is taken, not read back"
    assert report.report_window(RunWindow(DateRange("2023-09-05", "2023-09-07"), 1), "2023-08-01") == (
        "2023-08-01",
        "2023-09-07",
    )


def test_the_phases_are_stored_beside_ihc_and_replaced_by_the_same_rule(attribution_db):
    db = attribution_db
    rows = [
        ("c1", "s1", 1.0, 0.2, 0.0, 0.45),  # initializer, holder, closer, ihc
        ("c1", "s2", 0.0, 0.8, 1.0, 0.55),
        ("c2", "s3", 1.0, 0.0, 1.0, 1.0),  # a single session: no holder mass
    ]
    attributions.replace_range_attributions(db, "2023-09-01", "2023-09-07", rows, tolerance=1e-3, expected_rows=3)
    assert stored_phases(db) == [("c1", "s1", 1.0, 0.2, 0.0), ("c1", "s2", 0.0, 0.8, 1.0), ("c2", "s3", 1.0, 0.0, 1.0)]
    assert stored_attributions(db)[:3] == [("c1", "s1", 0.45), ("c1", "s2", 0.55), ("c2", "s3", 1.0)]
    assert db.columns("attribution_customer_journey") == {"conv_id", "session_id", "ihc"}

    attributions.replace_range_attributions(
        db, "2023-09-03", "2023-09-03", [("c2", "s4", 1.0, 1.0, 1.0, 1.0)], tolerance=1e-3, expected_rows=1
    )
    assert stored_phases(db) == [("c1", "s1", 1.0, 0.2, 0.0), ("c1", "s2", 0.0, 0.8, 1.0), ("c2", "s4", 1.0, 1.0, 1.0)]


@pytest.mark.parametrize(
    ("bad_rows", "named"),
    [
        ([("c1", "s1", 0.5, 1.0, 0.5, 0.5), ("c1", "s2", 0.2, 0.0, 0.5, 0.5)], "initializer by up to 0.3"),
        ([("c1", "s1", 1.0, 0.5, 0.5, 0.5), ("c1", "s2", 0.0, 0.0, 0.0, 0.5)], "closer by up to 0.5"),
        ([("c1", "s1", 1.0, 0.5, 0.0, 0.5), ("c1", "s2", 0.0, 0.0, 1.0, 0.5)], "holder by up to 0.5"),
    ],
)
def test_phase_shares_that_do_not_sum_per_conversion_roll_everything_back(attribution_db, bad_rows, named):
    db = attribution_db
    attributions.replace_range_attributions(
        db, "2023-09-01", "2023-09-07", phased([("c1", "s1", 1.0)]), tolerance=1e-3, expected_rows=1
    )
    before = stored_attributions(db), stored_phases(db)
    with pytest.raises(WarehouseError, match=named) as raised:
        attributions.replace_range_attributions(db, "2023-09-01", "2023-09-07", bad_rows, 1e-3, len(bad_rows))
    assert "nothing was written" in str(raised.value)
    assert (stored_attributions(db), stored_phases(db)) == before
    assert not in_transaction(db)


def test_a_result_row_without_its_phases_is_not_a_valid_result(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / result_file(0)).write_bytes(b'{"chunk":0,"rows":[["c1","s1",1.0]]}')
    with pytest.raises(ResultsError, match="does not hold the 6 fields"):
        list(iter_rows(tmp_path, [ChunkResult(0, result_file(0), rows=1, requests=1, attempts=1)]))
