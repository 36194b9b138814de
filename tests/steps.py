"""The pipeline's steps chained by hand, without Airflow: the same data flow as the DAG."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from include import pipeline, run_config
from include.attributions import ChunkResult
from include.chunks import ChunkInfo
from include.ihc_client import ApiTarget, ClientSettings
from include.run_config import RunContext
from include.runfiles import StoragePath
from include.settings import LOCAL_API_KEY, RunWindow
from include.summary import RunSummary
from include.warehouse import WarehouseTarget, sqlite_target


def run_context(
    db: Path | WarehouseTarget,
    run_dir: StoragePath,
    url: str,
    window: RunWindow,
    output_dir: Path | None = None,
    client: ClientSettings | None = None,
    **variables: object,
) -> RunContext:
    """A run's context as the first task builds it: Variables by name (``ihc_`` left out)."""
    values = {f"ihc_{name}": value for name, value in variables.items()}
    values["ihc_lookback_days"] = window.lookback_days
    config = run_config.resolve(window.dates, values.get, ApiTarget(url, "", "default"))
    if client is not None:
        config = replace(config, client=client)
    target = db if isinstance(db, WarehouseTarget) else sqlite_target(db)
    return RunContext(config, run_dir, target, output_dir or Path(str(run_dir)) / "output", lambda: LOCAL_API_KEY)


@dataclass(frozen=True)
class StepsRun:
    chunks: list[ChunkInfo]
    results: list[ChunkResult]
    summary: RunSummary


def run_all(run: RunContext) -> StepsRun:
    pipeline.prepare(run)
    extracted = pipeline.extract_step(run)
    journeys = pipeline.journeys_step(run, extracted)
    results = [pipeline.attribute_step(run, chunk) for chunk in journeys.chunks]
    written = pipeline.write_step(run, journeys.chunks, results)
    report = pipeline.report_step(run, written)
    summary = pipeline.export_step(run, extracted, journeys.stats, written, report)
    return StepsRun(journeys.chunks, results, summary)
