"""The latest files replaced as one set: killed exports, full disks, empty ranges, and headline
cards that depend on the range and the warehouse only."""

from __future__ import annotations

import errno
import multiprocessing
import os
import re
import signal
import sqlite3
from pathlib import Path

import pytest

from include import publish
from include.errors import FinalError
from include.export import CSV_FILE, ROLES_CSV_FILE
from include.html_report import REPORT_FILE
from include.ihc_client import ClientSettings
from include.pipeline import LATEST_FILES
from include.publish import JOURNAL_FILE, OutputWriteError
from include.settings import DateRange, RunWindow
from include.summary import RunSummary
from tests.steps import run_all, run_context

NAMES = ("a.csv", "b.csv", "report.html", "summary.json")
FAST = ClientSettings(backoff_seconds=0.01, max_attempts=2)
FULL = DateRange("2023-09-01", "2023-09-07")


def version(n: int) -> dict[str, bytes]:
    """The files of export ``n``: each says which export wrote it."""
    return {name: f"{name} of export {n}\n".encode() for name in NAMES}


def export(folder: Path, files: dict[str, bytes]) -> None:
    with publish.locked(folder, NAMES):
        publish.replace_set(folder, files)


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file of the folder, hidden ones too: a leftover temporary or journal shows."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_set_is_replaced_whole_and_leaves_no_other_file(tmp_path):
    export(tmp_path, version(1))
    export(tmp_path, version(2))
    assert folder_files(tmp_path) == version(2)


def _kill_on_call(owner: object, attribute: str, nth: int) -> None:
    """``owner.attribute`` kills this process on its ``nth`` call, before doing anything."""
    real, calls = getattr(owner, attribute), []

    def killing(*args, **kwargs):
        calls.append(args)
        if len(calls) == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, attribute, killing)


def _export_killed(folder: Path, owner: object, attribute: str, nth: int) -> None:
    _kill_on_call(owner, attribute, nth)
    export(folder, version(2))


@pytest.mark.parametrize(
    ("owner", "attribute", "nth", "survivor"),
    [
        pytest.param(publish, "_stage", 3, 1, id="two temporaries written"),
        pytest.param(os, "replace", 1, 1, id="the journal's own temporary written"),
        pytest.param(os, "replace", 2, 2, id="journal written, nothing renamed"),
        pytest.param(os, "replace", 3, 2, id="after the first rename"),
        pytest.param(os, "replace", 5, 2, id="before the last rename"),
        pytest.param(publish, "fsync_folder", 2, 2, id="all renamed, journal left"),
    ],
)
def test_an_export_killed_anywhere_leaves_one_whole_set_after_the_next(tmp_path, owner, attribute, nth, survivor):
    export(tmp_path, version(1))
    killed = multiprocessing.get_context("fork").Process(target=_export_killed, args=(tmp_path, owner, attribute, nth))
    killed.start()
    killed.join(30)
    assert killed.exitcode == -signal.SIGKILL
    assert set(folder_files(tmp_path)) > set(NAMES), "the kill left a temporary or a journal"

    with publish.locked(tmp_path, NAMES):  # the start of the next export
        assert folder_files(tmp_path) == version(survivor)
    export(tmp_path, version(3))
    assert folder_files(tmp_path) == version(3)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_failed_write_names_the_file_and_the_setting_and_leaves_the_previous_set(tmp_path, monkeypatch, code):
    export(tmp_path, version(1))
    fail_fsync_of(monkeypatch, tmp_path / "report.html", code)

    with pytest.raises(OutputWriteError) as raised:
        export(tmp_path, version(2))

    assert isinstance(raised.value, FinalError)
    assert str(raised.value).startswith(f"cannot write {tmp_path / 'report.html'}: ")
    assert os.strerror(code) in str(raised.value)
    assert "env ATTRIBUTION_OUTPUT_DIR, or $ATTRIBUTION_DATA_DIR/output when unset" in str(raised.value)
    assert folder_files(tmp_path) == version(1)


def fail_fsync_of(monkeypatch, target: Path, code: int) -> None:
    """os.fsync fails with ``code`` on a temporary for ``target``, as on a full or read-only disk
    (the tests run as root, whom a read-only folder mode does not stop)."""
    real = os.fsync

    def fsync(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if path.parent == target.parent and path.name.startswith(f".{target.name}."):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_an_unfinished_journal_is_finished_by_the_next_export_only(tmp_path, monkeypatch):
    """A rename that fails keeps the journal: the next export completes the set before anything else."""
    export(tmp_path, version(1))
    real, renamed = os.replace, []

    def replace(src, dst):
        if Path(dst).name in NAMES:
            if renamed:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            renamed.append(dst)
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputWriteError, match=f"cannot write {tmp_path / NAMES[1]}: OSError: Input/output error"):
        export(tmp_path, version(2))
    monkeypatch.undo()
    assert JOURNAL_FILE in folder_files(tmp_path)

    with publish.locked(tmp_path, NAMES):
        assert folder_files(tmp_path) == version(2)


# The steps of whole runs, on the sample and the local server.


def run(db: Path, run_dir: Path, url: str, out: Path, dates: DateRange = FULL, lookback_days: int = 30) -> RunSummary:
    return run_all(run_context(db, run_dir, url, RunWindow(dates, lookback_days), out, FAST)).summary


def latest_is_the_runs(out: Path, run_dir: Path) -> bool:
    """The output folder holds exactly the four files of that run, and nothing else."""
    return folder_files(out) == {name: (run_dir / name).read_bytes() for name in sorted(LATEST_FILES)}


