"""The attributions: per-chunk result files written by the API tasks, and the rows of
attribution_customer_journey (the blended ``ihc``), attribution_phases (the API's initializer,
holder and closer shares of the same sessions) and conversion_journeys (the journeys as sent) of
every conversion a run covers, replaced by the writer task in one checked transaction."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import islice

import orjson

from include.chunks import ChunkInfo
from include.errors import FinalError
from include.ihc_client import Attribution, ChunkOutcome
from include.ledger import LEDGER_COLUMNS, LedgerRow
from include.runfiles import StoragePath, atomic_writer, read_bytes
from include.warehouse import NOT_UNIQUE, Warehouse, WarehouseSetupError, error_meaning


class ResultsError(FinalError, RuntimeError):
    """A chunk's result is missing or does not match its chunk, or the results do not add up."""


@dataclass(frozen=True)
class ChunkResult:
    """What the writer needs to know about one attributed chunk: small enough for XCom."""

    index: int
    file: str  # relative to the run folder
    rows: int
    requests: int
    attempts: int
    # The local server's parameter file, when the local server answered.
    engine_parameters: str | None = None

    def to_xcom(self) -> dict[str, object]:
        return asdict(self)


def result_file(index: int) -> str:
    return f"results/chunk-{index:04d}.json"


class EncodedRows:
    """A chunk's attributions encoded for its result file as each answer is checked (``add`` is
    the client's sink): after the last answer only the file's write is left, and the answers
    are held as compact bytes, not as objects."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.rows = 0

    def add(self, batch: list[Attribution]) -> None:
        if not batch:
            return
        # orjson writes each Attribution (a named tuple) through ``tuple``: no list per row first.
        items = orjson.dumps(batch, default=tuple)[1:-1]
        self.parts.append(b"," + items if self.parts else items)
        self.rows += len(batch)


def write_result(run_dir: StoragePath, chunk: ChunkInfo, rows: EncodedRows, outcome: ChunkOutcome) -> ChunkResult:
    """The chunk's result file, one array of the Attribution fields in order per row, written
    under a temporary name and renamed (include.runfiles.atomic_writer) once the whole chunk is
    attributed: a chunk killed or failing mid-request writes nothing, and a retried one replaces
    its last try's whole."""
    name = result_file(chunk.index)
    with atomic_writer(run_dir / name) as handle:
        handle.write(b'{"chunk":%d,"rows":[' % chunk.index)
        handle.writelines(rows.parts)
        handle.write(b"]}")
    return ChunkResult(chunk.index, name, rows.rows, outcome.requests, outcome.attempts, outcome.engine_parameters)


def check_complete(chunks: Sequence[ChunkInfo], results: Sequence[ChunkResult]) -> None:
    """Every chunk has exactly one result holding as many rows as the chunk has sessions."""
    by_index = {r.index: r for r in results}
    missing = [c.label for c in chunks if c.index not in by_index]
    if missing:
        raise ResultsError(f"{len(missing)} chunks have no result ({', '.join(missing[:5])}); nothing was written")
    if len(by_index) != len(results) or len(results) != len(chunks):
        raise ResultsError(
            f"{len(results)} results for {len(chunks)} chunks (a duplicate or unknown chunk); nothing was written"
        )
    for chunk in chunks:
        if by_index[chunk.index].rows != chunk.sessions:
            raise ResultsError(
                f"{chunk.label}: {by_index[chunk.index].rows} attributed sessions for "
                f"{chunk.sessions} sent; nothing was written"
            )


AttributionRow = tuple[str, str, float, float, float, float]


def iter_rows(run_dir: StoragePath, results: Sequence[ChunkResult]) -> Iterator[AttributionRow]:
    """(conv_id, session_id, initializer, holder, closer, ihc) of every result file, one file in
    memory at a time."""
    for result in results:
        path = run_dir / result.file
        try:
            payload = orjson.loads(read_bytes(path))
            if payload["chunk"] != result.index:
                raise ValueError(f"it holds chunk {payload['chunk']}, not {result.index}")
            rows = [tuple(row) for row in payload["rows"]]
            if any(len(row) != len(Attribution._fields) for row in rows):
                raise ValueError(f"a row does not hold the {len(Attribution._fields)} fields {Attribution._fields}")
        except FileNotFoundError:
            raise ResultsError(f"result file {path} is missing") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"result file {path} is not a valid result: {exc}") from None
        yield from rows


