"""Backfill on the Airflow 2.10 line: ``airflow dags backfill`` runs the days in-process.

2.10's BackfillJob drops the executor event of a task it queued under an older try number, so it
never expands a mapped task whose upstream is not a root task and stops with "deadlocked" (same
code in 2.10.5). Running the same command again resumes the runs from the database and completes
them; these tests pin that behaviour down. On Airflow 3 the scheduler runs backfills: tests/scheduler.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import orjson
import pytest

from include import schema, warehouse
from include.settings import LOCAL_API_KEY
from tests.airflow_helpers import AIRFLOW, DAG_ID, empty_outputs, snapshot
from tools.local_airflow import airflow_env, local_api_connection

airflow_version = pytest.importorskip("airflow").__version__
pytestmark = pytest.mark.skipif(
    not airflow_version.startswith("2."), reason="Airflow 3 backfills run in the scheduler: tests/scheduler"
)


def deployment_env(home: Path, db: Path, server_url: str) -> dict[str, str]:
    """One Airflow 2.10 deployment (own metadata DB) writing to the shared warehouse ``db``."""
    return (
        airflow_env(home)
        | local_api_connection(server_url, LOCAL_API_KEY)
        | {
            "AIRFLOW_CONN_IHC_WAREHOUSE": orjson.dumps({"conn_type": "sqlite", "host": str(db)}).decode(),
            "AIRFLOW_VAR_IHC_CHUNK_SIZE": "300",
            "ATTRIBUTION_DATA_DIR": str(home / "data"),
            "ATTRIBUTION_RETRY_DELAY_SECONDS": "1",
        }
    )


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def backfill(env: dict[str, str], first: str, last: str) -> subprocess.Popen:
    command = [AIRFLOW, "dags", "backfill", "-s", first, "-e", last, DAG_ID]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(job: subprocess.Popen) -> str:
    return job.communicate(timeout=600)[0]


def backfill_to_the_end(env: dict[str, str], first: str, last: str) -> list[str]:
    """The backfill, and its rerun when 2.10 stops at the mapped step; returns both outputs."""
    first_try = backfill(env, first, last)
    output = finish(first_try)
    if first_try.returncode == 0:
        return [output]
    assert "BackfillJob is deadlocked" in output, output[-3000:]
    rerun = backfill(env, first, last)
    outputs = [output, finish(rerun)]
    assert rerun.returncode == 0, outputs[1][-3000:]
    return outputs


def prepared(home: Path, db: Path, server_url: str) -> dict[str, str]:
    env = deployment_env(home, db, server_url)
    airflow(env, "db", "migrate")
    airflow(env, "pools", "set", "ihc_api", "4", "IHC API")
    return env


def backfill_runs(env: dict[str, str]) -> list[tuple[str, str]]:
    """(logical date, state) of the backfill runs, read from the deployment's metadata DB."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as conn:
        query = "SELECT substr(execution_date, 1, 10), state FROM dag_run WHERE run_type = 'backfill' ORDER BY 1"
        return conn.execute(query).fetchall()


@pytest.fixture
def db(sample_db_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "challenge.db"
    shutil.copyfile(sample_db_template, path)
    with warehouse.connect_sqlite(path) as conn:
        schema.init_schema(conn)
    return path


def test_three_day_backfill_makes_three_runs_equal_to_one_manual_run(db, tmp_path, local_server):
    env = prepared(tmp_path / "backfill", db, local_server)

    backfill_to_the_end(env, "2023-09-01", "2023-09-03")

    assert backfill_runs(env) == [("2023-09-01", "success"), ("2023-09-02", "success"), ("2023-09-03", "success")]
    by_backfill = snapshot(db)
    assert all(by_backfill.values())
    empty_outputs(db)
    airflow(env, "dags", "test", DAG_ID, "-c", '{"start_date": "2023-09-01", "end_date": "2023-09-03"}')
    assert snapshot(db) == by_backfill


def test_two_overlapping_backfills_at_the_same_time(db, tmp_path, local_server):
    first = prepared(tmp_path / "first", db, local_server)
    second = prepared(tmp_path / "second", db, local_server)

    ranges = {"2023-09-01": "2023-09-04", "2023-09-03": "2023-09-06"}
    jobs = [
        (env, start, backfill(env, start, end))
        for env, (start, end) in zip((first, second), ranges.items(), strict=True)
    ]
    outputs = [finish(job) for _, _, job in jobs]
    for env, start, job in jobs:
        if job.returncode != 0:
            outputs += backfill_to_the_end(env, start, ranges[start])

    assert not any("database is locked" in out for out in outputs)
    together = snapshot(db)
    with sqlite3.connect(db) as conn:
        worst = conn.execute(
            "SELECT MAX(ABS(s - 1)) FROM (SELECT SUM(ihc) s FROM attribution_customer_journey GROUP BY conv_id)"
        ).fetchone()[0]
    assert worst < 1e-9
    empty_outputs(db)
    airflow(first, "dags", "test", DAG_ID, "-c", '{"start_date": "2023-09-01", "end_date": "2023-09-06"}')
    assert snapshot(db) == together
