"""A downstream DAG as a team would write one: scheduled on the channel_reporting asset, it runs
whenever a run of ihc_attribution has recomputed the report."""

from __future__ import annotations

import pendulum

from include import settings

from airflow_compat import Asset, dag, task


@dag(
    dag_id="report_consumer",
    schedule=[Asset(settings.REPORT_ASSET_URI)],
    start_date=pendulum.datetime(2023, 9, 1, tz="UTC"),
    catchup=False,
)
def report_consumer():
    @task
    def read_report() -> str:
        return settings.REPORT_ASSET_URI

    read_report()


report_consumer()
