"""Failure alerts through Airflow's notifier interface, configured by one Variable.

``ihc_failure_notifier`` names a notifier class and its arguments, for example
``{"class": "airflow.providers.slack.notifications.slack.SlackNotifier",
"kwargs": {"slack_conn_id": "slack", "text": "{{ ti.task_id }} failed"}}``. Unset, a failure
notifies nobody. The Variable is read when a task fails, not by ``init_db``: an alert must go
out even when the run failed on a bad Variable.
"""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import orjson

from include.settings import FAILURE_NOTIFIER, SettingError, parse_notifier_spec

from airflow_compat import BaseNotifier, get_variable

log = logging.getLogger(__name__)


class FileNotifier(BaseNotifier):
    """Appends one JSON line per failed task to a file: for log shippers, and the tests."""

    template_fields = ("path",)

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def notify(self, context: dict) -> None:
        ti = context["ti"]
        line = {
            "at": datetime.now(UTC).isoformat(),
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
            "error": str(context.get("exception") or ""),
        }
        with Path(self.path).open("ab") as handle:
            handle.write(orjson.dumps(line) + b"\n")


def notify_failure(context: dict) -> None:
    """The tasks' on_failure_callback: the configured notifier, or nothing when none is set."""
    raw = get_variable(FAILURE_NOTIFIER)
    if not raw:
        return
    try:
        spec = parse_notifier_spec(raw)
        module, _, name = spec.class_path.rpartition(".")
        notifier = getattr(importlib.import_module(module), name)(**spec.kwargs)
    except (SettingError, ImportError, AttributeError, TypeError) as exc:
        log.error("failure alert not sent: Variable %s: %s", FAILURE_NOTIFIER, exc)
        return
    notifier(context)
