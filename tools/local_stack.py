"""``make airflow``: the full Airflow UI on 127.0.0.1 without Docker, with a real scheduler.

Trains the local IHC engine's default conversion type on the sample (unless its parameter file
is newer than the database), then starts the local IHC server, Airflow's API server (UI + REST
API), scheduler (LocalExecutor, mapped chunks run in parallel), dag-processor and triggerer,
after creating the metadata DB, the login, the ``ihc_api`` pool, the Variables' defaults and the
default connections (in the metadata DB, where ``airflow connections add`` and the UI change them).
With ``--workers N`` (``make airflow WORKERS=N``) the executor is Celery instead:
a Redis broker on 127.0.0.1 and N Celery workers, each in its own folder with its own copy of
the code, logs and data folder, as if on its own machine. Ctrl-C, or any component exiting,
stops every process it started and everything those started (executor workers, task processes),
with SIGKILL for what ignores SIGTERM. Each
process logs to ``<AIRFLOW_HOME>/stack/<name>.log``; ``<AIRFLOW_HOME>/airflow.env`` is the
environment to ``source`` for the Airflow CLI against this stack.

Every server binds 127.0.0.1, the UI on ``--port``, the others on ports picked free at each start,
so stacks of two checkouts run side by side. One stack per AIRFLOW_HOME: ``<AIRFLOW_HOME>/stack.pid``
(locked while it runs) names the running one to a second ``make airflow`` and to ``airflow dags
test`` from the env file, which both refuse.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
from tools.local_airflow import (
    CONNECT_ARGS_KEYS,
    WORKER_NAME_ENV,
    HomeInUseError,
    HomeLock,
    airflow_env,
    airflow_home,
    connection_key,
    local_api_conn,
    stack_hostname,
)

LOGIN = ("airflow", "airflow")
# Airflow's own log servers (scheduler, triggerer) bind every interface on fixed ports, 8793 and
# 8794 (airflow/utils/serve_logs/core.py: no host setting), so a second stack could not start:
# the components skip theirs and the stack serves the same app, LOG_SERVER_APP, on 127.0.0.1 at
# a free port, from the log folder they share. The UI fetches a running task's log there.
COMPONENTS = {"scheduler": ["--skip-serve-logs"], "dag-processor": [], "triggerer": ["--skip-serve-logs"]}
LOG_SERVER_APP = "airflow.utils.serve_logs.log_server:get_app"
STACK_LOCK = "stack.pid"
CONN_DESCRIPTION = "make airflow's default: rewritten at each start until you change or replace it"
WORKER_CONCURRENCY = 2
# What a worker's copy of the project holds: the code a task imports, nothing else.
CODE_FOLDERS = ("include", "tools")


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
    workers: int = 0
    redis_port: int = field(default_factory=free_port)
    log_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    lock: HomeLock = field(init=False)

    def __post_init__(self) -> None:
        self.lock = HomeLock(self.home / STACK_LOCK)

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
        return (
            airflow_env(self.home, {**os.environ, **self.extra_env})
            | self.executor_env()
            | {
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{LOGIN[0]}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secret(),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.log_port),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.log_port),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{stack_hostname.__module__}.{stack_hostname.__name__}",
                settings.DEADLINE_ENV: os.environ.get(settings.DEADLINE_ENV, "120"),
            }
            | self.extra_env
        )

    def default_connections(self) -> dict[str, dict[str, object]]:
        """What the stack runs on offline: its local IHC server and the sample warehouse."""
        return {
            settings.API_CONN_ID: local_api_conn(self.ihc_url, settings.LOCAL_API_KEY),
            settings.WAREHOUSE_CONN_ID: {"conn_type": "sqlite", "host": str(settings.default_warehouse_path())},
        }

    def executor_env(self) -> dict[str, str]:
        """LocalExecutor, or Celery with this stack's Redis as broker and result store."""
        if not self.workers:
            return {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
        redis = f"redis://{settings.LOCAL_API_HOST}:{self.redis_port}"
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": f"{redis}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis}/1",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        }

    def worker_home(self, number: int) -> Path:
        return self.home / "workers" / f"worker-{number}"

    def worker_env(self, env: dict[str, str], number: int) -> dict[str, str]:
        """A worker's own AIRFLOW_HOME, logs, data folder and copy of the code: all it shares
        with the others is what the settings name (warehouse, API, broker), the run folders and
        the latest outputs, which stay the stack's (where the report page reads them) unless
        ATTRIBUTION_WORK_DIR and ATTRIBUTION_OUTPUT_DIR name others."""
        home = self.worker_home(number)
        code = home / "code"
        shutil.rmtree(code, ignore_errors=True)  # afresh at each start: the checkout's code, not a stale copy
        shutil.copytree(env["AIRFLOW__CORE__DAGS_FOLDER"], code / "dags", ignore=_CACHES)
        for folder in CODE_FOLDERS:
            shutil.copytree(settings.PROJECT_ROOT / folder, code / folder, ignore=_CACHES)
        return env | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(code / "dags"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "PYTHONPATH": os.pathsep.join([str(code), str(code / "dags")]),
            settings.DATA_DIR_ENV: str(home / "data"),
            settings.WORK_DIR_ENV: settings.work_base(env),
            settings.OUTPUT_DIR_ENV: str(settings.output_dir(env)),
            WORKER_NAME_ENV: f"worker-{number}",
        }

    def _start_workers(self, env: dict[str, str]) -> None:
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("Celery workers need a Redis broker: apt-get install redis-server")
        (self.home / "redis").mkdir(parents=True, exist_ok=True)
        port = str(self.redis_port)
        self._start(
            "redis",
            [redis, "--bind", settings.LOCAL_API_HOST, "--port", port, "--save", "", "--dir", str(self.home / "redis")],
            env,
        )
        wait_for_port(self.redis_port, self.processes["redis"], name="redis-server")
        airflow = str(Path(sys.executable).with_name("airflow"))
        for number in range(1, self.workers + 1):
            name = f"worker-{number}"
            worker = [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
            self._start(name, worker, self.worker_env(env, number), cwd=self.worker_home(number))

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
        Airflow CLI (``airflow backfill create``, ``airflow variables set``) talks to it.

        Without the run deadline: ``airflow dags test`` runs the DAG in the CLI's own process, where
        Airflow 3.3 fails a successful run of a DAG with a deadline at its end; the stack's
        scheduler, which keeps it, handles it."""
        env = {**env, settings.DEADLINE_ENV: "0"}
        lines = [f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items()) if os.environ.get(k) != v]
        lines += [f"unset {k}" for k in CONNECT_ARGS_KEYS if k not in env]
        header = f"# source {self.cli_env_file}: the Airflow CLI then works against the stack at {self.url}\n"
        self.cli_env_file.write_text(header + "\n".join(lines) + "\n" + self._dags_test_guard())

    def _dags_test_guard(self) -> str:
        check = f"{shlex.quote(sys.executable)} -m tools.local_stack --refuse-dags-test {shlex.quote(str(self.home))}"
        return (
            "# `airflow dags test` runs the DAG in this shell's process on the stack's metadata DB, where the\n"
            "# stack's scheduler would take over its tasks: refused, saying why, while the stack runs.\n"
            "airflow() {\n"
            '  if [ "$1" = dags ] && [ "$2" = test ]; then\n'
            f"    {check} || return\n"
            "  fi\n"
            '  command airflow "$@"\n'
            "}\n"
        )

    def prepare(self, env: dict[str, str]) -> None:
        """Metadata DB, pool, the Variables not set yet and the default connections."""
        self._cli(env, "db", "migrate")
        self._cli(env, "pools", "set", settings.API_POOL, str(self.parallelism), "IHC attribution API requests")
        defaults = self.home / "variables.json"
        defaults.write_bytes(
            orjson.dumps(
                {v.name: {"value": f"{v.default:g}", "description": v.ui_description} for v in settings.VARIABLES}
            )
        )
        self._cli(env, "variables", "import", "--action-on-existing-key", "skip", str(defaults))
        self.write_connections(env)

    def write_connections(self, env: dict[str, str]) -> None:
        """The default connections into the metadata DB, where ``airflow connections add`` and the UI
        change them (an ``AIRFLOW_CONN_*`` variable would win over both). ``connections.json``
        records what was written, so that the next start rewrites only what is still the stack's."""
        record = self.home / "connections.json"
        written = orjson.loads(record.read_bytes()) if record.exists() else {}
        defaults = {k: {**v, "description": CONN_DESCRIPTION} for k, v in self.default_connections().items()}
        with tempfile.TemporaryDirectory() as folder:  # the export holds the DB's passwords
            exported = Path(folder) / "connections.json"
            self._cli(env, "connections", "export", str(exported), "--file-format", "json")
            new = connections_to_write(defaults, orjson.loads(exported.read_bytes()), written, env)
            if not new:
                return
            exported.write_bytes(orjson.dumps(new))
            self._cli(env, "connections", "import", "--overwrite", str(exported))
        record.write_bytes(orjson.dumps(written | new))

    def _start(self, name: str, args: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        log_dir = self.home / "stack"
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / f"{name}.log").open("ab") as log:  # the process keeps its own copy
            self.processes[name] = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
            )

    def start(self) -> None:
        try:
            self.lock.acquire({"pid": os.getpid(), "url": self.url})
        except HomeInUseError as in_use:
            raise RuntimeError(running_message(self.home, in_use.note)) from None
        env = self.env()
        self.write_cli_env(env)
        self.prepare(env)
        if self.workers:
            self._start_workers(env)
        airflow = str(Path(sys.executable).with_name("airflow"))
        log_server = [sys.executable, "-m", "uvicorn", LOG_SERVER_APP, "--factory", "--no-access-log"]
        self._start("log-server", [*log_server, "--host", settings.LOCAL_API_HOST, "--port", str(self.log_port)], env)
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
        for component, options in COMPONENTS.items():
            self._start(component, [airflow, component, *options], env)
        wait_for_port(self.api_port, self.processes["ihc-local-api"])
        wait_for_port(self.log_port, self.processes["log-server"], timeout=60, name="the log server")
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
        self.lock.release()

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


