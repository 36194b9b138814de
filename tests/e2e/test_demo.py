"""``make demo``'s entry point as a user runs it: a new process, real Airflow, twice."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from include import settings
from include.summary import SUMMARY_FILE, RunSummary
from tools import engine_parameters


def demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.demo"],
        cwd=settings.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def tables(db: Path) -> list[list[tuple]]:
    with sqlite3.connect(db) as conn:
        return [
            conn.execute("SELECT * FROM attribution_customer_journey ORDER BY 1, 2").fetchall(),
            conn.execute("SELECT * FROM channel_reporting ORDER BY 1, 2").fetchall(),
        ]


def only_summary(runs: Path) -> RunSummary:
    paths = list(runs.glob(f"*/{SUMMARY_FILE}"))
    assert len(paths) == 1, paths
    return RunSummary.load(paths[0])


def conversions_in_sample(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        query = "SELECT count(*) FROM conversions WHERE conv_date BETWEEN ? AND ?"
        return conn.execute(query, (settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)).fetchone()[0]


def test_demo_runs_offline_prints_the_summary_and_reruns_identically(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ATTRIBUTION_"))}
    env |= {"ATTRIBUTION_DATA_DIR": str(tmp_path / "data"), "ATTRIBUTION_AIRFLOW_HOME": str(tmp_path / "airflow")}

    first = demo(env)

    assert first.returncode == 0, first.stdout + first.stderr
    db = tmp_path / "data" / "challenge.db"
    summary = only_summary(tmp_path / "data" / "runs")
    assert summary.text() in first.stdout, "the demo prints the run's summary"
    assert summary.conversions == conversions_in_sample(db) > 0
    assert summary.attributed + summary.without_sessions == summary.conversions
    assert summary.chunks > 1 and summary.max_sum_error < 1e-6
    csv = tmp_path / "data" / "output" / "channel_reporting.csv"
    assert summary.csv_path == str(csv) and len(csv.read_text().splitlines()) == summary.report_rows + 1
    assert (tmp_path / "airflow" / "demo" / "airflow.db").is_file(), "the demo's own metadata DB, not make airflow's"
    assert summary.warehouse == f"sample database {db} (no connection ihc_warehouse set)"
    parameters = tmp_path / "data" / "engine" / "default.json"
    assert summary.engine_parameters == [str(parameters)], "the summary names the trained engine"
    trained = engine_parameters.read(parameters)
    assert trained.trained_on.warehouse == f"SQLite {tmp_path / 'data' / 'challenge.db'}"
    assert (trained.trained_on.start, trained.trained_on.end) == (settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)
    airflow_log = (tmp_path / "airflow" / "demo" / "demo.log").read_text().splitlines()
    assert [line for line in airflow_log if "[error" in line] == [], "a successful run logs no error"
    before = tables(db)
    assert len(before[0]) > 3000

    second = demo(env)

    assert second.returncode == 0, second.stdout + second.stderr
    assert "generating the sample database" not in second.stdout
    assert tables(db) == before
