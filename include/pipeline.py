"""The steps of the pipeline as plain functions; each Airflow task calls exactly one.

Every step takes the run's context (configuration, run folder, warehouse) and returns a small
typed result (paths, counts), which travels by XCom; the data itself moves through the warehouse
and the run's folder.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field

from include import html_report, publish
from include.attributions import (
    ChunkResult,
    EncodedRows,
    WriteResult,
    check_complete,
    iter_rows,
    replace_attributions,
    write_result,
)
from include.chunks import ChunkInfo, effective_chunk_size, read_chunk, write_chunks
from include.export import CSV_FILE, ROLES_CSV_FILE, report_csv, roles_csv
from include.extract import (
    CONVERSIONS_FILE,
    SESSIONS_FILE,
    STORED_FILE,
    ExtractResult,
    extract,
    read_conversions,
    read_sessions,
    read_stored_journeys,
)
from include.html_report import REPORT_FILE, ReportInputs
from include.ihc_client import ApiTarget, ClientSettings, RequestLimits, attribute_journeys
from include.journeys import JourneyStats, build_journeys
from include.ledger import read_ledger, selection
from include.markov import refresh as refresh_markov
from include.model_comparison import credits_between, credits_by_channel, rebuild_model_comparison
from include.paths import top_paths
from include.report import rebuild_report, report_rows, report_rows_between, report_window
from include.roles import rebuild_roles, role_rows, role_rows_between
from include.run_config import RunConfig, RunContext
from include.runfiles import StoragePath, atomic_write_bytes, expired_runs, read_bytes, remove_folder
from include.schema import init_schema
from include.settings import MAX_MAP_LENGTH, SUM_TOLERANCE
from include.summary import SUMMARY_FILE, RunSummary
from include.training_export import TRAINING_CSV_FILE, write_training_csv_from_chunks
from include.warehouse import Warehouse

log = logging.getLogger(__name__)


def prepare(run: RunContext) -> RunConfig:
    """Create the output tables and indexes if missing; the configuration the later tasks get."""
    with run.warehouse.open() as db:
        init_schema(db)
    log.info(
        "warehouse %s ready; conversions from %s to %s, look-back %d days",
        run.warehouse.label,
        run.window.dates.start,
        run.window.dates.end,
        run.window.lookback_days,
    )
    return run.config


def extract_step(run: RunContext) -> ExtractResult:
    with run.warehouse.open() as db:
        result = extract(db, run.window.dates, run.window.lookback_days, run.run_dir)
    log.info(
        "extracted %d conversions and %d sessions of their users (look-back %d days)",
        result.conversions,
        result.sessions,
        run.window.lookback_days,
    )
    return result


@dataclass(frozen=True)
class Journeys:
    """The chunk files for the mapped task, and the journey statistics for the run summary."""

    chunks: list[ChunkInfo]
    stats: JourneyStats = field(default_factory=JourneyStats)

    def to_xcom(self) -> list[dict[str, object]]:
        """The chunk list: what the mapped task expands over."""
        return [c.to_xcom() for c in self.chunks]

    def extra_xcom(self) -> dict[str, object]:
        """Published beside it under their own keys (a mapped task expands over a return value only)."""
        return {"stats": asdict(self.stats)}


def journeys_step(run: RunContext, extracted: ExtractResult) -> Journeys:
    config = run.config
    stats = JourneyStats()
    stored = read_stored_journeys(run.run_dir / STORED_FILE)
    size = effective_chunk_size(extracted.conversions, config.chunk_size, MAX_MAP_LENGTH)
    limits = RequestLimits(config.client.max_journeys_per_request, config.client.max_sessions_per_request)
    with selection(run.run_dir, stored, config.reprocess, stats) as select:
        journeys = build_journeys(
            read_conversions(run.run_dir / CONVERSIONS_FILE),
            read_sessions(run.run_dir / SESSIONS_FILE),
            run.window.lookback_days,
            config.client.max_sessions_per_request,
            stats,
            select,
        )
        chunks = write_chunks(journeys, run.run_dir, size, limits)
    stats.check_share(config.max_bad_row_share)
    if config.export_journeys and chunks:
        _export_journeys(run, chunks)
    if not stats.conversions_read:
        log.warning("no conversions from %s to %s: nothing to attribute", run.window.dates.start, run.window.dates.end)
    for reason, count in sorted(stats.reattributed.items()):
        log.info("%d conversions dated outside the range attributed again: %s", count, reason)
    if stored:
        log.info(
            "%d stored conversions near the range compared with their journeys now; %d attributed again",
            len(stored),
            sum(stats.reattributed.values()),
        )
    log.info(
        "%d journeys (%d sessions) of %d conversions in %d chunks of %d journeys (or up to a request more)",
        stats.journeys,
        stats.sessions,
        stats.conversions,
        len(chunks),
        size,
    )
    return Journeys(chunks, stats)


def _export_journeys(run: RunContext, chunks: list[ChunkInfo]) -> None:
    exported = write_training_csv_from_chunks([run.run_dir / c.file for c in chunks], run.run_dir / TRAINING_CSV_FILE)
    latest = run.output_dir / TRAINING_CSV_FILE
    atomic_write_bytes(latest, read_bytes(run.run_dir / TRAINING_CSV_FILE))
    log.info(
        "training file: %d journeys (%d sessions) in %s and %s",
        exported.journeys,
        exported.sessions,
        exported.path,
        latest,
    )


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


def attribute_step(run: RunContext, chunk: ChunkInfo) -> ChunkResult:
    target = run.api()
    log.info("%s: %d sessions to %s", chunk.label, chunk.sessions, target.url)
    with collector_paused():
        result = _attribute_chunk(chunk, run.run_dir, target, run.config.client)
    log.info(
        "%s: %d sessions attributed in %d requests (%d attempts)",
        chunk.label,
        result.rows,
        result.requests,
        result.attempts,
    )
    return result


def _attribute_chunk(info: ChunkInfo, run_dir: StoragePath, target: ApiTarget, settings: ClientSettings) -> ChunkResult:
    """Read, attribute and write one chunk. Its objects are freed when this returns, before the
    collector is back: its first pass then has only the survivors to scan."""
    rows = EncodedRows()
    with closing(read_chunk(run_dir / info.file)) as journeys:
        outcome = attribute_journeys(journeys, target, settings, rows.add)
    return write_result(run_dir, info, rows, outcome)


def write_step(run: RunContext, chunks: list[ChunkInfo], results: list[ChunkResult]) -> WriteResult:
    ordered = sorted(results, key=lambda r: r.index)
    check_complete(chunks, ordered)
    expected = sum(c.sessions for c in chunks)
    with run.warehouse.open() as db:
        check = replace_attributions(
            db,
            run.window.dates.start,
            run.window.dates.end,
            iter_rows(run.run_dir, ordered),
            read_ledger(run.run_dir),
            SUM_TOLERANCE,
            expected,
            _session_dates(chunks),
        )
    log.info(
        "stored %d attribution rows of %d conversions; max |sum ihc - 1| = %.6f",
        check.rows,
        check.conversions,
        check.max_sum_error,
    )
    if check.removed:
        log.warning("removed the rows of %d stored conversions deleted or moved out of reach", check.removed)
    return WriteResult(
        **{**asdict(check), "conversion_dates": list(check.conversion_dates)},
        chunks=len(chunks),
        requests=sum(r.requests for r in ordered),
        attempts=sum(r.attempts for r in ordered),
        engine_parameters=sorted({r.engine_parameters for r in ordered if r.engine_parameters}),
    )


def _session_dates(chunks: list[ChunkInfo]) -> tuple[str | None, str | None]:
    """The chunks' earliest and latest session dates; None where a description lacks them."""
    firsts, lasts = [c.first_session_date for c in chunks], [c.last_session_date for c in chunks]
    if None in firsts or None in lasts:
        return None, None
    return min(firsts, default=None), max(lasts, default=None)


