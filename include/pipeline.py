"""The steps of the pipeline as plain functions; each Airflow task calls exactly one.

Arguments and results are small (paths, counts, settings), so they travel by XCom; the data
itself moves through the warehouse and the run's folder.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict
from pathlib import Path

from include import html_report
from include.attributions import (
    ChunkResult,
    EncodedRows,
    check_complete,
    iter_rows,
    replace_range_attributions,
    write_result,
)
from include.chunks import ChunkInfo, effective_chunk_size, read_chunk, write_chunks
from include.export import CSV_FILE, write_csv
from include.extract import CONVERSIONS_FILE, SESSIONS_FILE, extract, read_conversions, read_sessions
from include.html_report import REPORT_FILE, ReportInputs
from include.ihc_client import ApiTarget, ClientSettings, RequestLimits, attribute_journeys
from include.journeys import JourneyStats, build_journeys
from include.model_comparison import credits_by_channel, rebuild_model_comparison
from include.paths import top_paths
from include.report import rebuild_report, report_rows, report_rows_between, report_window
from include.run_config import RunConfig
from include.runfiles import StoragePath, atomic_write_bytes, exclusive_lock, expired_runs, remove_folder
from include.schema import init_schema
from include.settings import MAX_BAD_ROW_SHARE, MAX_JOURNEYS_PER_REQUEST, MAX_MAP_LENGTH, SUM_TOLERANCE, RunWindow
from include.summary import RunSummary
from include.warehouse import Warehouse, WarehouseTarget

log = logging.getLogger(__name__)


def prepare(target: WarehouseTarget, window: RunWindow) -> None:
    with target.open() as db:
        init_schema(db)
    log.info(
        "warehouse %s ready; conversions from %s to %s, look-back %d days",
        target.label,
        window.dates.start,
        window.dates.end,
        window.lookback_days,
    )


def extract_step(target: WarehouseTarget, window: RunWindow, run_dir: StoragePath) -> dict:
    with target.open() as db:
        result = extract(db, window.dates, window.lookback_days, run_dir)
    log.info(
        "extracted %d conversions and %d sessions of their users (look-back %d days)",
        result.conversions,
        result.sessions,
        window.lookback_days,
    )
    return asdict(result)


def journeys_step(
    window: RunWindow,
    extracted: dict,
    run_dir: StoragePath,
    chunk_size: int,
    max_sessions: int,
    max_bad_row_share: float = MAX_BAD_ROW_SHARE.default,
    max_journeys: int = MAX_JOURNEYS_PER_REQUEST.default,
) -> tuple[list[dict], dict]:
    """Chunk descriptions for the mapped task, and the journey statistics for the run summary."""
    stats = JourneyStats()
    journeys = build_journeys(
        read_conversions(run_dir / CONVERSIONS_FILE),
        read_sessions(run_dir / SESSIONS_FILE),
        window.lookback_days,
        max_sessions,
        stats,
    )
    size = effective_chunk_size(extracted["conversions"], chunk_size, MAX_MAP_LENGTH)
    chunks = write_chunks(journeys, run_dir, size, RequestLimits(max_journeys, max_sessions))
    stats.check_share(max_bad_row_share)
    if not stats.conversions_read:
        log.warning("no conversions from %s to %s: nothing to attribute", window.dates.start, window.dates.end)
    log.info(
        "%d journeys (%d sessions) of %d conversions in %d chunks of %d journeys (or up to a request more)",
        stats.journeys,
        stats.sessions,
        stats.conversions,
        len(chunks),
        size,
    )
    return [c.to_xcom() for c in chunks], asdict(stats)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block, back as it was after.

    A chunk allocates hundreds of thousands of small objects without cycles as its journeys are
    decoded and its answers checked; the collector would scan the survivors again and again while
    the answers arrive, each pass stalling the event loop. Reference counting frees them all the
    same.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def attribute_step(chunk: dict, run_dir: StoragePath, target: ApiTarget, settings: ClientSettings) -> dict:
    info = ChunkInfo.from_xcom(chunk)
    log.info("%s: %d sessions to %s", info.label, info.sessions, target.url)
    with collector_paused():
        result = _attribute_chunk(info, run_dir, target, settings)
    log.info(
        "%s: %d sessions attributed in %d requests (%d attempts)",
        info.label,
        result.rows,
        result.requests,
        result.attempts,
    )
    return result.to_xcom()


def _attribute_chunk(info: ChunkInfo, run_dir: StoragePath, target: ApiTarget, settings: ClientSettings) -> ChunkResult:
    """Read, attribute and write one chunk. Its objects are freed when this returns, before the
    collector is back: its first pass then has only the survivors to scan."""
    rows = EncodedRows()
    with closing(read_chunk(run_dir / info.file)) as journeys:
        outcome = attribute_journeys(journeys, target, settings, rows.add)
    return write_result(run_dir, info, rows, outcome)


def write_step(
    target: WarehouseTarget, window: RunWindow, run_dir: StoragePath, chunks: list[dict], results: list[dict]
) -> dict:
    infos = [ChunkInfo.from_xcom(c) for c in chunks]
    chunk_results = sorted((ChunkResult(**r) for r in results), key=lambda r: r.index)
    check_complete(infos, chunk_results)
    expected = sum(c.sessions for c in infos)
    first_dates = [c.first_session_date for c in infos]
    rows_first_date = None if None in first_dates else min(first_dates, default=None)
    with target.open() as db:
        check = replace_range_attributions(
            db,
            window.dates.start,
            window.dates.end,
            iter_rows(run_dir, chunk_results),
            SUM_TOLERANCE,
            expected,
            rows_first_date,
        )
    log.info(
        "stored %d attribution rows of %d conversions; max |sum ihc - 1| = %.6f",
        check.rows,
        check.conversions,
        check.max_sum_error,
    )
    return {
        **asdict(check),
        "chunks": len(infos),
        "requests": sum(r.requests for r in chunk_results),
        "attempts": sum(r.attempts for r in chunk_results),
        "engine_parameters": sorted({r.engine_parameters for r in chunk_results if r.engine_parameters}),
    }


def report_step(target: WarehouseTarget, window: RunWindow, written: dict | None = None) -> dict:
    first_changed = (written or {}).get("first_session_date")
    first, last = report_window(window, first_changed)
    with target.open() as db:
        totals = rebuild_report(db, first, last)
        rebuild_model_comparison(db, first, last)
    log.info(
        "channel_reporting and channel_model_comparison recomputed for %s .. %s: %d rows", first, last, totals.rows
    )
    return {**asdict(totals), "first": first, "last": last}


def export_step(
    target: WarehouseTarget,
    output_dir: Path,
    run_dir: StoragePath,
    config: RunConfig,
    extracted: dict,
    stats: dict,
    written: dict,
    report: dict,
) -> dict:
    """The CSV and the HTML report, latest in ``output_dir`` and this run's in its folder, and
    the run summary."""
    csv_path, html_path = output_dir / CSV_FILE, output_dir / REPORT_FILE
    summary = _summary(config.window, extracted, stats, written, report, output_dir, run_dir)
    # Read and write under one lock: a run that read the tables earlier cannot replace the files
    # of a run that read them later.
    with exclusive_lock(output_dir), target.open() as db:
        rows = write_csv(report_rows(db), csv_path, run_dir / CSV_FILE)
        page = html_report.render(_report_inputs(db, config, summary, report))
        for path in (html_path, run_dir / REPORT_FILE):
            atomic_write_bytes(path, page)
    log.info("wrote %d report rows to %s and %s", rows, csv_path, summary.run_csv_path)
    log.info("HTML report (%d kB): %s and %s", len(page) // 1024, html_path, summary.run_html_path)
    path = summary.save(run_dir)
    log.info("run summary (%s):\n%s", path, summary.text())
    return asdict(summary)


def _report_inputs(db: Warehouse, config: RunConfig, summary: RunSummary, report: dict) -> ReportInputs:
    first, last = report["first"], report["last"]
    return ReportInputs(
        summary=summary,
        window=(first, last),
        channel_rows=report_rows_between(db, first, last),
        credits=credits_by_channel(db, config.window.dates),
        paths=top_paths(db, config.window.dates),
        parameters=html_report.run_parameters(config, summary, (first, last)),
    )


def _summary(
    window: RunWindow,
    extracted: dict,
    stats: dict,
    written: dict,
    report: dict,
    output_dir: Path,
    run_dir: StoragePath,
) -> RunSummary:
    return RunSummary(
        start=window.dates.start,
        end=window.dates.end,
        conversions=stats["conversions"],
        attributed=written["conversions"],
        without_sessions=stats["without_sessions"],
        without_sessions_ids=stats["without_sessions_ids"],
        row_issues=stats["row_issues"],
        chunks=written["chunks"],
        requests=written["requests"],
        attempts=written["attempts"],
        sessions_sent=stats["sessions"],
        trimmed_journeys=stats["trimmed_journeys"],
        max_sum_error=written["max_sum_error"],
        revenue=extracted["revenue"],
        report_rows=report["rows"],
        report_cost=report["cost"],
        report_ihc_revenue=report["ihc_revenue"],
        report_first=report["first"],
        report_last=report["last"],
        csv_path=str(output_dir / CSV_FILE),
        engine_parameters=written.get("engine_parameters", []),
        run_csv_path=str(run_dir / CSV_FILE),
        html_path=str(output_dir / REPORT_FILE),
        run_html_path=str(run_dir / REPORT_FILE),
    )


def cleanup_step(run_dir: StoragePath, retention_days: int, now: float | None = None) -> list[str]:
    """Remove the run folders beside this run's that nothing touched for ``retention_days``."""
    expired = expired_runs(run_dir.parent, run_dir.name, retention_days, time.time() if now is None else now)
    for folder in expired:
        remove_folder(folder)
        log.info("removed run folder %s (untouched for more than %d days)", folder, retention_days)
    if not expired:
        log.info("no run folder older than %d days beside %s", retention_days, run_dir)
    return [folder.name for folder in expired]
