"""python3 -m tools.postgres_server, as .ci/run calls it: start prints the URL alone, stop ends it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from include import settings, warehouse


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tools.postgres_server", *args]
    return subprocess.run(command, cwd=settings.PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_help_names_both_actions() -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    assert "{start,stop}" in result.stdout and "print its URL" in result.stdout
    assert "DIR" in cli("start", "--help").stdout


@pytest.mark.parametrize("args", [(), ("restart", "/tmp/x"), ("start",)])
def test_a_wrong_call_is_refused_with_the_usage(args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python3 -m tools.postgres_server")


@pytest.mark.postgres
def test_start_prints_a_url_that_answers_and_stop_removes_the_folder() -> None:
    # as in .ci/run: a folder under /tmp (pytest's tmp_path is closed to the postgres user root runs initdb as)
    folder = Path(tempfile.mkdtemp(prefix="ihc-pg-cli-"))
    started = cli("start", str(folder))
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert started.stdout == url + "\n" and url.startswith("postgresql://postgres@127.0.0.1:")
        with warehouse.postgres_target(url, "check").open() as db:
            assert db.execute("SELECT 1").fetchone()[0] == 1
    finally:
        stopped = cli("stop", str(folder))
    assert stopped.returncode == 0, stopped.stderr
    assert not folder.exists()
    with pytest.raises(warehouse.WarehouseError), warehouse.postgres_target(url, "check").open():
        pass
