"""Per-chunk attribution result files: written by the API task, read by the writer task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import orjson

from include.chunks import ChunkInfo
from include.ihc_client import ChunkOutcome
from include.runfiles import StoragePath, atomic_write_bytes, read_bytes


class ResultsError(RuntimeError):
    """A chunk's result is missing or does not match its chunk."""


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


def write_result(run_dir: StoragePath, chunk: ChunkInfo, outcome: ChunkOutcome) -> ChunkResult:
    name = result_file(chunk.index)
    rows = [[a.conversion_id, a.session_id, a.initializer, a.holder, a.closer, a.ihc] for a in outcome.attributions]
    atomic_write_bytes(run_dir / name, orjson.dumps({"chunk": chunk.index, "rows": rows}))
    return ChunkResult(chunk.index, name, len(rows), outcome.requests, outcome.attempts, outcome.engine_parameters)


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


def iter_rows(run_dir: StoragePath, results: Sequence[ChunkResult]) -> Iterator[tuple[str, str, float]]:
    """(conv_id, session_id, ihc) of every result file, one file in memory at a time."""
    for result in results:
        path = run_dir / result.file
        try:
            payload = orjson.loads(read_bytes(path))
            if payload["chunk"] != result.index:
                raise ValueError(f"it holds chunk {payload['chunk']}, not {result.index}")
            rows = [(conv_id, session_id, ihc) for conv_id, session_id, *_, ihc in payload["rows"]]
        except FileNotFoundError:
            raise ResultsError(f"result file {path} is missing") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"result file {path} is not a valid result: {exc}") from None
        yield from rows
