"""Dirty input rows through the real steps (no Airflow): skipped one by one, named in the log and
the summary, never changing the numbers of the rows kept; too many of them fail the run."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from include.journeys import BadRowError
from include.settings import DateRange, RunWindow
from include.summary import RunSummary
from tests.steps import run_all, run_context

WINDOW = RunWindow(DateRange("2023-09-05", "2023-09-06"), 30)
BAD_SESSIONS = {
    "bad-time": ("2023-09-05", "9:00:00", "FB & IG Ads", 1, 1, 0),
    "null-date": (None, "09:00:00", "FB & IG Ads", 1, 1, 0),
    "no-channel": ("2023-09-05", "09:00:01", "", 1, 1, 0),
    "flag-two": ("2023-09-05", "09:00:02", "Referral", 2, 1, 0),
}


def run(db: Path, run_dir: Path, url: str, max_share: float = 0.05) -> tuple[RunSummary, list[tuple]]:
    summary = run_all(run_context(db, run_dir, url, WINDOW, chunk_size=500, max_bad_row_share=max_share)).summary
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM attribution_customer_journey ORDER BY 1, 2").fetchall()
    return summary, rows


def converting_user(db: Path) -> tuple[str, str]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            """SELECT c.conv_id, c.user_id FROM conversions c
               WHERE c.conv_date = '2023-09-05' AND EXISTS (
                   SELECT 1 FROM session_sources s WHERE s.user_id = c.user_id
                   AND s.event_date || ' ' || s.event_time < c.conv_date || ' ' || c.conv_time)
               ORDER BY c.conv_id LIMIT 1"""
        ).fetchone()


def dirty(db: Path) -> dict[str, str]:
    """Bad sessions for a converting user and bad conversions; returns the ids by kind."""
    conv_id, user = converting_user(db)
    with sqlite3.connect(db) as conn:
        for session_id, row in BAD_SESSIONS.items():
            conn.execute("INSERT INTO session_sources VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (session_id, user, *row))
            conn.execute("INSERT INTO session_costs VALUES (?, 10.0)", (session_id,))
        conn.executemany(
            "INSERT INTO conversions VALUES (?, ?, ?, ?, ?)",
            [
                ("neg-revenue", user, "2023-09-05", "10:00:00", -20.0),
                ("null-time", user, "2023-09-05", None, 30.0),
                ("null-revenue", user, "2023-09-06", "23:00:00", None),
            ],
        )
    return {"conv": conv_id, "user": user}


def test_bad_rows_are_skipped_named_and_leave_kept_rows_alone(sample_db, tmp_path, local_server, caplog):
    clean_summary, clean_rows = run(sample_db, tmp_path / "clean", local_server)
    ids = dirty(sample_db)

    with caplog.at_level(logging.WARNING):
        summary, rows = run(sample_db, tmp_path / "dirty", local_server)

    issues = summary.row_issues
    assert issues["session_sources: NULL or malformed event_date/event_time"]["ids"] == ["null-date", "bad-time"]
    assert issues["session_sources: empty channel_name"] == {"count": 1, "ids": ["no-channel"]}
    assert issues["session_sources: engagement flag other than 0/1"] == {"count": 1, "ids": ["flag-two"]}
    assert issues["conversions: negative revenue"] == {"count": 1, "ids": ["neg-revenue"]}
    assert issues["conversions: NULL or malformed conv_date/conv_time"] == {"count": 1, "ids": ["null-time"]}
    assert issues["conversions: NULL revenue (kept, counted as 0)"] == {"count": 1, "ids": ["null-revenue"]}
    assert "engagement flag other than 0/1: 1 rows (first ids: flag-two)" in caplog.text
    assert "rows skipped or adjusted" in summary.text()

    untouched = [r for r in clean_rows if r[0] != ids["conv"]]
    assert [r for r in rows if r[0] in {u[0] for u in untouched}] == untouched
    assert {r[1] for r in rows} & set(BAD_SESSIONS) == set()
    assert {r[0] for r in rows} - {r[0] for r in clean_rows} == {"null-revenue"}
    assert summary.attributed == clean_summary.attributed + 1
    with sqlite3.connect(sample_db) as conn:
        no_channel = conn.execute("SELECT cost FROM channel_reporting WHERE channel_name = '(no channel)'").fetchall()
    assert no_channel == [(10.0,)]


def test_too_many_bad_rows_fail_the_run_naming_reasons_and_ids(sample_db, tmp_path, local_server):
    dirty(sample_db)
    with pytest.raises(BadRowError, match=r"4 of \d+ session_sources rows are unusable \(limit 0%\).*flag-two"):
        run(sample_db, tmp_path, local_server, max_share=0.0)
