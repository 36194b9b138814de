"""Workers that die and warehouses that refuse: the tables hold the old state or the new one,
never a part; a rerun completes; errors say which problem and which file."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from include import pipeline
from include.attributions import ChunkResult, result_file
from include.chunks import ChunkInfo
from include.run_config import RunContext
from include.settings import PROJECT_ROOT, DateRange, RunWindow
from include.warehouse import WarehouseError
from tests.e2e.conftest import run, task_instances
from tests.steps import run_context
from tools.local_server import ServerConfig, ServerThread

WINDOW = RunWindow(DateRange("2023-09-01", "2023-09-07"), 30)


def context(db: Path, run_dir: Path, url: str) -> RunContext:
    return run_context(db, run_dir, url, WINDOW, chunk_size=500)


def attributed(db: Path, run_dir: Path, url: str) -> tuple[list[ChunkInfo], list[ChunkResult]]:
    """Chunks and their results, attributed by the server at ``url`` (nothing written yet)."""
    run = context(db, run_dir, url)
    pipeline.prepare(run)
    chunks = pipeline.journeys_step(run, pipeline.extract_step(run)).chunks
    return chunks, [pipeline.attribute_step(run, c) for c in chunks]


def table(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM attribution_customer_journey ORDER BY 1, 2").fetchall()


def python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=PROJECT_ROOT, **kwargs)


def holds_write_lock(db: Path) -> bool:
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def test_worker_killed_inside_write_attributions_leaves_the_old_state(
    sample_db, tmp_path, local_server, trained_engine
):
    old_chunks, old_results = attributed(sample_db, tmp_path / "old", local_server)
    pipeline.write_step(context(sample_db, tmp_path / "old", local_server), old_chunks, old_results)
    old = table(sample_db)
    reweighted = replace(trained_engine.parameters, weights=(0.6, 0.2, 0.2))
    other = ServerConfig(parameters={"default": replace(trained_engine, parameters=reweighted)})
    with ServerThread(other) as url:
        chunks, results = attributed(sample_db, tmp_path / "new", url)
    with sqlite3.connect(sample_db) as conn:  # makes each insert slow enough to be caught mid-way
        conn.execute(
            "CREATE TRIGGER slow AFTER INSERT ON attribution_customer_journey "
            "BEGIN SELECT COUNT(*) FROM session_sources; END"
        )
    job = tmp_path / "job.json"
    job.write_bytes(orjson.dumps({"chunks": [c.to_xcom() for c in chunks], "results": [r.to_xcom() for r in results]}))
    writer = python(
        "import orjson, sys; from pathlib import Path; from include import pipeline; "
        "from include.attributions import ChunkResult; from include.chunks import ChunkInfo; "
        "from include.settings import RunWindow; from tests.steps import run_context; "
        f"job = orjson.loads(Path({str(job)!r}).read_bytes()); "
        f"run = run_context(Path({str(sample_db)!r}), Path({str(tmp_path / 'new')!r}), {url!r}, "
        f"RunWindow.from_xcom({WINDOW.to_xcom()!r}), chunk_size=500); "
        "pipeline.write_step(run, [ChunkInfo.from_xcom(c) for c in job['chunks']], "
        "[ChunkResult(**r) for r in job['results']])"
    )
    deadline = time.monotonic() + 60
    while not holds_write_lock(sample_db) and time.monotonic() < deadline and writer.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    assert writer.poll() is None, "the writer finished before it could be killed"

    writer.send_signal(signal.SIGKILL)
    writer.wait()

    assert table(sample_db) == old
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DROP TRIGGER slow")
    pipeline.write_step(context(sample_db, tmp_path / "new", local_server), chunks, results)
    new = table(sample_db)
    assert new != old and len(new) == len(old) == sum(c.sessions for c in chunks)


def test_chunk_task_killed_mid_request_is_attributed_once_on_retry(sample_db, tmp_path, local_server, server_config):
    run = context(sample_db, tmp_path, local_server)
    pipeline.prepare(run)
    chunks = pipeline.journeys_step(run, pipeline.extract_step(run)).chunks
    slow = ServerConfig(parameters=server_config.parameters, latency_seconds=30)
    with ServerThread(slow) as slow_url:
        task = python(
            "from pathlib import Path; from include import pipeline; "
            "from include.chunks import ChunkInfo; from include.settings import RunWindow; "
            "from tests.steps import run_context; "
            f"run = run_context(Path({str(sample_db)!r}), Path({str(tmp_path)!r}), {slow_url!r}, "
            f"RunWindow.from_xcom({WINDOW.to_xcom()!r})); "
            f"pipeline.attribute_step(run, ChunkInfo.from_xcom({chunks[1].to_xcom()!r}))"
        )
        deadline = time.monotonic() + 60
        while slow.requests == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slow.requests > 0
        task.send_signal(signal.SIGKILL)
        task.wait()
    assert not (tmp_path / result_file(1)).exists()
    assert list((tmp_path / "results").glob("*")) == [], "no half-written result or temp file is left"

    results = [pipeline.attribute_step(run, c) for c in chunks]
    written = pipeline.write_step(run, chunks, results)

    rows = table(sample_db)
    assert written.rows == len(rows) == len({(r[0], r[1]) for r in rows}) == sum(c.sessions for c in chunks)


def test_missing_warehouse_fails_the_first_task_naming_the_file(dag, pipeline_env, monkeypatch, capfd, tmp_path):
    missing = tmp_path / "nowhere" / "challenge.db"
    monkeypatch.setenv("AIRFLOW_CONN_IHC_WAREHOUSE", f'{{"conn_type": "sqlite", "host": "{missing}"}}')

    dag_run = run(dag)

    assert str(task_instances(dag_run)[("init_db", -1)].state).endswith("failed")
    captured = capfd.readouterr()
    assert f"warehouse database {missing} does not exist" in captured.out + captured.err


@pytest.fixture
def read_only_db(sample_db_template, tmp_path):
    """A warehouse file nobody may write: read-only mode, and for root (who ignores modes) immutable."""
    db = tmp_path / "challenge.db"
    shutil.copyfile(sample_db_template, db)
    db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(db)], check=True)
    with pytest.raises(OSError):
        db.open("ab").close()
    yield db
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_read_only_warehouse_fails_saying_read_only_and_where(read_only_db):
    with pytest.raises(WarehouseError) as raised:
        pipeline.prepare(context(read_only_db, read_only_db.parent / "run", "http://127.0.0.1:9"))
    assert str(raised.value).startswith(f"warehouse database {read_only_db} is read-only")
    assert "the worker needs write access to the file and its folder" in str(raised.value)


def test_warehouse_locked_past_the_busy_timeout_says_locked_and_where(sample_db, monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "0.5")
    run = context(sample_db, sample_db.parent / "run", "http://127.0.0.1:9")
    pipeline.prepare(run)
    other_writer = sqlite3.connect(sample_db, isolation_level=None)
    other_writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseError) as raised:
            pipeline.report_step(run)
        assert time.monotonic() - started >= 0.5
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()
    assert str(raised.value) == (
        f"warehouse database {sample_db} is locked by another writer for longer than the lock timeout "
        "(0.5 s, env ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS)"
    )


def test_a_bad_variable_fails_the_first_task_naming_it_before_anything_is_extracted(
    dag, pipeline_env, monkeypatch, capfd, server_config
):
    monkeypatch.setenv("AIRFLOW_VAR_IHC_REQUEST_CONCURRENCY", "four")

    dag_run = run(dag)

    tis = task_instances(dag_run)
    assert str(tis[("init_db", -1)].state).endswith("failed")
    assert tis[("init_db", -1)].try_number == 1, "a bad Variable is not retried: it would fail the same way"
    assert not str(tis[("extract", -1)].state).endswith("success")
    captured = capfd.readouterr()
    assert "Variable ihc_request_concurrency='four' is not an integer" in captured.out + captured.err
    assert server_config.requests == 0


def release_when_init_db_waits_for_retry(lock: sqlite3.Connection, metadata_db: Path) -> threading.Thread:
    """Roll the lock holder back once the metadata DB shows init_db up for retry."""

    def watch() -> None:
        with closing(sqlite3.connect(metadata_db, timeout=30)) as meta:
            query = "SELECT count(*) FROM task_instance WHERE task_id = 'init_db' AND state = 'up_for_retry'"
            while not meta.execute(query).fetchone()[0]:
                time.sleep(0.1)
        lock.execute("ROLLBACK")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_warehouse_lock_timeout_is_retried_and_the_run_completes(dag, pipeline_env, monkeypatch, test_root):
    monkeypatch.setenv("ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "0.5")
    lock = sqlite3.connect(pipeline_env, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN IMMEDIATE")
    watcher = release_when_init_db_waits_for_retry(lock, test_root / "airflow" / "airflow.db")

    dag_run = run(dag)

    watcher.join(5)
    lock.close()
    tis = task_instances(dag_run)
    assert str(dag_run.state).endswith("success")
    assert tis[("init_db", -1)].try_number == 2
