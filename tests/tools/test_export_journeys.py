"""``python -m tools.export_journeys`` on a small generated warehouse: the file holds the journeys
the pipeline's journey step builds; a bad argument is named, without a traceback."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from include import extract, settings, warehouse
from include.journeys import JourneyStats, build_journeys
from include.training_export import HEADER
from tools.sample_data import SampleSpec, generate


@pytest.fixture(scope="module")
def small_warehouse(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("export") / "small.db"
    generate(path, SampleSpec(seed=5, scale=0.02))
    return path


def export_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.export_journeys", *args],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def journey_step_counts(db_path: Path) -> tuple[int, int]:
    stats = JourneyStats()
    with warehouse.connect_sqlite(db_path) as db:
        start, end = settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE
        conversions = list(extract.iter_conversions(db, start, end))
        sessions = extract.iter_sessions_of_converting_users(db, start, end, 30)
        for _ in build_journeys(conversions, sessions, 30, settings.MAX_SESSIONS_PER_REQUEST.default, stats):
            pass
    return stats.journeys, stats.sessions


def test_the_file_holds_the_journeys_the_journey_step_builds(small_warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "export" / "training.csv"
    done = export_cli("--warehouse", str(small_warehouse), "--out", str(out))
    assert done.returncode == 0, done.stderr
    with out.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        assert tuple(next(reader)) == HEADER
        rows = list(reader)
    journeys, sessions = journey_step_counts(small_warehouse)
    assert journeys > 20
    assert (len({r[0] for r in rows}), len(rows)) == (journeys, sessions)
    assert sum(r[6] == "1" for r in rows) == journeys
    assert f"journeys                  {journeys:,}\n" in done.stdout
    assert f"sessions                  {sessions:,}\n" in done.stdout
    assert f"file                      {out}\n" in done.stdout


def test_a_bad_start_is_named_and_writes_nothing(small_warehouse: Path, tmp_path: Path) -> None:
    done = export_cli("--warehouse", str(small_warehouse), "--start", "2023-09-31", "--out", str(tmp_path / "t.csv"))
    assert done.returncode == 1
    assert "--start='2023-09-31' is not a date of the form YYYY-MM-DD" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_missing_warehouse_is_named(tmp_path: Path) -> None:
    done = export_cli("--warehouse", str(tmp_path / "nope.db"), "--out", str(tmp_path / "t.csv"))
    assert done.returncode == 1
    assert f"warehouse database {tmp_path / 'nope.db'} does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "t.csv").exists()
