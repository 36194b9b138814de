"""Environment for running Airflow from this checkout, kept inside the project's ignored folders.

``AIRFLOW_HOME`` and the file-based metadata DB live under ``.airflow/`` (never the user's home);
the DAGs folder is ``dags/``; the project root and ``dags/`` are on ``PYTHONPATH`` so ``include``
and the DAG's helper modules import in every process Airflow starts; this venv's ``airflow``
comes first on ``PATH`` for the executors that start ``airflow tasks run``.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

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


def connection_env(conn_id: str, conn: dict[str, object]) -> dict[str, str]:
    """An Airflow connection as an ``AIRFLOW_CONN_*`` variable (JSON form, both Airflow lines)."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": orjson.dumps(conn).decode()}


def local_api_connection(url: str, api_key: str, conv_type_id: str = settings.DEFAULT_CONV_TYPE_ID) -> dict[str, str]:
    return connection_env(
        settings.API_CONN_ID,
        {"conn_type": "http", "host": url, "password": api_key, "extra": {"conv_type_id": conv_type_id}},
    )


# The name a Celery worker of the local stack reports as its hostname.
WORKER_NAME_ENV = "ATTRIBUTION_WORKER_NAME"


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` for the local stack's Celery workers: the worker's name, so
    task instances show which of the workers sharing this machine ran them."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()
