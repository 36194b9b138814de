"""The HTML attribution report inside Airflow 3's UI: an "Attribution report" entry in the
navigation (the latest report) and a tab on the DAG runs of ihc_attribution (that run's report).

Served by a small FastAPI app mounted in Airflow's API server, for users who may read the runs of
ihc_attribution (Airflow's login: the UI's session cookie or a bearer token). The latest report
is read from the API server's ATTRIBUTION_OUTPUT_DIR; a run's report from its run folder, which
may be on object storage. Airflow 3 only: 2.10's UI mounts no FastAPI apps.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import ObjectStoragePath
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import Response

from include import settings
from include.html_report import REPORT_FILE
from include.runfiles import read_bytes, run_folder_name

PREFIX = "/ihc-report"


def may_read_runs(user: Annotated[object, Depends(get_user)]) -> None:
    allowed = get_auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=settings.DAG_ID), user=user
    )
    if not allowed:
        raise HTTPException(403, f"not allowed to read the runs of {settings.DAG_ID}")


app = FastAPI(
    title="IHC attribution report",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
    dependencies=[Depends(may_read_runs)],
)


def _report(path) -> Response:
    try:
        return Response(read_bytes(path), media_type="text/html")
    except FileNotFoundError:
        raise HTTPException(404, f"no report at {path}: the run has not reached export_csv") from None


@app.get("/latest")
def latest_report() -> Response:
    return _report(settings.output_dir() / REPORT_FILE)


@app.get("/dags/{dag_id}/runs/{run_id}")
def run_report(dag_id: str, run_id: str) -> Response:
    if dag_id != settings.DAG_ID:
        raise HTTPException(404, f"{dag_id} writes no attribution report; {settings.DAG_ID} does")
    base = ObjectStoragePath(settings.work_base(), conn_id=settings.work_conn_id())
    return _report(base / run_folder_name(run_id) / REPORT_FILE)


class IhcReportPlugin(AirflowPlugin):
    name = "ihc_report"
    fastapi_apps: ClassVar[list] = [{"app": app, "url_prefix": PREFIX, "name": "IHC attribution report"}]
    external_views: ClassVar[list] = [
        {"name": "Attribution report", "href": f"{PREFIX}/latest", "destination": "nav", "url_route": "ihc-report"},
        {
            "name": "Attribution report",
            "href": f"{PREFIX}/dags/{{DAG_ID}}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "ihc-report-run",
        },
    ]