_CACHES = shutil.ignore_patterns("__pycache__", "*.pyc")


def connections_to_write(
    defaults: dict[str, dict[str, object]],
    in_db: dict[str, dict[str, object]],
    written: dict[str, dict[str, object]],
    env: dict[str, str],
) -> dict[str, dict[str, object]]:
    """The defaults missing from the metadata DB or still as the stack last wrote them there (the
    local IHC server's port changes at each start); not one the user added or changed there, nor
    one set in the environment, which Airflow reads first anyway."""
    return {
        conn_id: conn
        for conn_id, conn in defaults.items()
        if connection_key(conn_id) not in env
        and (conn_id not in in_db or _fields(in_db[conn_id]) == _fields(written.get(conn_id, {})))
    }


def _fields(conn: dict[str, object]) -> dict[str, object]:
    """A connection's set fields, its extra parsed: as written and as ``connections export`` gives it."""
    return {
        key: orjson.loads(value) if key == "extra" and isinstance(value, str) else value
        for key, value in conn.items()
        if value not in (None, "")
    }


def running_message(home: Path, note: dict[str, object]) -> str:
    return f"make airflow is running on {home} (pid {note.get('pid', '?')}, UI {note.get('url', '?')})"


def running_on(home: Path) -> str | None:
    """What a tool says when a stack runs on this AIRFLOW_HOME, else None."""
    note = HomeLock(home / STACK_LOCK).holder()
    return None if note is None else running_message(home, note)


