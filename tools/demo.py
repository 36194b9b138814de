"""``make demo``: run the whole pipeline once, offline, on the sample database.

Generates ``data/challenge.db`` if missing, trains the local IHC engine's default conversion
type on it (unless its parameter file is newer than the database), starts the local IHC server
on 127.0.0.1 with those parameters, runs the DAG once in real Airflow (``airflow dags test``),
prints the run summary and stops the server. Its AIRFLOW_HOME, SQLite metadata DB and Airflow's
output (``demo.log``) are ``.airflow/demo/``, never ``make airflow``'s: a running stack's
scheduler would take over the test run's tasks (``ATTRIBUTION_AIRFLOW_HOME`` moves ``.airflow``;
neither a global ``AIRFLOW_HOME`` nor ``ATTRIBUTION_AIRFLOW_DB`` is used). One demo at a time
per home: a second one says which process runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson

from include import settings
from include.summary import SUMMARY_FILE, RunSummary
from tools import engine_parameters
from tools.engine_training import ensure_default
from tools.local_airflow import HomeInUseError, HomeLock, airflow_env, airflow_home, local_api_connection

LOG_TAIL = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((settings.LOCAL_API_HOST, 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, process: subprocess.Popen, timeout: float = 20.0, name: str = "the local IHC server"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")
        try:
            socket.create_connection((settings.LOCAL_API_HOST, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout} s")


def newest_summary(since: float) -> RunSummary | None:
    candidates = [p for p in Path(settings.work_base()).glob(f"*/{SUMMARY_FILE}") if p.stat().st_mtime >= since]
    return RunSummary.load(max(candidates, key=lambda p: p.stat().st_mtime)) if candidates else None


def demo_home() -> Path:
    return airflow_home() / "demo"


def demo_env(home: Path, api_port: int) -> dict[str, str]:
    """Airflow on the demo's own SQLite metadata DB, talking to the demo's local IHC server."""
    base = {k: v for k, v in os.environ.items() if k != "ATTRIBUTION_AIRFLOW_DB"}
    return airflow_env(home, base) | local_api_connection(settings.local_api_url(port=api_port), settings.LOCAL_API_KEY)


def main() -> int:
    try:
        conf = {"start_date": settings.default_start_date(), "end_date": settings.default_end_date()}
    except settings.SettingError as exc:
        print(f"demo not started: {exc}", file=sys.stderr)
        return 1
    home = demo_home()
    lock = HomeLock(home / "demo.pid")
    try:
        lock.acquire({"pid": os.getpid()})
    except HomeInUseError as in_use:
        print(
            f"demo not started: make demo is already running on {home} (pid {in_use.note.get('pid', '?')})",
            file=sys.stderr,
        )
        return 1
    try:
        return run(home, conf)
    finally:
        lock.release()


def run(home: Path, conf: dict[str, str]) -> int:
    log_path = home / "demo.log"
    airflow = str(Path(sys.executable).with_name("airflow"))
    engine_dir = engine_parameters.engine_dir()
    trained = ensure_default(engine_dir)
    print(f"local IHC engine parameters: {trained.path}", flush=True)
    port = free_port()
    env = demo_env(home, port)
    with log_path.open("w") as log:

        def airflow_cli(*args: str) -> int:
            return subprocess.call([airflow, *args], env=env, stdout=log, stderr=subprocess.STDOUT)

        print(f"preparing the demo's Airflow metadata DB in {home} ...", flush=True)
        if airflow_cli("db", "migrate") or airflow_cli("pools", "set", settings.API_POOL, "4", "IHC API requests"):
            print(f"Airflow set-up failed; see {log_path}", file=sys.stderr)
            return 1
        server = subprocess.Popen(
            [sys.executable, "-m", "tools.local_server", "--port", str(port), "--engine-dir", str(engine_dir)],
            env=env,
            stdout=log,
            stderr=log,
        )
        try:
            wait_for_port(port, server)
            print(f"local IHC server on {settings.local_api_url(port=port)}; running the DAG ...", flush=True)
            started = time.time()
            code = airflow_cli("dags", "test", settings.DAG_ID, "-c", orjson.dumps(conf).decode())
        finally:
            server.terminate()
            server.wait(timeout=10)
    summary = newest_summary(started)
    if code != 0 or summary is None:
        print("".join(log_path.read_text().splitlines(keepends=True)[-LOG_TAIL:]), file=sys.stderr)
        print(f"the DAG run failed (exit code {code}); full log: {log_path}", file=sys.stderr)
        return 1
    print(summary.text())
    print(f"took {time.time() - started:.1f} s; Airflow log: {log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
