"""
### IHC attribution

For every conversion in a date range: build its customer journey, attribute it with the IHC
(Initializer-Holder-Closer) API, store the per-session shares in
`attribution_customer_journey`, recompute `channel_reporting` and export it as CSV with CPO
and ROAS.

`attribute_chunk` is mapped over chunk files: one task instance per chunk, named
`chunk i/n · k journeys`, each retried on its own with exponential backoff, in pool `ihc_api`.
Every other step is idempotent and retried too. Errors are classed by type for every task
(`dags/run_context.py`): a final one (a bad setting, input past its threshold, a request the API
refuses, a schema that does not fit) fails the task at once; any other is retried.

**Date range**: a manual run uses the params `start_date` / `end_date` (conversion dates,
inclusive); a scheduled or backfill run uses its logical date. The param
`export_training_journeys` makes `build_journeys` also write the journeys as
`training_journeys.csv`, the file to train a conversion type from in the IHC web app.
**Late and corrected data**: a run also attributes again the stored conversions within a look-back
of its range whose journey changed since (late or corrected sessions, a re-dated conversion), and
removes the rows of conversions deleted from its range; the param `reprocess` attributes them
all again, changed or not. Daily runs, backfills and reruns leave the tables one run would.
**Variables**: `ihc_chunk_size`, `ihc_max_journeys_per_request`, `ihc_max_sessions_per_request`,
`ihc_request_concurrency`, `ihc_lookback_days`, `ihc_run_retention_days` and the retry knobs
(README), each with its bounds. `init_db` checks the params, the trigger conf, every Variable,
both connections and the folders before anything is read or written, names every problem in one
error, and hands the run configuration to every task by XCom. `ihc_failure_notifier`
(optional) names the notifier a failed task calls.
**Connections**: `ihc_api` (base URL, key in the password, `conv_type_id` in extra) and
`ihc_warehouse` (type postgres, or sqlite with the file in host); a set connection is used or the
run fails. Without them: the local server, and the sample database `data/challenge.db`, which the
log, summary and report then name.
**Assets**: `ihc://warehouse/attribution_customer_journey`, `ihc://warehouse/channel_reporting`,
`ihc://output/channel_reporting.csv`: schedule a downstream DAG on them.
**Run folders** (extract, chunk and result files, the run's CSV and summary): env
`ATTRIBUTION_WORK_DIR`, a folder or an object-storage URL such as `s3://bucket/prefix`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from include import pipeline, settings
from include.attributions import ChunkResult, WriteResult
from include.chunks import ChunkInfo
from include.extract import ExtractResult
from include.journeys import JourneyStats
from include.pipeline import Journeys, ReportResult
from include.run_config import RunConfig, RunContext
from include.summary import RunSummary

from airflow_compat import Asset, CronDataIntervalTimetable, Param, dag, run_deadline
from failure_alerts import notify_failure
from run_context import pipeline_task, start_task

RETRIES = {
    "retries": 2,
    "retry_delay": timedelta(seconds=settings.retry_delay_seconds()),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id=settings.DAG_ID,
    description="IHC marketing attribution of a date range's conversions: journeys, API, channel report, CSV",
    # One run per finished UTC day, logical date = that day, on both Airflow lines (3.x's
    # "@daily" would be a trigger timetable whose logical date is the day just starting).
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2023, 9, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=16,
    doc_md=__doc__,
    tags=["attribution", "ihc"],
    default_args={"owner": "attribution", "on_failure_callback": notify_failure, **RETRIES},
    # Airflow 3: an alert through the same notifier when a run is not done in time.
    **run_deadline(settings.run_deadline_minutes(), "failure_alerts.deadline_missed"),
    params={
        "start_date": Param(
            settings.default_start_date(),
            type="string",
            format="date",
            description="First conversion date (manual runs)",
        ),
        "end_date": Param(
            settings.default_end_date(),
            type="string",
            format="date",
            description="Last conversion date, inclusive (manual runs)",
        ),
        settings.EXPORT_JOURNEYS_PARAM: Param(
            False,
            type="boolean",
            description="Also write the range's journeys as training_journeys.csv (the file the IHC web app "
            "trains a conversion type from), in the run folder and the output folder",
        ),
        settings.REPROCESS_PARAM: Param(
            False,
            type="boolean",
            description="Attribute again every stored conversion whose look-back overlaps the run's session dates, "
            "changed or not (by default only those whose journey changed since they were stored)",
        ),
    },
)
def ihc_attribution():
    @start_task()
    def init_db(run: RunContext) -> RunConfig:
        """Check everything the run depends on (params, trigger conf, Variables, connections,
        folders), then create the output tables and indexes if missing."""
        return pipeline.prepare(run)

    @pipeline_task()
    def extract(run: RunContext) -> ExtractResult:
        """The range's conversions and their users' sessions, streamed to run files."""
        return pipeline.extract_step(run)

    @pipeline_task()
    def build_journeys(run: RunContext, extracted: ExtractResult) -> Journeys:
        """Journeys of whole sessions, written as chunk files (and as the training file when asked);
        returns the chunk list, and publishes the journey statistics under the XCom key ``stats``."""
        return pipeline.journeys_step(run, extracted)

    @pipeline_task(
        pool=settings.API_POOL,
        retries=3,
        # A hard stop above the client's own budget per try (ihc_chunk_budget_seconds, 30 min).
        execution_timeout=timedelta(hours=1),
        # Rendered from the task's input, so the grid shows it from the moment a try starts.
        map_index_template="{{ task.op_kwargs['chunk']['label'] }}",
    )
    def attribute_chunk(run: RunContext, chunk: ChunkInfo) -> ChunkResult:
        """Send one chunk's journeys to the IHC API and write its result file."""
        return pipeline.attribute_step(run, chunk)

    @pipeline_task(trigger_rule="none_failed", outlets=[Asset(settings.JOURNEYS_ASSET_URI)])
    def write_attributions(run: RunContext, chunks: list[ChunkInfo], results: list[ChunkResult]) -> WriteResult:
        """Replace the attributions of every conversion the run covers by the chunk results, in one
        transaction."""
        return pipeline.write_step(run, chunks, results)

    @pipeline_task(outlets=[Asset(settings.REPORT_ASSET_URI)])
    def build_report(run: RunContext, written: WriteResult) -> ReportResult:
        """Score the Markov credits of the conversion dates whose data changed, then recompute
        channel_reporting, channel_roles and channel_model_comparison for every session date the
        run can touch."""
        return pipeline.report_step(run, written)

    @pipeline_task(outlets=[Asset(settings.CSV_ASSET_URI)])
    def export_csv(
        run: RunContext, extracted: ExtractResult, stats: JourneyStats, written: WriteResult, report: ReportResult
    ) -> RunSummary:
        """channel_reporting as CSV with CPO and ROAS, the roles CSV, the HTML report (model
        comparison, paths) and the run summary: in the run folder, and as the latest set in the
        output folder, replaced together (left alone by a run without conversions)."""
        return pipeline.export_step(run, extracted, stats, written, report)

    @pipeline_task()
    def cleanup_run_folders(run: RunContext, summary: RunSummary) -> list[str]:
        """Remove the run folders older than ihc_run_retention_days; never this run's."""
        return pipeline.cleanup_step(run)

    config = init_db()
    extracted = extract(config)
    chunks = build_journeys(config, extracted)
    results = attribute_chunk.partial(config=config).expand(chunk=chunks)
    written = write_attributions(config, chunks, results)
    report = build_report(config, written)
    summary = export_csv(config, extracted, chunks["stats"], written, report)
    cleanup_run_folders(config, summary)


ihc_attribution()