@dataclass(frozen=True)
class ReportResult:
    """The recomputed channel_reporting rows' totals and the session dates they cover; the
    channel_roles rows; the conversion dates whose Markov credits were scored again."""

    rows: int
    cost: float
    ihc: float
    ihc_revenue: float
    first: str
    last: str
    role_rows: int = 0
    markov_days: list[str] = field(default_factory=list)


def report_step(run: RunContext, written: WriteResult | None = None) -> ReportResult:
    first, last = report_window(
        run.window, written.first_session_date if written else None, written.last_session_date if written else None
    )
    with run.warehouse.open() as db:
        markov = refresh_markov(db, run.window, written.conversion_dates if written else ())
        totals = rebuild_report(db, first, last)
        roles = rebuild_roles(db, first, last)
        models_first = min(first, markov.first_session_date or first)
        models_last = max(last, markov.last_session_date or last)
        rebuild_model_comparison(db, models_first, models_last, run.config.decay_half_life_days)
    log.info(
        "channel_reporting (%d rows) and channel_roles (%d rows) recomputed for %s .. %s, "
        "channel_model_comparison for %s .. %s",
        totals.rows,
        roles,
        first,
        last,
        models_first,
        models_last,
    )
    if markov.scored_days:
        log.info(
            "Markov: %d conversions of %d dates scored (%s .. %s); browsing transitions of %d dates counted anew",
            markov.conversions,
            len(markov.scored_days),
            markov.scored_days[0],
            markov.scored_days[-1],
            len(markov.changed_days),
        )
    return ReportResult(**asdict(totals), first=first, last=last, role_rows=roles, markov_days=list(markov.scored_days))


