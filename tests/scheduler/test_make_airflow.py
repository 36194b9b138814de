"""``make airflow``'s entry point as a user runs it: up with the login printed, Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from include import settings
from tools.demo import free_port


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_make_airflow_serves_the_ui_and_ctrl_c_stops_every_process(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ATTRIBUTION_"))}
    env |= {"ATTRIBUTION_AIRFLOW_HOME": str(tmp_path / "airflow"), "ATTRIBUTION_DATA_DIR": str(tmp_path / "data")}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tools.local_stack", "--port", str(port)],
        cwd=settings.PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 240
        while "Ctrl-C" not in "".join(lines) and time.monotonic() < deadline and launcher.poll() is None:
            lines.append(launcher.stdout.readline())
        output = "".join(lines)
        assert f"Airflow UI: http://127.0.0.1:{port}  (login airflow / airflow)" in output, output
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=10) as response:
            assert response.status == 200
        children = psutil.Process(launcher.pid).children(recursive=True)
        names = " ".join(command_line(c) for c in children)
        for component in ("api_server", "scheduler", "dag-processor", "triggerer", "tools.local_server"):
            assert component in names, names

        launcher.send_signal(signal.SIGINT)

        assert launcher.wait(timeout=60) == 0
        time.sleep(1)
        assert [command_line(c) for c in children if alive(c)] == []
    finally:
        if launcher.poll() is None:
            launcher.kill()
