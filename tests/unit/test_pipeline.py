"""The task functions chained by hand, without Airflow: the same data flow as the DAG."""

from __future__ import annotations

import csv
import gc
import sqlite3
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import orjson
import pytest
from upath import UPath

from include import pipeline
from include.attributions import ChunkResult, ResultsError
from include.chunks import ChunkInfo
from include.export import CSV_FILE
from include.html_report import REPORT_FILE
from include.ihc_client import ClientSettings, IhcApiError
from include.runfiles import local_path
from include.settings import DateRange, RunWindow
from include.summary import SUMMARY_FILE, RunSummary
from tests.steps import run_all, run_context
from tools.local_server import Fault

WINDOW = RunWindow(DateRange("2023-09-05", "2023-09-06"), 30)
FAST = ClientSettings(backoff_seconds=0.01, max_attempts=2)


def run_steps(
    db: Path, run_dir: Path, url: str, chunk_size: int = 150, csv_dir: Path | None = None, window: RunWindow = WINDOW
) -> tuple[list[ChunkInfo], list[ChunkResult], RunSummary]:
    done = run_all(context(db, run_dir, url, window, csv_dir, chunk_size=chunk_size))
    return done.chunks, done.results, done.summary


def context(db: Path, run_dir, url: str, window: RunWindow = WINDOW, csv_dir: Path | None = None, **variables):
    return run_context(db, run_dir, url, window, csv_dir or Path(str(run_dir)) / "output", FAST, **variables)


def test_the_widest_window_runs_through_every_step(sample_db, tmp_path, local_server):
    widest = RunWindow(DateRange("0001-01-31", "9999-12-31"), 30)
    _, _, summary = run_steps(sample_db, tmp_path, local_server, chunk_size=1000, window=widest)
    with sqlite3.connect(sample_db) as conn:
        assert summary.conversions == conn.execute("SELECT count(*) FROM conversions").fetchone()[0]
        assert summary.report_rows == conn.execute("SELECT count(*) FROM channel_reporting").fetchone()[0] > 0


def test_steps_attribute_the_window_and_summarise(sample_db, tmp_path, local_server):
    chunks, results, summary = run_steps(sample_db, tmp_path, local_server)

    assert len(chunks) == summary.chunks > 1
    assert [r.rows for r in results] == [c.sessions for c in chunks]
    with sqlite3.connect(sample_db) as conn:
        attributed = conn.execute("SELECT COUNT(DISTINCT conv_id) FROM attribution_customer_journey").fetchone()[0]
        in_range = conn.execute(
            "SELECT COUNT(*) FROM conversions WHERE conv_date BETWEEN '2023-09-05' AND '2023-09-06'"
        ).fetchone()[0]
    assert attributed == summary.attributed
    assert summary.conversions == in_range == summary.attributed + summary.without_sessions
    assert summary.report_rows == len(Path(summary.csv_path).read_text().splitlines()) - 1
    assert (tmp_path / "summary.json").is_file()


def test_the_chunks_earliest_session_date_is_that_of_the_stored_rows(sample_db, tmp_path, local_server):
    """The writer takes the new rows' earliest date from the chunk descriptions instead of
    reading it back: both must agree, or the report would skip days whose attributions changed."""
    chunks, results, _ = run_steps(sample_db, tmp_path, local_server)
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DELETE FROM attribution_customer_journey")
    run = context(sample_db, tmp_path, local_server)
    written = pipeline.write_step(run, chunks, results)
    earlier = [replace(c, first_session_date=None) for c in chunks]
    with sqlite3.connect(sample_db) as conn:
        conn.execute("DELETE FROM attribution_customer_journey")
    read_back = pipeline.write_step(run, earlier, results)
    with sqlite3.connect(sample_db) as conn:
        stored = conn.execute(
            "SELECT MIN(s.event_date) FROM attribution_customer_journey a "
            "JOIN session_sources s ON s.session_id = a.session_id"
        ).fetchone()[0]
    assert len({c.first_session_date for c in chunks}) > 1
    assert written.first_session_date == read_back.first_session_date == stored
    assert min(c.first_session_date for c in chunks) == stored


