"""The DAG run for real: dag.test() in Airflow, HTTP to the local IHC server, a SQLite warehouse.

Assertions are checked against independent recomputations (Python over the raw tables, SQL
with datetime()), not against the pipeline's own queries.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from include import extract, schema, settings, warehouse
from include.ihc_client import journey_rows
from include.journeys import JourneyStats, build_journeys
from include.runfiles import run_directory
from include.summary import SUMMARY_FILE, RunSummary
from tests.airflow_helpers import asset_event_uris
from tests.api_rows import pack_requests
from tests.e2e.conftest import CHUNK_SIZE, END, START, run, succeeded, task_instances
from tools.local_server import Fault


def table(db: Path, name: str, order: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall()


def expected_attributed(db: Path) -> set[str]:
    """Conversions in range with a session strictly before them within 30 days, by datetime()."""
    query = """
        SELECT c.conv_id FROM conversions c
        WHERE c.conv_date BETWEEN ? AND ? AND EXISTS (
            SELECT 1 FROM session_sources s WHERE s.user_id = c.user_id
              AND datetime(s.event_date || ' ' || s.event_time) < datetime(c.conv_date || ' ' || c.conv_time)
              AND datetime(s.event_date || ' ' || s.event_time)
                  >= datetime(c.conv_date || ' ' || c.conv_time, '-30 days'))"""
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute(query, (START, END))}


def recomputed_report(db: Path) -> dict[tuple[str, str], tuple[float, float, float]]:
    """channel_reporting recomputed in Python from the raw tables."""
    with sqlite3.connect(db) as conn:
        where = {
            s: (ch, d) for s, ch, d in conn.execute("SELECT session_id, channel_name, event_date FROM session_sources")
        }
        costs = dict(conn.execute("SELECT session_id, cost FROM session_costs"))
        revenue = dict(conn.execute("SELECT conv_id, revenue FROM conversions"))
        attributions = conn.execute("SELECT conv_id, session_id, ihc FROM attribution_customer_journey").fetchall()
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for session_id, key in where.items():
        totals[key][0] += costs.get(session_id) or 0.0
    for conv_id, session_id, ihc in attributions:
        totals[where[session_id]][1] += ihc
        totals[where[session_id]][2] += ihc * revenue[conv_id]
    return {key: tuple(values) for key, values in totals.items()}


def range_journeys(db: Path, max_sessions: int = 3000) -> list:
    """The range's journeys, built from the warehouse by the journey step itself."""
    conn = warehouse.connect_sqlite(db)
    schema.init_schema(conn)
    return list(
        build_journeys(
            extract.iter_conversions(conn, START, END),
            extract.iter_sessions_of_converting_users(conn, START, END, 30),
            30,
            max_sessions,
            JourneyStats(),
        )
    )


def conversion_in_second_chunk(db: Path) -> str:
    return [j.conversion_id for j in range_journeys(db)][CHUNK_SIZE]


def test_full_run_with_a_chunk_failing_once_then_rerun_is_identical(
    dag, pipeline_env: Path, server_config, trained_engine
):
    db = pipeline_env
    server_config.faults.append(Fault("500", times=2, conversion_id=conversion_in_second_chunk(db)))

    first = run(dag)

    assert str(first.state) in ("success", "DagRunState.SUCCESS")
    tis = task_instances(first)
    chunks = sorted(index for task_id, index in tis if task_id == "attribute_chunk")
    assert len(chunks) == 4
    assert {index: tis[("attribute_chunk", index)].try_number for index in chunks} == {0: 1, 1: 2, 2: 1, 3: 1}
    assert tis[("attribute_chunk", 1)].rendered_map_index == f"chunk 2/4 · {CHUNK_SIZE} journeys"
    assert server_config.faults_fired == 2
    assert asset_event_uris(first.run_id) == sorted(
        [settings.JOURNEYS_ASSET_URI, settings.REPORT_ASSET_URI, settings.CSV_ASSET_URI]
    )

    with sqlite3.connect(db) as conn:
        sums = dict(conn.execute("SELECT conv_id, SUM(ihc) FROM attribution_customer_journey GROUP BY conv_id"))
    assert set(sums) == expected_attributed(db)
    assert max(abs(total - 1) for total in sums.values()) < 1e-9

    stored = {(ch, d): (cost, ihc, rev) for ch, d, cost, ihc, rev in table(db, "channel_reporting", "1, 2")}
    recomputed = recomputed_report(db)
    assert stored.keys() == recomputed.keys()
    for key, values in recomputed.items():
        assert stored[key] == pytest.approx(values, abs=1e-6), key
    assert sum(v[1] for v in stored.values()) == pytest.approx(len(sums), abs=1e-6)

    summary = RunSummary.load(run_directory(Path(settings.work_base()), first.run_id) / SUMMARY_FILE)
    assert (summary.attributed, summary.chunks, summary.report_rows) == (len(sums), 4, len(stored))
    assert summary.conversions == summary.attributed + summary.without_sessions
    assert summary.engine_parameters == [trained_engine.path]
    assert f"local engine parameters   {trained_engine.path}" in summary.text()
    assert Path(summary.run_csv_path).read_bytes() == Path(summary.csv_path).read_bytes()
    assert Path(summary.run_csv_path).parent == Path(settings.work_base()) / Path(summary.run_csv_path).parent.name
    csv_lines = Path(summary.csv_path).read_text().splitlines()
    assert csv_lines[0] == "channel_name,date,cost,ihc,ihc_revenue,CPO,ROAS"
    assert len(csv_lines) == len(stored) + 1

    before = [table(db, "attribution_customer_journey", "1, 2"), table(db, "channel_reporting", "1, 2")]
    second = run(dag)
    assert str(second.state) in ("success", "DagRunState.SUCCESS")
    assert [table(db, "attribution_customer_journey", "1, 2"), table(db, "channel_reporting", "1, 2")] == before


