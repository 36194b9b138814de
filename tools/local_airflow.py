"""Environment for running Airflow from this checkout, kept inside the project's ignored folders.

``AIRFLOW_HOME`` and the file-based metadata DB live under ``.airflow/`` (never the user's home);
the DAGs folder is ``dags/``; the project root and ``dags/`` are on ``PYTHONPATH`` so ``include``
and the DAG's helper modules import in every process Airflow starts; this venv's ``airflow``
comes first on ``PATH`` for the executors that start ``airflow tasks run``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from include import settings


def airflow_home() -> Path:
    """AIRFLOW_HOME of the demo and the local tools: inside the project, never the user's home."""
    return Path(os.environ.get("ATTRIBUTION_AIRFLOW_HOME") or settings.PROJECT_ROOT / ".airflow")


# Every Airflow process of the local stack waits up to 60 s for the SQLite metadata DB's write
# lock instead of failing ("database is locked"): a backfill created while a run is busy, a REST
# call during the scheduler's bulk updates.
SQLITE_CONNECT_ARGS = {"timeout": 60}
# From the installed distribution, not by importing airflow: that would read AIRFLOW_HOME and the
# metadata DB from the environment before the callers of airflow_env have set them.
AIRFLOW_3 = int(importlib.metadata.version("apache-airflow").split(".")[0]) >= 3
CONNECT_ARGS_KEYS = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC")


def metadata_db_env(home: Path, url: str | None) -> dict[str, str]:
    """The metadata DB: a PostgreSQL URL when given (env ``ATTRIBUTION_AIRFLOW_DB``), else SQLite
    in ``home``, whose writers wait for each other's lock (SQLITE_CONNECT_ARGS)."""
    if url:
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **{key: f"{__name__}.SQLITE_CONNECT_ARGS" for key in CONNECT_ARGS_KEYS},
    }


def airflow_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for key in CONNECT_ARGS_KEYS:
        env.pop(key, None)  # SQLite's, inherited from a parent that ran Airflow on SQLite
    ours = [str(settings.PROJECT_ROOT), str(settings.PROJECT_ROOT / "dags")]
    python_path = ours + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p not in ours]
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.PROJECT_ROOT / "dags"),
            # the report's UI entries; Airflow 2.10 has no FastAPI apps to mount them in
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(settings.PROJECT_ROOT / ("plugins" if AIRFLOW_3 else "no-plugins")),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"include\..*",
            "PYTHONPATH": os.pathsep.join(python_path),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
            **metadata_db_env(home, env.get("ATTRIBUTION_AIRFLOW_DB")),
        }
    )
    return env


def connection_key(conn_id: str) -> str:
    """The environment variable Airflow reads a connection from, before the metadata DB's."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_env(conn_id: str, conn: dict[str, object]) -> dict[str, str]:
    """An Airflow connection as an ``AIRFLOW_CONN_*`` variable (JSON form, both Airflow lines)."""
    return {connection_key(conn_id): orjson.dumps(conn).decode()}


def local_api_conn(url: str, api_key: str, conv_type_id: str = settings.DEFAULT_CONV_TYPE_ID) -> dict[str, object]:
    """The ``ihc_api`` connection's fields for a local IHC server."""
    return {"conn_type": "http", "host": url, "password": api_key, "extra": {"conv_type_id": conv_type_id}}


def local_api_connection(url: str, api_key: str, conv_type_id: str = settings.DEFAULT_CONV_TYPE_ID) -> dict[str, str]:
    return connection_env(settings.API_CONN_ID, local_api_conn(url, api_key, conv_type_id))


# The name a Celery worker of the local stack reports as its hostname.
WORKER_NAME_ENV = "ATTRIBUTION_WORKER_NAME"


def stack_hostname() -> str:
    """Airflow's ``hostname_callable`` in the local stack: a Celery worker's name, so task instances
    show which of the workers sharing this machine ran them; else the address the stack's log
    server listens on, where the UI fetches a running task's log from (the machine's name may
    resolve to another address)."""
    return os.environ.get(WORKER_NAME_ENV) or settings.LOCAL_API_HOST


class HomeInUseError(RuntimeError):
    """Another live process holds the lock; ``note`` is what it wrote into the lock file."""

    def __init__(self, note: dict[str, object]) -> None:
        super().__init__(f"held by pid {note.get('pid', '?')}")
        self.note = note


@dataclass
class HomeLock:
    """A lock file in an Airflow home, held by the one process that uses that home (``make
    airflow``, ``make demo``), with that process's note (pid, URL) in it for whoever finds it
    held. An flock: the kernel drops it when the holder exits, even by SIGKILL, so a file left
    behind claims nothing."""

    path: Path
    _file: BinaryIO | None = field(default=None, init=False, repr=False)

    def holder(self) -> dict[str, object] | None:
        """The note of the live process that holds the lock, or None when none does."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _note(file.read())
        return None

    def acquire(self, note: dict[str, object], patience: float = 1.0) -> None:
        """Hold the lock and write ``note``; ``HomeInUseError`` if another process holds it. Patience for
        a reader's shared lock, which ``holder`` keeps for an instant."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = self.path.open("a+b")
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    file.seek(0)
                    held = _note(file.read())
                    file.close()
                    raise HomeInUseError(held) from None
                time.sleep(0.05)
        file.truncate(0)
        file.write(orjson.dumps(note))
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _note(data: bytes) -> dict[str, object]:
    """A holder's note; empty while the holder is still writing it."""
    with contextlib.suppress(orjson.JSONDecodeError):
        note = orjson.loads(data)
        if isinstance(note, dict):
            return note
    return {}
