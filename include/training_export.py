"""The training export: journeys as one CSV file, for the IHC web app to train a conversion type on.

The service trains its parameters per conversion type from a file of that type's journeys; its
API overview says the file is CSV or JSON but publishes no columns. So the file has the API's own
per-session fields (``REQUEST_FIELDS``, the body of ``POST /v1/compute_ihc``), one row per session,
each journey's sessions in time order and its last with ``conversion`` = 1: the rows the pipeline
sends, so a type trained on them scores the same kind of journeys. UTF-8, RFC 4180 (comma, CRLF,
a field quoted only when it holds a comma, a quote or a line break, quotes doubled).

Streamed a journey at a time to a temporary name and renamed, like every other output: a reader
(or the upload) never sees half a file, and a failed export leaves an earlier file as it was.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

from include.chunks import read_chunk
from include.errors import FinalError
from include.ihc_client import REQUEST_FIELDS, ApiJourney, journey_rows
from include.journeys import Journey
from include.runfiles import StoragePath, atomic_writer

TRAINING_CSV_FILE = "training_journeys.csv"
HEADER = tuple(REQUEST_FIELDS)


class EmptyExportError(FinalError, ValueError):
    """No journey to export: a file without journeys trains nothing, so none was written."""


@dataclass(frozen=True)
class TrainingExport:
    path: str
    journeys: int
    sessions: int


def write_training_csv(journeys: Iterable[Journey], path: StoragePath) -> TrainingExport:
    """The journeys (as ``include.journeys`` builds them) as the training CSV at ``path``."""
    return _write(map(journey_rows, journeys), path)


def write_training_csv_from_chunks(chunk_files: Iterable[StoragePath], path: StoragePath) -> TrainingExport:
    """The journeys of a run's chunk files, in their order, as the training CSV at ``path``:
    the same bytes as ``write_training_csv`` on the journeys the chunks were written from."""
    return _write(_chunk_journeys(chunk_files), path)


def _chunk_journeys(chunk_files: Iterable[StoragePath]) -> Iterator[ApiJourney]:
    for file in chunk_files:
        with closing(read_chunk(file)) as journeys:
            yield from journeys


def _write(journeys: Iterable[ApiJourney], path: StoragePath) -> TrainingExport:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(HEADER)
    journey_count = session_count = 0
    with atomic_writer(path) as handle:
        for journey in journeys:
            writer.writerows([row[field] for field in HEADER] for row in journey)
            handle.write(text.getvalue().encode("utf-8"))
            text.seek(0)
            text.truncate()
            journey_count += 1
            session_count += len(journey)
        if not journey_count:
            raise EmptyExportError(f"no journeys to export to {path}: nothing was written")
    return TrainingExport(str(path), journey_count, session_count)