def test_an_export_failing_between_renames_leaves_a_whole_set_after_the_next_run(
    sample_db, tmp_path, local_server, monkeypatch
):
    out = tmp_path / "out"
    run(sample_db, tmp_path / "first", local_server, out)
    real = os.replace

    def replace(src, dst):
        if Path(dst).name == ROLES_CSV_FILE and Path(dst).parent == out:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputWriteError, match=f"cannot write {out / ROLES_CSV_FILE}"):
        run(sample_db, tmp_path / "second", local_server, out, DateRange("2023-09-05", "2023-09-05"))
    monkeypatch.undo()
    with publish.locked(out, LATEST_FILES):  # the start of the next export finishes the second's set
        assert latest_is_the_runs(out, tmp_path / "second")

    run(sample_db, tmp_path / "third", local_server, out)
    assert latest_is_the_runs(out, tmp_path / "third")


def test_a_full_disk_names_the_file_and_setting_and_leaves_the_latest_set_as_it_was(
    sample_db, tmp_path, local_server, monkeypatch
):
    out = tmp_path / "out"
    run(sample_db, tmp_path / "first", local_server, out)
    before = folder_files(out)
    fail_fsync_of(monkeypatch, out / REPORT_FILE, errno.ENOSPC)

    with pytest.raises(OutputWriteError) as raised:
        run(sample_db, tmp_path / "second", local_server, out, DateRange("2023-09-05", "2023-09-05"))

    assert f"cannot write {out / REPORT_FILE}: OSError: No space left on device" in str(raised.value)
    assert "ATTRIBUTION_OUTPUT_DIR" in str(raised.value)
    assert folder_files(out) == before
    assert latest_is_the_runs(out, tmp_path / "first")


def test_a_run_folder_it_cannot_write_names_the_work_dir_setting(sample_db, tmp_path, local_server, monkeypatch):
    out, own = tmp_path / "out", tmp_path / "run"
    fail_fsync_of(monkeypatch, own / CSV_FILE, errno.EACCES)

    with pytest.raises(OutputWriteError) as raised:
        run(sample_db, own, local_server, out)

    assert f"cannot write {own / CSV_FILE}: PermissionError: Permission denied" in str(raised.value)
    assert "the run folder is under env ATTRIBUTION_WORK_DIR" in str(raised.value)
    assert folder_files(out) == {}


def test_an_empty_range_leaves_the_whole_latest_set_alone(sample_db, tmp_path, local_server, caplog):
    out = tmp_path / "out"
    run(sample_db, tmp_path / "full", local_server, out)
    before = folder_files(out)

    empty = run(sample_db, tmp_path / "empty", local_server, out, DateRange("2030-01-01", "2030-01-02"))

    assert empty.conversions == 0 and not empty.html_replaced
    assert folder_files(out) == before
    assert latest_is_the_runs(out, tmp_path / "full")
    assert sorted(p.name for p in (tmp_path / "empty").glob("*.*")) == sorted(LATEST_FILES)
    assert f"the latest files in {out} are left as they were" in caplog.text


def cards(report: Path) -> dict[str, str]:
    return dict(re.findall(r'<div class="value" id="total-([a-z-]+)">([^<]+)</div>', report.read_text()))


def add_an_old_session(db: Path, day: str) -> None:
    """A session with a cost 47 days before a conversion of ``day``: only a longer look-back reaches it."""
    with sqlite3.connect(db) as conn:
        (user,) = conn.execute("SELECT MIN(user_id) FROM conversions WHERE conv_date = ?", (day,)).fetchone()
        conn.execute(
            "INSERT INTO session_sources VALUES ('S-OLD', ?, '2023-07-20', '12:00:00', 'Performance Max', 1, 0, 0)",
            (user,),
        )
        conn.execute("INSERT INTO session_costs VALUES ('S-OLD', 99.0)")


def test_the_cards_of_a_range_are_the_same_whatever_ran_before(sample_db, tmp_path, local_server):
    """A day rerun with a longer look-back in between: the last run then recomputes the report from
    further back, where the day's attributions were; its cards are still the first run's."""
    add_an_old_session(sample_db, "2023-09-05")
    out = tmp_path / "out"
    run(sample_db, tmp_path / "first", local_server, out)
    first = cards(out / REPORT_FILE)
    run(sample_db, tmp_path / "day", local_server, out, DateRange("2023-09-05", "2023-09-05"), lookback_days=60)
    again = run(sample_db, tmp_path / "again", local_server, out)

    assert cards(out / REPORT_FILE) == first
    assert again.report_first < RunWindow(FULL, 30).first_session_date, "the report step reached further back"
    assert {card: first[card] for card in RANGE_CARDS} == range_cards(sample_db, FULL)


RANGE_CARDS = ("conversions-in-range", "attributed", "not-attributed", "revenue-of-conversions")


def range_cards(db: Path, dates: DateRange) -> dict[str, str]:
    """The range's cards as SQL counts them."""
    with sqlite3.connect(db) as conn:
        conversions, revenue = conn.execute(
            "SELECT COUNT(*), SUM(revenue) FROM conversions WHERE conv_date BETWEEN ? AND ?",
            (dates.start, dates.end),
        ).fetchone()
        attributed = conn.execute(
            "SELECT COUNT(DISTINCT a.conv_id) FROM attribution_customer_journey a "
            "JOIN conversions c ON c.conv_id = a.conv_id WHERE c.conv_date BETWEEN ? AND ?",
            (dates.start, dates.end),
        ).fetchone()[0]
    return {
        "conversions-in-range": f"{conversions:,}",
        "attributed": f"{attributed:,}",
        "not-attributed": f"{conversions - attributed:,}",
        "revenue-of-conversions": f"{revenue:,.2f} EUR",
    }
