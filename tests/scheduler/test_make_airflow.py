"""``make airflow`` as a user runs it: up with the login printed, the Airflow CLI against it
through the env file it writes, and every process gone after Ctrl-C or a crashed component."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from include import settings
from tests.airflow_rest import AirflowApi
from tools.demo import free_port
from tools.local_stack import LOGIN

README_COMMAND = re.compile(r"`(airflow (?:variables set|backfill create) [^`]+)`")
SERVE_LOGS_PORT = 8793


class Launched:
    """``make airflow PORT=...`` started in its own process group, as a terminal runs it."""

    def __init__(self, tmp_path: Path, metadata_db: str | None = None) -> None:
        self.port = free_port()
        self.home = tmp_path / "airflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ATTRIBUTION_"))}
        env |= {"ATTRIBUTION_AIRFLOW_HOME": str(self.home), "ATTRIBUTION_DATA_DIR": str(tmp_path / "data")}
        env |= {"ATTRIBUTION_AIRFLOW_DB": metadata_db} if metadata_db else {}
        self.make = subprocess.Popen(
            ["make", "--no-print-directory", "airflow", f"PORT={self.port}"],
            cwd=settings.PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        while "Ctrl-C" not in "".join(lines) and self.make.poll() is None:
            lines.append(self.make.stdout.readline())
        self.output = "".join(lines)
        self.started_groups = self.groups()

    def stack_processes(self) -> list[psutil.Process]:
        """Everything the stack started: its components and whatever they started."""
        return psutil.Process(self.make.pid).children(recursive=True)

    def groups(self) -> set[int]:
        return {group for p in self.stack_processes() if (group := _group(p)) is not None and group != self.make.pid}

    def ctrl_c(self) -> None:
        os.killpg(self.make.pid, signal.SIGINT)

    def close(self) -> None:
        """After a failed test too: make, the launcher, and every group the stack started."""
        for group in [self.make.pid, *self.started_groups]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        self.make.wait()


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def left_in(groups: set[int], patience: float = 0.0) -> list[str]:
    """Command lines of live processes in these process groups, after waiting up to
    ``patience`` seconds for them to go."""
    deadline = time.monotonic() + patience
    while True:
        left = [
            " ".join(process.info["cmdline"] or [])
            for process in psutil.process_iter(["status", "cmdline"])
            if _group(process) in groups and process.info["status"] != psutil.STATUS_ZOMBIE
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@contextlib.contextmanager
def make_airflow(tmp_path: Path, metadata_db: str | None = None) -> Iterator[Launched]:
    stack = Launched(tmp_path, metadata_db)
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def on_postgres(tmp_path: Path, airflow_metadata_url: str) -> Iterator[Launched]:
    """make airflow with ATTRIBUTION_AIRFLOW_DB: backfills while runs write need PostgreSQL."""
    with make_airflow(tmp_path, airflow_metadata_url) as stack:
        yield stack


@pytest.fixture
def on_sqlite(tmp_path: Path) -> Iterator[Launched]:
    """make airflow as it starts by default, its metadata DB a SQLite file."""
    with make_airflow(tmp_path) as stack:
        yield stack


def test_make_airflow_serves_the_ui_the_cli_works_through_its_env_file_and_ctrl_c_stops_all(on_postgres):
    launched = on_postgres
    assert f"Airflow UI: http://127.0.0.1:{launched.port}  (login airflow / airflow)" in launched.output
    env_file = launched.home / "airflow.env"
    assert f"source {env_file}" in launched.output
    with urllib.request.urlopen(f"http://127.0.0.1:{launched.port}/api/v2/monitor/health", timeout=10) as response:
        assert response.status == 200
    names = " ".join(" ".join(p.cmdline()) for p in launched.stack_processes())
    for component in ("api_server", "scheduler", "dag-processor", "triggerer", "tools.local_server"):
        assert component in names, names

    commands = README_COMMAND.findall((settings.PROJECT_ROOT / "README.md").read_text())
    assert {c.split()[1] for c in commands} == {"variables", "backfill"}, commands
    for command in commands:
        done = subprocess.run(["bash", "-c", f"source {env_file} && {command}"], capture_output=True, text=True)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    api = AirflowApi(f"http://127.0.0.1:{launched.port}", *LOGIN)
    variable = next(c.split()[3:5] for c in commands if c.startswith("airflow variables set"))
    assert api.get(f"/variables/{variable[0]}")["value"] == variable[1]
    declared = settings.LOOKBACK_DAYS  # created by the stack from its declaration, bounds in the UI
    assert api.get(f"/variables/{declared.name}")["description"] == declared.ui_description
    assert api.get("/backfills?dag_id=ihc_attribution")["total_entries"] == 1

    groups = launched.groups()
    launched.ctrl_c()

    # make ends itself with the SIGINT it got, once its recipe (the stack) has finished
    assert launched.make.wait(timeout=60) in (0, -signal.SIGINT)
    assert left_in(groups, patience=60) == []


def test_on_sqlite_a_writer_waits_for_the_lock_and_a_killed_scheduler_takes_everything_down(on_sqlite):
    launched = on_sqlite
    api = AirflowApi(f"http://127.0.0.1:{launched.port}", *LOGIN)
    holder = sqlite3.connect(launched.home / "airflow.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(12, holder.execute, ["ROLLBACK"])
    release.start()
    try:
        api.post("/variables", {"key": "ihc_lock_probe", "value": "written while another writer held the lock"})
    finally:
        release.join()
        holder.close()
    assert api.get("/variables/ihc_lock_probe")["value"].startswith("written")

    scheduler = next(p for p in launched.stack_processes() if "scheduler" in p.cmdline())
    groups = launched.groups()
    assert len(left_in({_group(scheduler)})) > 1, "the scheduler runs serve-logs and executor workers"

    scheduler.kill()

    assert launched.make.wait(timeout=90) != 0
    assert left_in(groups, patience=60) == []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", SERVE_LOGS_PORT))
