"""The checked start: every problem in one error, each naming its setting; a real socket for the
API's wait; the sample database said to be the sample everywhere."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from include import preflight, settings
from include.html_report import REPORT_FILE
from include.ihc_client import ApiTarget, IhcUnavailableError
from include.preflight import StartSources, checked_start, wait_for_api
from include.settings import ConfigurationError, DateRange, RunWindow, SettingError
from include.warehouse import sample_target, sqlite_target
from tests.steps import run_all, run_context


def sources(tmp_path: Path, db: Path, **changes) -> StartSources:
    values = {
        "conf": {"start_date": "2023-09-05", "end_date": "2023-09-06"},
        "param_names": ("start_date", "end_date"),
        "dates": lambda: DateRange("2023-09-05", "2023-09-06"),
        "variable": {settings.API_WAIT_SECONDS.name: "1"}.get,
        "warehouse": lambda: sqlite_target(db),
        "api": lambda: ApiTarget(f"http://127.0.0.1:{listening_port()}", "k", "default"),
        "run_dir": lambda: tmp_path / "runs" / "r1",
        "output_dir": lambda: tmp_path / "output",
        "api_key": lambda: "k",
    }
    return StartSources(**(values | changes))


_LISTENER: list[socket.socket] = []


def listening_port() -> int:
    """A port on 127.0.0.1 that accepts connections for the rest of the session."""
    if not _LISTENER:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        _LISTENER.append(sock)
    return _LISTENER[0].getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raises(message: str):
    def read():
        raise SettingError(message)

    return read


def test_a_good_configuration_gives_the_run_context(sample_db, tmp_path):
    run = checked_start(sources(tmp_path, sample_db))
    assert run.config.window == RunWindow(DateRange("2023-09-05", "2023-09-06"), 30)
    assert run.run_dir == tmp_path / "runs" / "r1" and run.run_dir.is_dir()
    assert run.warehouse.label == f"SQLite {sample_db}"
    assert list((tmp_path / "runs" / "r1").iterdir()) == [], "the write check leaves nothing behind"


def test_every_problem_is_named_in_one_error(sample_db, tmp_path):
    (tmp_path / "a-file").write_text("")
    bad = sources(
        tmp_path,
        tmp_path / "missing.db",
        conf={"start": "2023-09-05"},
        variable={"ihc_chunk_size": "0", "ihc_max_bad_row_share": "5"}.get,
        api=raises("connection ihc_api has no password (the API key)"),
        output_dir=lambda: tmp_path / "a-file",
    )
    with pytest.raises(ConfigurationError) as raised:
        checked_start(bad)
    problems = raised.value.problems
    assert len(problems) == 6, problems
    assert problems[0] == "trigger conf has unknown keys 'start': the params are start_date, end_date"
    assert problems[1].startswith("Variable ihc_chunk_size='0' is outside the allowed range")
    assert problems[2].startswith("Variable ihc_max_bad_row_share='5' is outside the allowed range")
    assert problems[3] == "connection ihc_api has no password (the API key)"
    assert problems[4] == f"ihc_warehouse: warehouse database {tmp_path / 'missing.db'} does not exist"
    assert problems[5].startswith(f"env ATTRIBUTION_OUTPUT_DIR='{settings.output_dir()}' is not a writable folder")
    assert all(f"  - {p}" in str(raised.value) for p in problems)


def test_the_checked_start_leaves_a_sqlite_warehouse_as_it_was(sample_db, tmp_path):
    before = sample_db.read_bytes()
    checked_start(sources(tmp_path, sample_db))
    assert sample_db.read_bytes() == before


def test_wait_for_api_returns_once_the_host_answers():
    assert wait_for_api(ApiTarget(f"http://127.0.0.1:{listening_port()}", "k", "d"), 1.0) == 1


def test_wait_for_api_logs_each_attempt_then_gives_a_transient_error(caplog):
    port = closed_port()
    caplog.set_level(logging.WARNING)
    with pytest.raises(IhcUnavailableError) as raised:
        wait_for_api(ApiTarget(f"http://127.0.0.1:{port}", "k", "d"), 1.5)
    attempts = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(attempts) >= 2
    assert attempts[0].startswith(f"IHC API 127.0.0.1:{port} not reachable, attempt 1: ConnectionRefusedError")
    assert f"the IHC API at 127.0.0.1:{port} (connection ihc_api) did not answer in" in str(raised.value)
    assert "ihc_api_wait_seconds=1.5 s" in str(raised.value)


def test_the_sample_database_is_named_in_the_log_summary_and_report(sample_db, tmp_path, local_server, caplog):
    caplog.set_level(logging.WARNING)
    checked_start(sources(tmp_path, sample_db, warehouse=lambda: sample_target(sample_db)))
    assert f"reading the sample database {sample_db} (no connection ihc_warehouse set)" in caplog.text

    done = run_all(
        run_context(
            sample_target(sample_db),
            tmp_path / "run",
            local_server,
            RunWindow(DateRange("2023-09-05", "2023-09-06"), 30),
        )
    )
    assert done.summary.warehouse.startswith(f"sample database {sample_db}")
    assert f"  warehouse                 sample database {sample_db}" in done.summary.text()
    assert "sample database" in (tmp_path / "run" / REPORT_FILE).read_text()


def test_a_sample_database_that_is_missing_says_how_to_make_it(tmp_path):
    with pytest.raises(SettingError, match=r"does not exist \(make demo generates it\)"):
        preflight.check_warehouse(sample_target(tmp_path / "challenge.db"))
