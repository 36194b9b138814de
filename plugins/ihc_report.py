"""The HTML attribution report inside Airflow 3's UI: a "Attribution report" entry in the
navigation (the latest report) and a tab on every DAG run (that run's report).

Served by a small FastAPI app mounted in Airflow's API server, behind Airflow's login (the UI's
session cookie or a bearer token). Airflow 2.10 has no such UI extension point here: the report's
path is in the run summary and the export task's log.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import Response

from include import settings
from include.html_report import REPORT_FILE
from include.runfiles import read_bytes, run_folder_name

try:
    from airflow.sdk import ObjectStoragePath
except ImportError:  # Airflow 2.10 loads plugins too; its UI gets no entries from this one
    ObjectStoragePath = None

PREFIX = "/ihc-report"
app = FastAPI(title="IHC attribution report", dependencies=[Depends(get_user)])


def _report(path) -> Response:
    try:
        return Response(read_bytes(path), media_type="text/html")
    except FileNotFoundError:
        raise HTTPException(404, f"no report at {path}: the run has not reached export_csv") from None


@app.get("/latest")
def latest_report() -> Response:
    return _report(settings.output_dir() / REPORT_FILE)


@app.get("/runs/{run_id}")
def run_report(run_id: str) -> Response:
    base = ObjectStoragePath(settings.work_base(), conn_id=settings.work_conn_id())
    return _report(base / run_folder_name(run_id) / REPORT_FILE)


class IhcReportPlugin(AirflowPlugin):
    name = "ihc_report"
    fastapi_apps: ClassVar[list] = [{"app": app, "url_prefix": PREFIX, "name": "IHC attribution report"}]
    external_views: ClassVar[list] = [
        {"name": "Attribution report", "href": f"{PREFIX}/latest", "destination": "nav", "url_route": "ihc-report"},
        {
            "name": "Attribution report",
            "href": f"{PREFIX}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "ihc-report-run",
        },
    ]
