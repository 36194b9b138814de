"""``make airflow`` as a user runs it: up with the login printed, the Airflow CLI against it
through the env file it writes, and every process gone after Ctrl-C or a crashed component."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
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

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.home = tmp_path / "airflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ATTRIBUTION_"))}
        env |= {"ATTRIBUTION_AIRFLOW_HOME": str(self.home), "ATTRIBUTION_DATA_DIR": str(tmp_path / "data")}
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

    def stack_processes(self) -> list[psutil.Process]:
        """Everything the stack started: its components and whatever they started."""
        return psutil.Process(self.make.pid).children(recursive=True)

    def groups(self) -> set[int]:
        return {group for p in self.stack_processes() if (group := _group(p)) is not None and group != self.make.pid}

    def ctrl_c(self) -> None:
        os.killpg(self.make.pid, signal.SIGINT)

    def close(self) -> None:
        if self.make.poll() is None:
            os.killpg(self.make.pid, signal.SIGKILL)


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


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    stack = Launched(tmp_path)
    try:
        yield stack
    finally:
        stack.close()


def test_make_airflow_serves_the_ui_the_cli_works_through_its_env_file_and_ctrl_c_stops_all(launched):
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
    assert api.get("/backfills?dag_id=ihc_attribution")["total_entries"] == 1

    groups = launched.groups()
    launched.ctrl_c()

    # make ends itself with the SIGINT it got, once its recipe (the stack) has finished
    assert launched.make.wait(timeout=60) in (0, -signal.SIGINT)
    assert left_in(groups, patience=60) == []


def test_a_killed_scheduler_takes_the_whole_stack_down_with_its_workers(launched):
    scheduler = next(p for p in launched.stack_processes() if "scheduler" in p.cmdline())
    groups = launched.groups()
    assert len(left_in({_group(scheduler)})) > 1, "the scheduler runs serve-logs and executor workers"

    scheduler.kill()

    assert launched.make.wait(timeout=90) != 0
    assert left_in(groups, patience=60) == []
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", SERVE_LOGS_PORT))
