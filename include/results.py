"""Per-chunk attribution result files: written by the API task, read by the writer task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from include.chunks import ChunkInfo
from include.ihc_client import ChunkOutcome
from include.runfiles import atomic_write_bytes


class ResultsError(RuntimeError):
    """A chunk's result is missing or does not match its chunk."""


@dataclass(frozen=True)
class ChunkResult:
    """What the writer needs to know about one attributed chunk: small enough for XCom."""

    index: int
    path: str
    rows: int
    requests: int
    attempts: int

    def to_xcom(self) -> dict[str, object]:
        return asdict(self)


def result_path(run_dir: Path, index: int) -> Path:
    return run_dir / "results" / f"chunk-{index:04d}.json"


def write_result(run_dir: Path, chunk: ChunkInfo, outcome: ChunkOutcome) -> ChunkResult:
    path = result_path(run_dir, chunk.index)
    rows = [[a.conversion_id, a.session_id, a.initializer, a.holder, a.closer, a.ihc] for a in outcome.attributions]
    atomic_write_bytes(path, orjson.dumps({"chunk": chunk.index, "rows": rows}))
    return ChunkResult(chunk.index, str(path), len(rows), outcome.requests, outcome.attempts)


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


def iter_rows(results: Sequence[ChunkResult]) -> Iterator[tuple[str, str, float]]:
    """(conv_id, session_id, ihc) of every result file, one file in memory at a time."""
    for result in results:
        try:
            payload = orjson.loads(Path(result.path).read_bytes())
            if payload["chunk"] != result.index:
                raise ValueError(f"it holds chunk {payload['chunk']}, not {result.index}")
            rows = [(conv_id, session_id, ihc) for conv_id, session_id, *_, ihc in payload["rows"]]
        except FileNotFoundError:
            raise ResultsError(f"result file {result.path} is missing") from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"result file {result.path} is not a valid result: {exc}") from None
        yield from rows