# The conversions a run replaces: those it attributed (processed 1) and those whose stored rows it
# covers without attributing them again (0): dated in its range now, or when they were stored.
RUN_CONVERSIONS = (
    "CREATE TEMP TABLE IF NOT EXISTS run_conversions (conv_id TEXT NOT NULL, processed INTEGER NOT NULL)",
    "DELETE FROM run_conversions",
)
COVERED = (
    "INSERT INTO run_conversions SELECT conv_id, 0 FROM conversions WHERE conv_date BETWEEN :start AND :end",
    "INSERT INTO run_conversions SELECT conv_id, 0 FROM conversion_journeys WHERE conv_date BETWEEN :start AND :end",
)
IN_RUN = "conv_id IN (SELECT conv_id FROM run_conversions)"

# The phases first: a warehouse whose attribution_customer_journey predates them may hold rows
# without phases, never the other way round.
DELETE_RUN_ROWS = tuple(
    f"DELETE FROM {table} WHERE {IN_RUN}"
    for table in ("attribution_phases", "attribution_markov", "attribution_customer_journey", "conversion_journeys")
)

# Stored conversions the run covers and attributes no more: deleted, moved out of its reach, or
# unusable now.
REMOVED = f"""
    SELECT COUNT(*) FROM conversion_journeys j
    WHERE j.{IN_RUN}
      AND NOT EXISTS (SELECT 1 FROM run_conversions r WHERE r.conv_id = j.conv_id AND r.processed = 1)"""

# The conversion dates of the covered stored conversions: each date's Markov model changes.
STORED_DATES = f"SELECT DISTINCT conv_date FROM conversion_journeys WHERE {IN_RUN}"


# A lookup per attributed session by its primary key, written as a correlated subquery so that it
# stays one: on a rerun PostgreSQL plans with the attribution table's statistics of before the last
# write, and as a join it chose to scan every session of the warehouse (2 s at 4.5 M sessions).
RUN_SESSION_DATES = f"""
    SELECT MIN(day), MAX(day) FROM (
        SELECT (SELECT s.event_date FROM session_sources s WHERE s.session_id = a.session_id) AS day
        FROM attribution_customer_journey a
        WHERE a.{IN_RUN}) AS days"""


RUN_ATTRIBUTION_CHECK = f"""
    SELECT COUNT(*), CAST(COALESCE(SUM(n_rows), 0) AS BIGINT), COALESCE(MAX(ABS(total - 1)), 0) FROM (
        SELECT a.conv_id, SUM(a.ihc) AS total, COUNT(*) AS n_rows
        FROM attribution_customer_journey a
        WHERE a.{IN_RUN}
        GROUP BY a.conv_id) AS per_conversion"""


# The API's phase shares sum to 1 per journey like ihc, holder excepted: a journey without a
# holder-engaged session (one of a single session, say) has no holder mass and sums to 0.
RUN_PHASE_CHECK = f"""
    SELECT COUNT(*), COALESCE(MAX(ABS(initializer - 1)), 0), COALESCE(MAX(ABS(closer - 1)), 0),
           COALESCE(MAX(CASE WHEN ABS(holder) < ABS(holder - 1) THEN ABS(holder) ELSE ABS(holder - 1) END), 0)
    FROM (
        SELECT p.conv_id, SUM(p.initializer) AS initializer, SUM(p.holder) AS holder, SUM(p.closer) AS closer
        FROM attribution_phases p
        WHERE p.{IN_RUN}
        GROUP BY p.conv_id) AS per_conversion"""


ATTRIBUTION_COLUMNS = ("conv_id", "session_id", "ihc")
PHASE_COLUMNS = ("conv_id", "session_id", "initializer", "holder", "closer")
PHASES = ("initializer", "closer", "holder")
# Rows inserted per batch into both tables: a batch's rows are held once, as the result file's were.
INSERT_BATCH = 10_000


@dataclass(frozen=True)
class AttributionCheck:
    conversions: int
    rows: int
    max_sum_error: float
    first_session_date: str | None = None
    last_session_date: str | None = None
    # The conversion dates whose stored conversions changed (attributed, moved or removed).
    conversion_dates: tuple[str, ...] = ()
    removed: int = 0


