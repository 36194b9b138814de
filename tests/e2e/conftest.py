"""Fixtures of the tests that run the DAG with dag.test() in this process."""

from __future__ import annotations

from pathlib import Path

import pytest

from include import settings
from tests.airflow_helpers import load_dag, migrate_metadata_db
from tools.local_airflow import AIRFLOW_3, local_api_connection
from tools.local_server import ServerConfig

START, END = settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE
CHUNK_SIZE = 500


@pytest.fixture(scope="session")
def dag():
    migrate_metadata_db()
    bag, dag = load_dag()
    if not AIRFLOW_3:
        # What 2.10's DAG processor does, and its dag.test() does not: the DAG's datasets
        # exist in the metadata DB, so a run's dataset events are recorded.
        bag.sync_to_db()
    return dag


@pytest.fixture
def pipeline_env(monkeypatch, sample_db: Path, local_server: str, server_config: ServerConfig) -> Path:
    """Connections and Variables as a deployment would set them, pointing at the test's parts."""
    monkeypatch.setenv("AIRFLOW_CONN_IHC_WAREHOUSE", f'{{"conn_type": "sqlite", "host": "{sample_db}"}}')
    for key, value in local_api_connection(local_server, server_config.api_key).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_IHC_CHUNK_SIZE", str(CHUNK_SIZE))
    monkeypatch.setenv("AIRFLOW_VAR_IHC_MAX_ATTEMPTS_PER_REQUEST", "2")
    monkeypatch.setenv("AIRFLOW_VAR_IHC_BACKOFF_SECONDS", "0.01")
    return sample_db


def run(dag, start: str = START, end: str = END):
    return dag.test(run_conf={"start_date": start, "end_date": end})


def succeeded(dag_run) -> bool:
    return str(dag_run.state) in ("success", "DagRunState.SUCCESS")


def task_instances(dag_run) -> dict[tuple[str, int], object]:
    return {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