def test_a_failing_chunk_stops_the_step_and_writes_nothing(sample_db, tmp_path, local_server, server_config):
    server_config.faults.append(Fault("500", times=-1))

    with pytest.raises(IhcApiError, match="failed after 2 attempts"):
        run_steps(sample_db, tmp_path, local_server)

    with sqlite3.connect(sample_db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM attribution_customer_journey").fetchone()[0] == 0


def test_a_chunk_failing_on_its_retry_keeps_its_last_result_and_leaves_no_other_file(
    sample_db, tmp_path, local_server, server_config
):
    chunks, results, _ = run_steps(sample_db, tmp_path, local_server)
    kept = (tmp_path / results[1].file).read_bytes()
    server_config.faults.append(Fault("500", times=-1, conversion_id=chunks_last_journey(tmp_path, chunks[1])))

    with pytest.raises(IhcApiError, match="failed after 2 attempts"):
        pipeline.attribute_step(context(sample_db, tmp_path, local_server), chunks[1])

    assert server_config.faults_fired > 0
    assert (tmp_path / results[1].file).read_bytes() == kept
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(Path(r.file).name for r in results)


def chunks_last_journey(run_dir: Path, chunk: ChunkInfo) -> str:
    """The conversion id of the chunk's last journey: its requests before it succeed first."""
    last = (run_dir / chunk.file).read_bytes().splitlines()[-1]
    return orjson.loads(last)[0]["conversion_id"]


def test_writer_refuses_when_a_chunk_result_is_missing(sample_db, tmp_path, local_server):
    chunks, results, _ = run_steps(sample_db, tmp_path, local_server)
    with sqlite3.connect(sample_db) as conn:
        before = conn.execute("SELECT * FROM attribution_customer_journey ORDER BY 1, 2").fetchall()

    with pytest.raises(ResultsError, match="chunk 2/"):
        pipeline.write_step(context(sample_db, tmp_path, local_server), chunks, [r for r in results if r.index != 1])

    with sqlite3.connect(sample_db) as conn:
        assert conn.execute("SELECT * FROM attribution_customer_journey ORDER BY 1, 2").fetchall() == before


def test_run_window_survives_xcom():
    assert RunWindow.from_xcom(WINDOW.to_xcom()) == WINDOW


def test_every_attributed_conversion_has_one_markov_credit_and_the_report_result_survives_xcom(
    sample_db, tmp_path, local_server
):
    run = context(sample_db, tmp_path, local_server)
    run_all(run)
    report = pipeline.report_step(run)
    assert report.markov_days == []  # nothing changed since the run: nothing scored again
    with run.warehouse.open() as db:
        sums = dict(db.execute("SELECT conv_id, SUM(credit) FROM attribution_markov GROUP BY conv_id"))
        attributed = {row[0] for row in db.execute("SELECT DISTINCT conv_id FROM attribution_customer_journey")}
    assert set(sums) == attributed != set()
    assert max(abs(total - 1) for total in sums.values()) < 1e-9
    assert pipeline.ReportResult(**orjson.loads(orjson.dumps(asdict(report)))) == report


def test_steps_work_on_an_object_store_run_folder(sample_db, tmp_path, local_server):
    """Nothing in the steps assumes a local disk: the same run with its folder on fsspec's memory store."""
    local_chunks, _, local_summary = run_steps(sample_db, tmp_path, local_server)
    store = UPath(f"memory://ihc-{uuid.uuid4().hex[:8]}/run")
    try:
        chunks, results, summary = run_steps(sample_db, store, local_server, csv_dir=tmp_path / "csv")
        assert local_path(store) is None
        assert sorted(p.name for p in (store / "chunks").iterdir()) == [
            f"chunk-{i:04d}.jsonl" for i in range(len(chunks))
        ]
        assert [r.file for r in results] == [f"results/chunk-{i:04d}.json" for i in range(len(chunks))]
        assert (store / SUMMARY_FILE).exists()
        assert (store / CSV_FILE).read_bytes() == (tmp_path / "csv" / CSV_FILE).read_bytes()
        assert (store / REPORT_FILE).exists()
    finally:
        store.fs.rm(store.path, recursive=True)
    assert chunks == local_chunks
    paths = ("csv_path", "run_csv_path", "roles_csv_path", "html_path", "run_html_path")
    assert {k: v for k, v in asdict(summary).items() if k not in paths} == {
        k: v for k, v in asdict(local_summary).items() if k not in paths
    }


@pytest.mark.parametrize("enabled_before", [True, False])
def test_collector_paused_turns_the_collector_off_and_back_as_it_was(enabled_before: bool) -> None:
    enabled = gc.isenabled()
    try:
        (gc.enable if enabled_before else gc.disable)()
        with pytest.raises(RuntimeError), pipeline.collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("the step failed")
        assert gc.isenabled() == enabled_before
    finally:
        (gc.enable if enabled else gc.disable)()


def test_the_phases_add_up_per_conversion_and_the_roles_table_is_them_summed(sample_db, tmp_path, local_server):
    _, _, summary = run_steps(
        sample_db, tmp_path, local_server, window=RunWindow(DateRange("2023-09-01", "2023-09-07"), 30)
    )
    with sqlite3.connect(sample_db) as conn:
        ihc, initializer, holder, closer = conn.execute(
            "SELECT SUM(a.ihc), SUM(p.initializer), SUM(p.holder), SUM(p.closer) FROM attribution_customer_journey a "
            "JOIN attribution_phases p ON p.conv_id = a.conv_id AND p.session_id = a.session_id"
        ).fetchone()
        with_holder = conn.execute(
            "SELECT COUNT(*) FROM (SELECT conv_id FROM attribution_phases GROUP BY conv_id HAVING SUM(holder) > 0.5)"
        ).fetchone()[0]
        phases_by_channel = dict(
            (row[0], row[1:])
            for row in conn.execute(
                "SELECT COALESCE(NULLIF(TRIM(s.channel_name), ''), '(no channel)'), SUM(p.initializer), "
                "SUM(p.holder), SUM(p.closer) FROM attribution_phases p "
                "JOIN session_sources s ON s.session_id = p.session_id GROUP BY 1"
            )
        )
        roles_by_channel = dict(
            (row[0], row[1:])
            for row in conn.execute(
                "SELECT channel_name, SUM(initializer), SUM(holder), SUM(closer) FROM channel_roles GROUP BY 1"
            )
        )
    attributed = summary.attributed
    assert ihc == pytest.approx(attributed, abs=1e-6)
    assert initializer == pytest.approx(attributed, abs=1e-6) and closer == pytest.approx(attributed, abs=1e-6)
    assert holder == pytest.approx(with_holder, abs=1e-6), "Σ holder counts the journeys with holder mass"
    assert 0 < with_holder < attributed, "single-session journeys have no holder"
    assert set(roles_by_channel) == set(phases_by_channel)
    for channel, sums in phases_by_channel.items():
        assert roles_by_channel[channel] == pytest.approx(sums, abs=1e-9), channel
    roles_csv = Path(summary.roles_csv_path).read_text().splitlines()
    assert roles_csv[0].startswith("channel_name,date,initializer,holder,closer")
    assert len(roles_csv) > len(roles_by_channel), "a row per channel and day"


def test_an_empty_run_leaves_the_latest_report_alone(sample_db, tmp_path, local_server):
    out = tmp_path / "out"
    _, _, full = run_steps(sample_db, tmp_path / "full", local_server, csv_dir=out)
    latest = Path(full.html_path).read_bytes()
    _, _, empty = run_steps(
        sample_db,
        tmp_path / "empty",
        local_server,
        csv_dir=out,
        window=RunWindow(DateRange("2030-01-01", "2030-01-02"), 30),
    )
    assert empty.conversions == 0 and not empty.html_replaced
    assert Path(empty.html_path).read_bytes() == latest, "the latest report is the last one with conversions"
    assert "No conversions in the range 2030-01-01 .. 2030-01-02" in Path(empty.run_html_path).read_text()
    assert "an earlier run's, left in place" in empty.text()


def test_the_training_export_option_writes_the_runs_journeys(sample_db, tmp_path, local_server):
    plain = context(sample_db, tmp_path, local_server)
    run = replace(plain, config=replace(plain.config, export_journeys=True))
    done = run_all(run)
    latest = tmp_path / "output" / "training_journeys.csv"
    assert latest.read_bytes() == (tmp_path / "training_journeys.csv").read_bytes()
    with latest.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == sum(c.sessions for c in done.chunks)
    assert sum(row["conversion"] == "1" for row in rows) == done.summary.attributed
