"""Helpers for tests that run Airflow itself (DAG and end-to-end tests)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from include import settings
from include.schema import OUTPUT_TABLES

DAG_ID = settings.DAG_ID
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def migrate_metadata_db(env: dict[str, str] | None = None) -> None:
    """Create the metadata DB and the API pool in the tests' AIRFLOW_HOME, or in that of ``env``."""
    for args in (["db", "migrate"], ["pools", "set", settings.API_POOL, "4", "IHC API"]):
        done = subprocess.run([AIRFLOW, *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stdout + done.stderr


def parse_dags():
    """The project's dags folder parsed as the DAG processor does; import errors included."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2.10
        from airflow.models.dagbag import DagBag

    return DagBag(dag_folder=str(settings.PROJECT_ROOT / "dags"))


def load_dag():
    bag = parse_dags()
    assert bag.import_errors == {}, bag.import_errors
    return bag, bag.dags[DAG_ID]


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every output table, sorted, for comparing runs."""
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3").fetchall() for t in OUTPUT_TABLES}


def empty_outputs(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        for table in OUTPUT_TABLES:
            conn.execute(f"DELETE FROM {table}")


def asset_event_uris(run_id: str) -> list[str]:
    """URIs of the asset (dataset) events a run emitted, from the metadata DB."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.asset import AssetEvent as Event
    except ImportError:  # Airflow 2.10
        from airflow.models.dataset import DatasetEvent as Event

    with create_session() as session:
        return sorted(event.uri for event in session.query(Event).filter(Event.source_run_id == run_id))
