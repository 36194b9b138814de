"""``make airflow``: the full Airflow UI on 127.0.0.1 without Docker, with a real scheduler.

Trains the local IHC engine's default conversion type on the sample (unless its parameter file
is newer than the database), then starts the local IHC server, Airflow's API server (UI + REST
API), scheduler (LocalExecutor, mapped chunks run in parallel), dag-processor and triggerer,
after creating the metadata DB, the login, the ``ihc_api`` pool, the Variables' defaults and the
connections. Ctrl-C, or any component exiting, stops every process it started and everything
those started (executor workers, serve-logs), with SIGKILL for what ignores SIGTERM. Each
process logs to ``<AIRFLOW_HOME>/stack/<name>.log``; ``<AIRFLOW_HOME>/airflow.env`` is the
environment to ``source`` for the Airflow CLI against this stack.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from include import settings
from tools import engine_parameters
from tools.demo import free_port, wait_for_port
from tools.engine_training import ensure_default
from tools.local_airflow import CONNECT_ARGS_KEYS, airflow_env, airflow_home, connection_env, local_api_connection

LOGIN = ("airflow", "airflow")
COMPONENTS = ("scheduler", "dag-processor", "triggerer")


@dataclass
class LocalStack:
    """The processes of one local Airflow deployment, in its own AIRFLOW_HOME."""

    home: Path
    port: int = 8080
    api_port: int = field(default_factory=free_port)
    parallelism: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)
    engine_dir: Path = field(default_factory=engine_parameters.engine_dir)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{settings.LOCAL_API_HOST}:{self.port}"

    @property
    def ihc_url(self) -> str:
        return settings.local_api_url(port=self.api_port)

    def _secret(self) -> str:
        path = self.home / "jwt_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text()

    def env(self) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        passwords.write_bytes(orjson.dumps({LOGIN[0]: LOGIN[1]}))
        local_connections = local_api_connection(self.ihc_url, settings.LOCAL_API_KEY) | connection_env(
            settings.WAREHOUSE_CONN_ID, {"conn_type": "sqlite", "host": str(settings.default_warehouse_path())}
        )
        return (
            airflow_env(self.home, {**os.environ, **self.extra_env})
            # a connection the user set in the environment wins (the real API, their warehouse)
            | {k: v for k, v in local_connections.items() if k not in os.environ}
            | {
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{LOGIN[0]}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret(),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "ATTRIBUTION_RUN_DEADLINE_MINUTES": os.environ.get("ATTRIBUTION_RUN_DEADLINE_MINUTES", "120"),
            }
            | self.extra_env
        )

    def _cli(self, env: dict[str, str], *args: str) -> None:
        airflow = str(Path(sys.executable).with_name("airflow"))
        done = subprocess.run([airflow, *args], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args[:3])} failed:\n{done.stdout}{done.stderr}")

    @property
    def cli_env_file(self) -> Path:
        return self.home / "airflow.env"

    def write_cli_env(self, env: dict[str, str]) -> None:
        """The settings this stack adds to the environment, as a file to ``source`` before the
        Airflow CLI (``airflow backfill create``, ``airflow variables set``) talks to it."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()) if os.environ.get(k) != v]
        lines += [f"unset {k}" for k in CONNECT_ARGS_KEYS if k not in env]
        header = f"# source {self.cli_env_file}: the Airflow CLI then works against the stack at {self.url}\n"
        self.cli_env_file.write_text(header + "\n".join(lines) + "\n")

    def prepare(self, env: dict[str, str]) -> None:
        """Metadata DB, pool, and the Variables not set yet (connections come from the environment)."""
        self._cli(env, "db", "migrate")
        self._cli(env, "pools", "set", settings.API_POOL, str(self.parallelism), "IHC attribution API requests")
        defaults = self.home / "variables.json"
        defaults.write_bytes(orjson.dumps({v.name: str(v.default) for v in settings.VARIABLES}))
        self._cli(env, "variables", "import", "--action-on-existing-key", "skip", str(defaults))

    def _start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log_dir = self.home / "stack"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = (log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env()
        self.write_cli_env(env)
        self.prepare(env)
        airflow = str(Path(sys.executable).with_name("airflow"))
        server = [
            sys.executable,
            "-m",
            "tools.local_server",
            "--port",
            str(self.api_port),
            "--engine-dir",
            str(self.engine_dir),
            *self.server_args,
        ]
        self._start("ihc-local-api", server, env)
        self._start(
            "api-server", [airflow, "api-server", "--host", settings.LOCAL_API_HOST, "--port", str(self.port)], env
        )
        for component in COMPONENTS:
            self._start(component, [airflow, component], env)
        wait_for_port(self.api_port, self.processes["ihc-local-api"])
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.home / 'stack'}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the API server did not answer on {self.url} within {timeout} s")

    def stop(self, grace_seconds: float = 20.0) -> None:
        """Stop every process of the stack: each component's whole process group (executor
        workers, serve-logs, task processes), also when the component itself already died and
        left them behind; SIGTERM first, SIGKILL for what is left after the grace period."""
        groups = [process.pid for process in self.processes.values()]
        for signum, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 10.0)):
            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signum)
            deadline = time.monotonic() + wait
            while self._alive(groups) and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self._alive(groups):
                break
        self.processes.clear()

    def _alive(self, groups: list[int]) -> list[psutil.Process]:
        """Processes of these groups that still run (our own children are reaped here)."""
        for process in self.processes.values():
            process.poll()
        return [p for p in psutil.process_iter(["status"]) if _group(p) in groups and p.info["status"] != "zombie"]

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid)
    except ProcessLookupError:
        return None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.local_stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="port of the Airflow UI and REST API")
    args = parser.parse_args(argv)
    trained = ensure_default()
    stack = LocalStack(airflow_home(), port=args.port, engine_dir=Path(trained.path).parent)
    # Both stop the stack, also when started with SIGINT ignored (a background job of a
    # non-interactive shell, a test runner), which Python would otherwise leave ignored.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)
    print("starting Airflow (this takes half a minute) ...", flush=True)
    with stack:
        print(
            f"\nAirflow UI: {stack.url}  (login {LOGIN[0]} / {LOGIN[1]})\n"
            f"local IHC server: {stack.ihc_url} (engine parameters {trained.path})\nlogs: {stack.home / 'stack'}\n"
            f"Airflow CLI against it: source {stack.cli_env_file}  (then e.g. airflow dags list)\n"
            "The DAG ihc_attribution starts paused: unpause it or trigger it from the UI. Ctrl-C stops everything.",
            flush=True,
        )
        try:
            while all(p.poll() is None for p in stack.processes.values()):
                time.sleep(1)
            print("a process exited; stopping the rest", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nstopping ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