# The latest files in the output folder, always one run's: replaced together or not at all.
LATEST_FILES = (CSV_FILE, ROLES_CSV_FILE, REPORT_FILE, SUMMARY_FILE)


def export_step(
    run: RunContext, extracted: ExtractResult, stats: JourneyStats, written: WriteResult, report: ReportResult
) -> RunSummary:
    """The CSVs, the HTML report and the run summary: this run's in its folder, and the latest set in
    the output folder, replaced as one. A run without conversions leaves the whole latest set alone:
    it stays that of the last run that had something to show."""
    summary = _summary(run, extracted, stats, written, report)
    # Read and write under one lock: a run that read the tables earlier cannot replace the files
    # of a run that read them later.
    with publish.locked(run.output_dir, LATEST_FILES):
        with run.warehouse.open() as db:
            reporting, roles = report_csv(report_rows(db)), roles_csv(role_rows(db))
            page = html_report.render(_report_inputs(db, run.config, summary, report))
        files = dict(zip(LATEST_FILES, (reporting.data, roles.data, page, summary.to_json()), strict=True))
        own = publish.run_folder(run.run_dir)
        for name, data in files.items():
            own.write(name, data)
        if summary.html_replaced:
            publish.replace_set(run.output_dir, files)
    log.info(
        "wrote %d report rows, %d channel role rows, the HTML report (%d kB) and the run summary to %s",
        reporting.rows,
        roles.rows,
        len(page) // 1024,
        run.run_dir,
    )
    if summary.html_replaced:
        log.info("replaced the latest %s together in %s", ", ".join(LATEST_FILES), run.output_dir)
    else:
        log.warning(
            "no conversions from %s to %s: the latest files in %s are left as they were; this run's are in %s only",
            summary.start,
            summary.end,
            run.output_dir,
            run.run_dir,
        )
    log.info("run summary (%s):\n%s", run.run_dir / SUMMARY_FILE, summary.text())
    return summary


def _report_inputs(db: Warehouse, config: RunConfig, summary: RunSummary, report: ReportResult) -> ReportInputs:
    """The page's numbers, read from the warehouse for the range and its own session dates (not the
    further ones an earlier run's longer look-back made the report step recompute): a range shows
    the same numbers whatever ran before."""
    window = report_window(config.window)
    return ReportInputs(
        summary=summary,
        window=window,
        channel_rows=report_rows_between(db, *window),
        roles=role_rows_between(db, *window),
        credits=credits_by_channel(db, config.window, config.decay_half_life_days),
        window_credits=credits_between(db, *window),
        paths=top_paths(db, config.window.dates),
        parameters=html_report.run_parameters(config, summary, window),
        totals=html_report.range_totals(db, config.window.dates),
    )


def _summary(
    run: RunContext, extracted: ExtractResult, stats: JourneyStats, written: WriteResult, report: ReportResult
) -> RunSummary:
    window = run.window
    return RunSummary(
        start=window.dates.start,
        end=window.dates.end,
        conversions=stats.conversions,
        attributed=written.conversions,
        without_sessions=stats.without_sessions,
        without_sessions_ids=stats.without_sessions_ids,
        row_issues=stats.row_issues,
        chunks=written.chunks,
        requests=written.requests,
        attempts=written.attempts,
        sessions_sent=stats.sessions,
        trimmed_journeys=stats.trimmed_journeys,
        max_sum_error=written.max_sum_error,
        revenue=extracted.revenue,
        report_rows=report.rows,
        report_cost=report.cost,
        report_ihc_revenue=report.ihc_revenue,
        report_first=report.first,
        report_last=report.last,
        csv_path=str(run.output_dir / CSV_FILE),
        engine_parameters=written.engine_parameters,
        run_csv_path=str(run.run_dir / CSV_FILE),
        roles_csv_path=str(run.output_dir / ROLES_CSV_FILE),
        html_path=str(run.output_dir / REPORT_FILE),
        html_replaced=stats.conversions > 0,
        run_html_path=str(run.run_dir / REPORT_FILE),
        warehouse=run.warehouse.label,
        reattributed=dict(stats.reattributed),
        removed=written.removed,
    )


def cleanup_step(run: RunContext, now: float | None = None) -> list[str]:
    """Remove the run folders beside this run's that nothing touched for ihc_run_retention_days."""
    run_dir, retention_days = run.run_dir, run.config.retention_days
    expired = expired_runs(run_dir.parent, run_dir.name, retention_days, time.time() if now is None else now)
    for folder in expired:
        remove_folder(folder)
        log.info("removed run folder %s (untouched for more than %d days)", folder, retention_days)
    if not expired:
        log.info("no run folder older than %d days beside %s", retention_days, run_dir)
    return [folder.name for folder in expired]