@dataclass(frozen=True)
class WriteResult:
    """What write_attributions stored, and what the run's requests took, for the summary."""

    conversions: int
    rows: int
    max_sum_error: float
    first_session_date: str | None
    chunks: int
    requests: int
    attempts: int
    engine_parameters: list[str]
    last_session_date: str | None = None
    conversion_dates: list[str] = field(default_factory=list)
    removed: int = 0


def replace_attributions(
    db: Warehouse,
    start: str,
    end: str,
    rows: Iterable[AttributionRow],
    ledger: Iterable[LedgerRow],
    tolerance: float,
    expected_rows: int,
    rows_dates: tuple[str | None, str | None] = (None, None),
) -> AttributionCheck:
    """Swap the stored rows of every conversion the run covers for ``rows`` and ``ledger`` in one
    transaction, checking Σ ihc = 1, Σ initializer = Σ closer = 1 and Σ holder = 0 or 1 per
    conversion.

    The run covers the conversions it attributed (``ledger``: its range's and those near it whose
    journey changed) and the stored ones dated in its range, now or when stored: a deleted
    conversion's rows go, a re-dated one's move. Returns the session dates of the old and new
    rows (the report must be rebuilt over them; the new rows' are ``rows_dates`` when the caller
    knows them from the chunk descriptions, else read back) and the conversion dates touched.
    """
    params = {"start": start, "end": end}
    with db.transaction():
        for statement in RUN_CONVERSIONS:
            db.execute(statement)
        ledger_rows = list(ledger)
        db.insert_many("run_conversions", ("conv_id", "processed"), ((r.conv_id, 1) for r in ledger_rows))
        for statement in COVERED:
            db.execute(statement, params)
        old_dates = db.execute(RUN_SESSION_DATES).fetchone()
        removed = db.execute(REMOVED).fetchone()[0]
        stored_dates = {row[0] for row in db.execute(STORED_DATES)}
        for statement in DELETE_RUN_ROWS:
            db.execute(statement)
        try:
            _insert(db, rows)
            db.insert_many("conversion_journeys", LEDGER_COLUMNS, (dataclasses.astuple(r) for r in ledger_rows))
        except db.errors as exc:
            if error_meaning(exc) != NOT_UNIQUE:
                raise db.explain(exc) from exc
            raise WarehouseSetupError(f"attribution rows are not unique per (conv_id, session_id): {exc}") from exc
        check = AttributionCheck(*db.execute(RUN_ATTRIBUTION_CHECK).fetchone())
        if check.rows != expected_rows:
            raise WarehouseSetupError(
                f"{check.rows} attribution rows would be stored for {expected_rows} sessions sent "
                "(a conversion changed since extract?); nothing was written"
            )
        if check.max_sum_error > tolerance:
            raise WarehouseSetupError(
                f"sum of ihc per conversion is off by up to {check.max_sum_error:.6f} "
                f"(tolerance {tolerance}); nothing was written"
            )
        _check_phases(db, tolerance)
        new_dates = rows_dates if all(rows_dates) else db.execute(RUN_SESSION_DATES).fetchone()
    firsts = [d for d in (old_dates[0], new_dates[0]) if d]
    lasts = [d for d in (old_dates[1], new_dates[1]) if d]
    dates = stored_dates | {r.conv_date for r in ledger_rows}
    return AttributionCheck(
        check.conversions,
        check.rows,
        check.max_sum_error,
        min(firsts, default=None),
        max(lasts, default=None),
        tuple(sorted(dates)),
        removed,
    )


def _insert(db: Warehouse, rows: Iterable[AttributionRow]) -> None:
    batches = iter(rows)
    while batch := list(islice(batches, INSERT_BATCH)):
        db.insert_many("attribution_customer_journey", ATTRIBUTION_COLUMNS, (r[:2] + r[5:] for r in batch))
        db.insert_many("attribution_phases", PHASE_COLUMNS, (r[:5] for r in batch))


def _check_phases(db: Warehouse, tolerance: float) -> None:
    conversions, *errors = db.execute(RUN_PHASE_CHECK).fetchone()
    off = [f"{phase} by up to {error:.6f}" for phase, error in zip(PHASES, errors, strict=True) if error > tolerance]
    if off:
        raise WarehouseSetupError(
            f"the phase shares of {conversions} conversions do not sum to 1 per conversion (holder: 0 or 1): "
            f"{', '.join(off)} (tolerance {tolerance}); nothing was written"
        )
