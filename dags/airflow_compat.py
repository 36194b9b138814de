"""The few differences between Airflow 3.x (task SDK) and 2.10, in one place."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

try:
    from airflow.sdk import (
        Asset,
        AsyncCallback,
        BaseHook,
        BaseNotifier,
        CronDataIntervalTimetable,
        DeadlineAlert,
        DeadlineReference,
        ObjectStoragePath,
        Param,
        Variable,
        dag,
        get_current_context,
        task,
    )
    from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException

    AIRFLOW_3 = True
except ImportError:  # Airflow 2.10
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import dag, task
    from airflow.exceptions import AirflowFailException, AirflowNotFoundException
    from airflow.hooks.base import BaseHook
    from airflow.io.path import ObjectStoragePath
    from airflow.models import Variable
    from airflow.models.param import Param
    from airflow.notifications.basenotifier import BaseNotifier
    from airflow.operators.python import get_current_context
    from airflow.timetables.interval import CronDataIntervalTimetable

    AIRFLOW_3 = False

__all__ = [
    "AIRFLOW_3",
    "AirflowFailException",
    "Asset",
    "BaseNotifier",
    "CronDataIntervalTimetable",
    "ObjectStoragePath",
    "Param",
    "dag",
    "get_connection",
    "get_current_context",
    "get_variable",
    "mapped_outputs",
    "postgres_hook",
    "run_deadline",
    "run_type",
    "task",
]

_MISSING = None


def get_variable(name: str) -> str | None:
    """A Variable's raw value, or None when it is not set."""
    if AIRFLOW_3:
        return Variable.get(name, default=_MISSING)
    return Variable.get(name, default_var=_MISSING)


def get_connection(conn_id: str) -> Any | None:
    """A Connection, or None when it is not defined anywhere (env, secrets backend, DB)."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def postgres_hook(conn_id: str) -> Any:
    """Airflow's Postgres provider hook (imported here so SQLite-only deployments need no driver)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id)


def run_deadline(minutes: float, callback_path: str) -> dict[str, Any]:
    """DAG arguments for an alert when a run is not done ``minutes`` after it was queued.

    Airflow 3 only (Deadline Alerts, the callback runs in the triggerer); 2.10 has per-task SLAs,
    removed in 3, and gets nothing. ``minutes`` 0 means no deadline."""
    if not AIRFLOW_3 or minutes <= 0:
        return {}
    alert = DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(minutes=minutes),
        callback=AsyncCallback(callback_path),
    )
    return {"deadline": alert}


def mapped_outputs(values: Any) -> list:
    """The return values of a mapped task; Airflow 2.10 passes None when nothing was mapped.

    Read by index up to its length: iterating probes one past the end, which Airflow 3 logs as
    an "XCom not found" error on every successful run."""
    if values is None:
        return []
    return [values[i] for i in range(len(values))]


def run_type(context: dict) -> str:
    """'manual', 'scheduled', 'backfill', ... on both lines (an enum on one, a str on the other)."""
    value = context["dag_run"].run_type
    return str(getattr(value, "value", value))