@pytest.mark.parametrize(
    ("start", "end", "param"),
    [
        ("2023-09-07", "2023-09-01", "end_date"),
        ("0001-01-01", "9999-12-31", "start_date"),
    ],
)
def test_invalid_params_fail_the_first_task_naming_the_param(dag, pipeline_env, capfd, start, end, param):
    dag_run = run(dag, start, end)

    tis = task_instances(dag_run)
    assert str(tis[("init_db", -1)].state).endswith("failed")
    assert str(tis[("extract", -1)].state).endswith("upstream_failed")
    captured = capfd.readouterr()
    assert f"param {param}=" in captured.out + captured.err
    with sqlite3.connect(pipeline_env) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'channel_reporting'").fetchone() is None


@pytest.mark.parametrize(
    ("start", "end", "param"), [("2023-9-1x", "2023-09-07", "start_date"), (START, "soon", "end_date")]
)
def test_a_malformed_date_is_refused_when_the_run_is_triggered(dag, pipeline_env, start, end, param):
    with pytest.raises(Exception, match=f"param {param}") as refused:
        run(dag, start, end)
    assert type(refused.value).__name__ == "ParamValidationError"
    with sqlite3.connect(pipeline_env) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'channel_reporting'").fetchone() is None


def test_a_failed_task_calls_the_configured_notifier(dag, pipeline_env, monkeypatch, tmp_path):
    alerts = tmp_path / "alerts.jsonl"
    spec = {"class": "failure_alerts.FileNotifier", "kwargs": {"path": str(alerts)}}
    monkeypatch.setenv("AIRFLOW_VAR_IHC_FAILURE_NOTIFIER", orjson.dumps(spec).decode())

    dag_run = run(dag, "2023-09-07", "2023-09-01")

    assert str(task_instances(dag_run)[("init_db", -1)].state).endswith("failed")
    [alert] = [orjson.loads(line) for line in alerts.read_bytes().splitlines()]
    assert (alert["dag_id"], alert["run_id"], alert["task_id"]) == ("ihc_attribution", dag_run.run_id, "init_db")
    assert "param end_date=2023-09-01" in alert["error"]


def aged_run_folder(name: str, days: float) -> Path:
    folder = Path(settings.work_base()) / name
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    (folder / "chunks" / "chunk-0000.json").write_text("[]")
    when = time.time() - days * 86400
    for path in (folder / "chunks" / "chunk-0000.json", folder / "chunks", folder):
        os.utime(path, (when, when))
    return folder


def test_a_run_keeps_its_csv_and_removes_only_expired_run_folders(dag, pipeline_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_IHC_RUN_RETENTION_DAYS", "30")
    expired, recent = aged_run_folder("manual__expired-0000", 40), aged_run_folder("manual__recent-0000", 2)

    dag_run = run(dag)

    assert succeeded(dag_run)
    assert not expired.exists() and recent.exists()
    own = run_directory(Path(settings.work_base()), dag_run.run_id)
    latest = settings.output_dir() / "channel_reporting.csv"
    assert (own / latest.name).read_bytes() == latest.read_bytes()
    assert (own / SUMMARY_FILE).exists()
    assert [p.name for p in settings.output_dir().iterdir() if p.name.endswith(".lock")] == []


def test_a_free_account_run_sends_no_more_requests_than_one_packing_of_the_range(dag, pipeline_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_IHC_MAX_SESSIONS_PER_REQUEST", "200")
    monkeypatch.setenv("AIRFLOW_VAR_IHC_CHUNK_SIZE", "150")
    whole_range = pack_requests([journey_rows(j) for j in range_journeys(pipeline_env, 200)], 100, 200)

    dag_run = run(dag)

    assert succeeded(dag_run)
    summary = RunSummary.load(run_directory(Path(settings.work_base()), dag_run.run_id) / SUMMARY_FILE)
    assert summary.chunks > 1
    assert summary.requests == len(whole_range)
