"""
### IHC attribution

For every conversion in a date range: build its customer journey, attribute it with the IHC
(Initializer-Holder-Closer) API, store the per-session shares in
`attribution_customer_journey`, recompute `channel_reporting` and export it as CSV with CPO
and ROAS.

`attribute_chunk` is mapped over chunk files: one task instance per chunk, named
`chunk i/n · k journeys`, each retried on its own with exponential backoff, in pool `ihc_api`.
Every other step is idempotent and retried too; a bad param, Variable or input, or a request the
API refuses, fails at once.

**Date range**: a manual run uses the params `start_date` / `end_date` (conversion dates,
inclusive); a scheduled or backfill run uses its logical date.
**Variables**: `ihc_chunk_size`, `ihc_max_journeys_per_request`, `ihc_max_sessions_per_request`,
`ihc_request_concurrency`, `ihc_lookback_days`, `ihc_run_retention_days` and the retry knobs
(README). `init_db` reads them, the params and the `ihc_api` connection once; every task gets that
run configuration by XCom. `ihc_failure_notifier` (optional) names the notifier a failed task calls.
**Connections**: `ihc_api` (base URL, key in the password, `conv_type_id` in extra) and
`ihc_warehouse` (type postgres for a PostgreSQL warehouse, else the SQLite file in host); without
them the local server and `data/challenge.db`.
**Assets**: `ihc://warehouse/attribution_customer_journey`, `ihc://warehouse/channel_reporting`,
`ihc://output/channel_reporting.csv`: schedule a downstream DAG on them.
**Run folders** (extract, chunk and result files, the run's CSV and summary): env
`ATTRIBUTION_WORK_DIR`, a folder or an object-storage URL such as `s3://bucket/prefix`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from include import pipeline, settings
from include.run_config import RunConfig

import run_context
from airflow_compat import (
    Asset,
    CronDataIntervalTimetable,
    Param,
    dag,
    get_current_context,
    mapped_outputs,
    run_deadline,
    task,
)
from failure_alerts import notify_failure
from run_context import no_retry_on_final_errors

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
    },
)
def ihc_attribution():
    @task
    @no_retry_on_final_errors
    def init_db() -> dict:
        """Read and check the run's configuration; create the output tables and indexes if missing."""
        config = run_context.run_configuration(get_current_context())
        pipeline.prepare(run_context.warehouse(), config.window)
        return config.to_xcom()

    @task
    def extract(config: dict) -> dict:
        """The range's conversions and their users' sessions, streamed to run files."""
        return pipeline.extract_step(
            run_context.warehouse(), RunConfig.from_xcom(config).window, run_context.run_dir(get_current_context())
        )

    @task
    @no_retry_on_final_errors
    def build_journeys(config: dict, extracted: dict) -> list[dict]:
        """Journeys of whole sessions, written as chunk files; returns their paths and counts,
        and publishes the journey statistics under the XCom key ``stats`` for the summary."""
        run = RunConfig.from_xcom(config)
        context = get_current_context()
        chunks, stats = pipeline.journeys_step(
            run.window,
            extracted,
            run_context.run_dir(context),
            chunk_size=run.chunk_size,
            max_sessions=run.client.max_sessions_per_request,
            max_bad_row_share=run.max_bad_row_share,
            max_journeys=run.client.max_journeys_per_request,
        )
        context["ti"].xcom_push(key="stats", value=stats)
        return chunks

    @task(
        pool=settings.API_POOL,
        retries=3,
        # A hard stop above the client's own budget per try (ihc_chunk_budget_seconds, 30 min).
        execution_timeout=timedelta(hours=1),
        # Rendered from the task's input, so the grid shows it from the moment a try starts.
        map_index_template="{{ task.op_kwargs['chunk']['label'] }}",
    )
    @no_retry_on_final_errors
    def attribute_chunk(chunk: dict, config: dict) -> dict:
        """Send one chunk's journeys to the IHC API and write its result file."""
        run = RunConfig.from_xcom(config, api_key=run_context.api_key())
        return pipeline.attribute_step(chunk, run_context.run_dir(get_current_context()), run.api, run.client)

    @task(trigger_rule="none_failed", outlets=[Asset(settings.JOURNEYS_ASSET_URI)])
    def write_attributions(config: dict, chunks: list[dict], results: list[dict] | None) -> dict:
        """Replace the range's attributions by the chunk results, in one transaction."""
        return pipeline.write_step(
            run_context.warehouse(),
            RunConfig.from_xcom(config).window,
            run_context.run_dir(get_current_context()),
            list(chunks),
            mapped_outputs(results),
        )

    @task(outlets=[Asset(settings.REPORT_ASSET_URI)])
    def build_report(config: dict, written: dict) -> dict:
        """Recompute channel_reporting for every session date the run can touch."""
        return pipeline.report_step(run_context.warehouse(), RunConfig.from_xcom(config).window, written)

    @task(outlets=[Asset(settings.CSV_ASSET_URI)])
    def export_csv(config: dict, extracted: dict, stats: dict, written: dict, report: dict) -> dict:
        """channel_reporting as CSV with CPO and ROAS, the HTML report (model comparison, paths),
        each the latest in the output folder and a copy in the run folder, and the run summary."""
        return pipeline.export_step(
            run_context.warehouse(),
            settings.output_dir(),
            run_context.run_dir(get_current_context()),
            RunConfig.from_xcom(config),
            extracted,
            stats,
            written,
            report,
        )

    @task
    def cleanup_run_folders(config: dict, summary: dict) -> list[str]:
        """Remove the run folders older than ihc_run_retention_days; never this run's."""
        return pipeline.cleanup_step(
            run_context.run_dir(get_current_context()), RunConfig.from_xcom(config).retention_days
        )

    config = init_db()
    extracted = extract(config)
    chunks = build_journeys(config, extracted)
    results = attribute_chunk.partial(config=config).expand(chunk=chunks)
    written = write_attributions(config, chunks, results)
    report = build_report(config, written)
    summary = export_csv(config, extracted, chunks["stats"], written, report)
    cleanup_run_folders(config, summary)


ihc_attribution()
