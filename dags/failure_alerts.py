"""Alerts through Airflow's notifier interface, configured by one Variable: a task that failed
(its last try), and on Airflow 3 a run past its deadline.

``ihc_failure_notifier`` names a notifier class and its arguments, for example
``{"class": "airflow.providers.slack.notifications.slack.SlackNotifier",
"kwargs": {"slack_conn_id": "slack", "text": "{{ ti.task_id }} failed"}}``. Unset, nobody is
notified. The Variable is read when the alert is due, not by ``init_db``: an alert must go out
even when the run failed on a bad Variable.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson

from include.settings import FAILURE_NOTIFIER, SettingError, parse_notifier_spec

from airflow_compat import BaseNotifier, get_variable

log = logging.getLogger(__name__)


class FileNotifier(BaseNotifier):
    """Appends one JSON line per alert to a file: for log shippers, and the tests."""

    template_fields = ("path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def notify(self, context: dict) -> None:
        line = {"at": datetime.now(UTC).isoformat(), **_what_happened(context)}
        with Path(self.path).open("ab") as handle:
            handle.write(orjson.dumps(line) + b"\n")


def _what_happened(context: dict) -> dict:
    ti = context.get("ti")
    if ti is not None:
        return {
            "event": "task failed",
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
            "error": str(context.get("exception") or ""),
        }
    run = context.get("dag_run") or {}
    return {
        "event": "deadline missed",
        "dag_id": run.get("dag_id"),
        "run_id": run.get("dag_run_id") or run.get("run_id"),
        "deadline": str((context.get("deadline") or {}).get("deadline_time")),
    }


def configured_notifier() -> BaseNotifier | None:
    """The notifier the Variable names, or None when it is unset or wrong (logged, naming it)."""
    raw = get_variable(FAILURE_NOTIFIER)
    if not raw:
        return None
    try:
        spec = parse_notifier_spec(raw)
        module, _, name = spec.class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)(**spec.kwargs)
    except (SettingError, ImportError, ValueError, AttributeError, TypeError) as exc:
        log.error("alert not sent: Variable %s: %s", FAILURE_NOTIFIER, exc)
        return None


def notify_failure(context: dict) -> None:
    """The tasks' on_failure_callback."""
    notifier = configured_notifier()
    if notifier is not None:
        notifier(context)


async def deadline_missed(context: dict) -> None:
    """The run deadline's callback (Airflow 3, in the triggerer): the notifier's own synchronous
    notify, in a thread, so every notifier works here and not only those with an async one."""
    notifier = await asyncio.to_thread(configured_notifier)
    if notifier is not None:
        await asyncio.to_thread(notifier, context)
