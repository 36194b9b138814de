"""The attributions: per-chunk result files, and the rows of a run's conversions replaced in one
checked transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

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
from include.ledger import LedgerRow
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


CONVERSIONS = [
    ("c1", "u1", "2023-09-02 12:00:00", 100.0),
    ("c2", "u2", "2023-09-03 12:00:00", 50.0),
    ("c_out", "u3", "2023-08-25 12:00:00", 20.0),
]
RANGE = ("2023-09-01", "2023-09-07")
MARKOV_COLUMNS = ("conv_id", "session_id", "credit")


def ledger_of(rows, conversions=CONVERSIONS) -> list[LedgerRow]:
    """The run's ledger as the journey step writes it: one row per conversion of ``rows`` (conv_id
    first), its timestamp from ``conversions`` ((conv_id, user_id, timestamp, revenue) rows), its
    session count, and a dummy fingerprint."""
    timestamps = {conv_id: timestamp for conv_id, _, timestamp, _ in conversions}
    sessions = Counter(row[0] for row in rows)
    return [
        LedgerRow(conv_id, timestamps[conv_id], timestamps[conv_id][:10], count, f"fingerprint-{conv_id}")
        for conv_id, count in sessions.items()
    ]


def replace(db, start, end, rows, *, expected_rows, tolerance=1e-3, conversions=CONVERSIONS, **kwargs):
    """replace_attributions with the ledger of ``rows``."""
    rows = list(rows)
    ledger = ledger_of(rows, conversions)
    return attributions.replace_attributions(db, start, end, rows, ledger, tolerance, expected_rows, **kwargs)


def stored_journeys(db):
    return sorted(db.execute("SELECT conv_id, conv_timestamp, conv_date, sessions FROM conversion_journeys"))


def stored_markov(db):
    return sorted(db.execute("SELECT conv_id, session_id, credit FROM attribution_markov"))


def stored(db):
    """Every table the write replaces."""
    return stored_attributions(db), stored_phases(db), stored_markov(db), stored_journeys(db)


@pytest.fixture
def attribution_db(db):
    schema.init_schema(db)
    add_conversions(db, CONVERSIONS)
    db.execute("INSERT INTO attribution_customer_journey VALUES ('c_out', 'sx', 1.0)")
    return db


def test_replace_attributions_replaces_the_run_conversions(attribution_db):
    db = attribution_db
    rows = phased([("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0)])
    first = attributions.replace_attributions(db, *RANGE, rows, ledger_of(rows), tolerance=1e-3, expected_rows=3)
    assert (first.conversions, first.rows) == (2, 3)
    assert first.max_sum_error == pytest.approx(0.0, abs=1e-9)
    assert (first.conversion_dates, first.removed) == (("2023-09-02", "2023-09-03"), 0)
    assert stored_attributions(db) == [("c1", "s1", 0.4), ("c1", "s2", 0.6), ("c2", "s3", 1.0), ("c_out", "sx", 1.0)]
    assert stored_journeys(db) == [
        ("c1", "2023-09-02 12:00:00", "2023-09-02", 2),
        ("c2", "2023-09-03 12:00:00", "2023-09-03", 1),
    ], "the ledger rows are stored"

    rows = phased([("c1", "s9", 0.5), ("c1", "s2", 0.5)])
    second = attributions.replace_attributions(
        db, *RANGE, iter(rows), iter(ledger_of(rows)), tolerance=1e-3, expected_rows=2
    )
    assert (second.conversions, second.rows) == (1, 2)
    assert stored_attributions(db) == [("c1", "s2", 0.5), ("c1", "s9", 0.5), ("c_out", "sx", 1.0)]
    # c2 is dated in the range and was not attributed again: its rows and its ledger row go
    assert stored_journeys(db) == [("c1", "2023-09-02 12:00:00", "2023-09-02", 2)]
    assert (second.conversion_dates, second.removed) == (("2023-09-02", "2023-09-03"), 1)


def test_replace_attributions_only_touches_its_range_and_ledger(attribution_db):
    db = attribution_db
    replace(db, *RANGE, phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    check = replace(db, "2023-09-03", "2023-09-03", phased([("c2", "s4", 1.0)]), expected_rows=1)
    assert stored_attributions(db) == [("c1", "s1", 1.0), ("c2", "s4", 1.0), ("c_out", "sx", 1.0)]
    assert [row[0] for row in stored_journeys(db)] == ["c1", "c2"]
    assert (check.conversions, check.conversion_dates, check.removed) == (1, ("2023-09-03",), 0)


def test_replace_attributions_accepts_rounding_within_tolerance(attribution_db):
    check = replace(attribution_db, *RANGE, phased([("c1", "s1", 0.3333), ("c1", "s2", 0.6666)]), expected_rows=2)
    assert check.max_sum_error == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "bad_rows",
    [
        [("c1", "s1", 0.5), ("c1", "s2", 0.2), ("c2", "s3", 1.0)],  # c1 sums to 0.7
        [("c1", "s1", 1.0), ("c2", "s3", 1.0), ("c2", "s4", 1.0)],  # c2 sums to 2 (a split journey)
    ],
)
def test_replace_attributions_rolls_back_when_sum_is_off(attribution_db, bad_rows):
    db = attribution_db
    replace(db, *RANGE, phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    before = stored(db)
    with pytest.raises(WarehouseError, match="sum of ihc"):
        replace(db, *RANGE, phased(bad_rows), expected_rows=len(bad_rows))
    assert stored(db) == before
    assert not in_transaction(db)


def test_replace_attributions_rolls_back_on_duplicate_rows(attribution_db):
    db = attribution_db
    before = stored(db)
    with pytest.raises(WarehouseError, match="not unique"):
        replace(db, *RANGE, phased([("c1", "s1", 0.5), ("c1", "s1", 0.5)]), expected_rows=2)
    assert stored(db) == before
    assert not in_transaction(db)


def test_a_not_null_violation_is_not_taken_for_a_duplicate(attribution_db):
    with pytest.raises(WarehouseError) as raised:
        replace(attribution_db, *RANGE, phased([("c1", None, 1.0)]), expected_rows=1)
    assert "not unique" not in str(raised.value)
    assert raised.value.__cause__ is not None
    assert warehouse.error_meaning(raised.value.__cause__) is None


def test_replace_attributions_rolls_back_when_the_row_count_differs(attribution_db):
    db = attribution_db
    replace(db, *RANGE, phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    before = stored(db)
    with pytest.raises(WarehouseError, match="1 attribution rows would be stored for 2 sessions sent"):
        replace(db, *RANGE, phased([("c1", "s1", 1.0)]), expected_rows=2)
    assert stored(db) == before


def test_replace_reports_the_session_dates_of_old_and_new_rows(attribution_db):
    db = attribution_db
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-08-20 10:00:00", "A"),
            ("s2", "u1", "2023-08-30 10:00:00", "A"),
            ("s3", "u2", "2023-09-01 10:00:00", "B"),
        ],
    )
    first = replace(db, *RANGE, phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    assert (first.first_session_date, first.last_session_date) == ("2023-08-20", "2023-09-01")
    second = replace(db, *RANGE, phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    assert second.first_session_date == "2023-08-20", "the replaced rows' dates count too"
    third = replace(db, *RANGE, phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    assert (third.first_session_date, third.last_session_date) == ("2023-08-30", "2023-09-01")
    known = replace(
        db,
        *RANGE,
        phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]),
        expected_rows=2,
        rows_dates=("2023-08-29", "2023-09-02"),
    )
    assert (known.first_session_date, known.last_session_date) == ("2023-08-29", "2023-09-02"), (
        "dates the caller knows are taken, not read back"
    )
    assert report.report_window(RunWindow(DateRange("2023-09-05", "2023-09-07"), 1), "2023-08-01") == (
        "2023-08-01",
        "2023-09-07",
    )
    assert report.report_window(RunWindow(DateRange("2023-09-05", "2023-09-07"), 1), "2023-08-01", "2023-09-10") == (
        "2023-08-01",
        "2023-09-10",
    )


def test_the_phases_are_stored_beside_ihc_and_replaced_by_the_same_rule(attribution_db):
    db = attribution_db
    rows = [
        ("c1", "s1", 1.0, 0.2, 0.0, 0.45),  # initializer, holder, closer, ihc
        ("c1", "s2", 0.0, 0.8, 1.0, 0.55),
        ("c2", "s3", 1.0, 0.0, 1.0, 1.0),  # a single session: no holder mass
    ]
    replace(db, *RANGE, rows, expected_rows=3)
    assert stored_phases(db) == [("c1", "s1", 1.0, 0.2, 0.0), ("c1", "s2", 0.0, 0.8, 1.0), ("c2", "s3", 1.0, 0.0, 1.0)]
    assert stored_attributions(db)[:3] == [("c1", "s1", 0.45), ("c1", "s2", 0.55), ("c2", "s3", 1.0)]
    assert db.columns("attribution_customer_journey") == {"conv_id", "session_id", "ihc"}

    replace(db, "2023-09-03", "2023-09-03", [("c2", "s4", 1.0, 1.0, 1.0, 1.0)], expected_rows=1)
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
    replace(db, *RANGE, phased([("c1", "s1", 1.0)]), expected_rows=1)
    before = stored(db)
    with pytest.raises(WarehouseError, match=named) as raised:
        attributions.replace_attributions(db, *RANGE, bad_rows, ledger_of(bad_rows), 1e-3, len(bad_rows))
    assert "nothing was written" in str(raised.value)
    assert stored(db) == before
    assert not in_transaction(db)


def test_a_deleted_conversion_is_removed_by_a_run_over_its_stored_date_only(attribution_db):
    """A conversion gone from conversions is no run's to attribute: the run over the date it was
    stored with removes its rows (all four tables); a run over other dates keeps them."""
    db = attribution_db
    gone = ("c_gone", "u4", "2023-09-04 12:00:00", 30.0)
    add_conversions(db, [gone])
    rows = phased([("c1", "s1", 1.0), ("c_gone", "s5", 0.5), ("c_gone", "s6", 0.5)])
    replace(db, *RANGE, rows, expected_rows=3, conversions=[*CONVERSIONS, gone])
    markov = [("c1", "s1", 1.0), ("c_gone", "s5", 0.7), ("c_gone", "s6", 0.3)]
    db.insert_many("attribution_markov", MARKOV_COLUMNS, markov)
    db.execute("DELETE FROM conversions WHERE conv_id = 'c_gone'")

    elsewhere = replace(db, "2023-08-20", "2023-08-31", phased([("c_out", "sx", 1.0)]), expected_rows=1)
    assert (elsewhere.conversions, elsewhere.removed, elsewhere.conversion_dates) == (1, 0, ("2023-08-25",))
    attributions_before, phases_before, markov_before, journeys_before = stored(db)
    assert [r for r in attributions_before if r[0] == "c_gone"] == [("c_gone", "s5", 0.5), ("c_gone", "s6", 0.5)]
    assert [r[:2] for r in phases_before if r[0] == "c_gone"] == [("c_gone", "s5"), ("c_gone", "s6")]
    assert [r for r in markov_before if r[0] == "c_gone"] == [("c_gone", "s5", 0.7), ("c_gone", "s6", 0.3)]
    assert ("c_gone", "2023-09-04 12:00:00", "2023-09-04", 2) in journeys_before

    over = replace(db, *RANGE, phased([("c1", "s1", 1.0)]), expected_rows=1)
    assert (over.conversions, over.rows, over.removed) == (1, 1, 1)
    assert over.conversion_dates == ("2023-09-02", "2023-09-04"), "the removed conversion's date changed too"
    assert stored_attributions(db) == [("c1", "s1", 1.0), ("c_out", "sx", 1.0)]
    assert [r[:2] for r in stored_phases(db)] == [("c1", "s1"), ("c_out", "sx")]
    assert stored_markov(db) == [], "the run's conversions are scored again, the gone one no more"
    assert [r[0] for r in stored_journeys(db)] == ["c1", "c_out"]


def test_a_conversion_moved_out_of_the_range_in_the_run_ledger_is_replaced(attribution_db):
    """c1 moved from 09-02 to 09-10: the run over the range it was stored in attributes it again
    (the extract returns it as a stored conversion near the range), so its old rows go and its
    new ones are stored, and the session dates returned span both."""
    db = attribution_db
    add_sessions(
        db,
        [
            ("s1", "u1", "2023-08-20 10:00:00", "A"),
            ("s2", "u1", "2023-09-09 10:00:00", "A"),
            ("s3", "u2", "2023-09-01 10:00:00", "B"),
        ],
    )
    replace(db, *RANGE, phased([("c1", "s1", 1.0), ("c2", "s3", 1.0)]), expected_rows=2)
    db.execute("UPDATE conversions SET conv_date = '2023-09-10', conv_time = '09:00:00' WHERE conv_id = 'c1'")
    moved = [("c1", "u1", "2023-09-10 09:00:00", 100.0), *CONVERSIONS[1:]]

    before = stored(db)
    with pytest.raises(WarehouseError, match="sum of ihc"):
        replace(db, *RANGE, phased([("c1", "s2", 0.5), ("c2", "s3", 1.0)]), expected_rows=2, conversions=moved)
    assert stored(db) == before, "the checks cover the run's conversions, dated in its range or not"

    check = replace(db, *RANGE, phased([("c1", "s2", 1.0), ("c2", "s3", 1.0)]), expected_rows=2, conversions=moved)
    assert (check.conversions, check.rows, check.removed) == (2, 2, 0)
    assert stored_attributions(db) == [("c1", "s2", 1.0), ("c2", "s3", 1.0), ("c_out", "sx", 1.0)]
    assert [r[:2] for r in stored_phases(db)] == [("c1", "s2"), ("c2", "s3")]
    assert stored_journeys(db) == [
        ("c1", "2023-09-10 09:00:00", "2023-09-10", 1),
        ("c2", "2023-09-03 12:00:00", "2023-09-03", 1),
    ]
    assert (check.first_session_date, check.last_session_date) == ("2023-08-20", "2023-09-09"), (
        "the old rows' first date, the new rows' last"
    )
    assert check.conversion_dates == ("2023-09-02", "2023-09-03", "2023-09-10")

    # A later run over the new date covers c1 by its date now; the old range's run no more.
    later = replace(db, "2023-09-08", "2023-09-14", phased([("c1", "s2", 1.0)]), expected_rows=1, conversions=moved)
    assert (later.conversions, later.removed, later.conversion_dates) == (1, 0, ("2023-09-10",))
    again = replace(db, *RANGE, phased([("c2", "s3", 1.0)]), expected_rows=1)
    assert (again.conversions, again.removed, again.conversion_dates) == (1, 0, ("2023-09-03",))
    assert stored_attributions(db) == [("c1", "s2", 1.0), ("c2", "s3", 1.0), ("c_out", "sx", 1.0)]


def test_a_result_row_without_its_phases_is_not_a_valid_result(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / result_file(0)).write_bytes(b'{"chunk":0,"rows":[["c1","s1",1.0]]}')
    with pytest.raises(ResultsError, match="does not hold the 6 fields"):
        list(iter_rows(tmp_path, [ChunkResult(0, result_file(0), rows=1, requests=1, attempts=1)]))