def port_in_use(port: int) -> str | None:
    """Why the UI cannot listen on this port, else None (the API server would only fail later)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((settings.LOCAL_API_HOST, port))
        except OSError:
            return f"port {port} on {settings.LOCAL_API_HOST} is in use; make airflow PORT=<another port> moves the UI"
    return None


def refuse_dags_test(home: Path) -> int:
    """The env file's guard: ``airflow dags test`` would share the metadata DB with a running scheduler."""
    running = running_on(home)
    if running is None:
        return 0
    print(
        f"airflow dags test refused: {running}, whose scheduler would take over this test run's tasks in"
        f" the metadata DB they share. Instead: `airflow dags trigger {settings.DAG_ID}` runs the DAG on the"
        " stack (watch it in the UI), `make demo` runs it once on a metadata DB of its own, or stop"
        " make airflow first.",
        file=sys.stderr,
    )
    return 1


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
    parser.add_argument(
        "--workers", type=int, default=0, help="Celery workers with a Redis broker (0: LocalExecutor, no broker)"
    )
    parser.add_argument(
        "--refuse-dags-test",
        type=Path,
        metavar="AIRFLOW_HOME",
        help="exit 1, saying why, while a stack runs on AIRFLOW_HOME (the guard of `airflow dags test` in airflow.env)",
    )
    args = parser.parse_args(argv)
    if args.refuse_dags_test:
        return refuse_dags_test(args.refuse_dags_test)
    home = airflow_home()
    refusal = running_on(home) or port_in_use(args.port)
    if refusal:
        print(f"make airflow not started: {refusal}", file=sys.stderr)
        return 1
    trained = ensure_default()
    stack = LocalStack(home, port=args.port, engine_dir=Path(trained.path).parent, workers=args.workers)
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
