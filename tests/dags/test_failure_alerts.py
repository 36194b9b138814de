"""The failure callback: the notifier named by the Variable, nothing when unset, a clear log line
when the Variable is wrong."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import orjson
import pytest

from include import settings
from tests.airflow_helpers import load_dag
from tools.local_airflow import AIRFLOW_3

VARIABLE_ENV = f"AIRFLOW_VAR_{settings.FAILURE_NOTIFIER.upper()}"


@pytest.fixture
def alerts(monkeypatch):
    monkeypatch.syspath_prepend(str(settings.PROJECT_ROOT / "dags"))
    import failure_alerts

    return failure_alerts


@pytest.fixture(scope="module")
def context() -> dict:
    """What a failing task's callback receives, as far as the notifiers read it."""
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=3)
    return {"dag": load_dag()[1], "ti": ti, "exception": RuntimeError("boom")}


def test_unset_notifies_nobody(alerts, context, monkeypatch, tmp_path):
    monkeypatch.delenv(VARIABLE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert alerts.notify_failure(context) is None
    assert list(tmp_path.iterdir()) == []


def test_the_named_notifier_gets_the_failure(alerts, context, monkeypatch, tmp_path):
    path = tmp_path / "alerts.jsonl"
    spec = {"class": "failure_alerts.FileNotifier", "kwargs": {"path": str(path)}}
    monkeypatch.setenv(VARIABLE_ENV, orjson.dumps(spec).decode())
    alerts.notify_failure(context)
    alerts.notify_failure(context)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(a["task_id"], a["try_number"], a["error"]) for a in lines] == [("t", 3, "boom")] * 2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "is not JSON"),
        ('{"kwargs": {}}', "needs"),
        ('{"class": "no_such_module.Notifier"}', "No module named"),
        ('{"class": ".FileNotifier"}', "Empty module name"),
        ('{"class": "failure_alerts.NoSuchNotifier"}', "NoSuchNotifier"),
        ('{"class": "failure_alerts.FileNotifier", "kwargs": {"colour": "red"}}', "colour"),
    ],
)
def test_a_wrong_variable_is_named_in_the_log(alerts, context, monkeypatch, caplog, raw, reason):
    monkeypatch.setenv(VARIABLE_ENV, raw)
    with caplog.at_level(logging.ERROR):
        alerts.notify_failure(context)
    assert f"alert not sent: Variable {settings.FAILURE_NOTIFIER}" in caplog.text
    assert reason in caplog.text


@pytest.mark.skipif(not AIRFLOW_3, reason="deadline alerts exist on Airflow 3 only")
def test_a_missed_deadline_goes_to_the_same_notifier(alerts, monkeypatch, tmp_path):
    path = tmp_path / "alerts.jsonl"
    spec = {"class": "failure_alerts.FileNotifier", "kwargs": {"path": str(path)}}
    monkeypatch.setenv(VARIABLE_ENV, orjson.dumps(spec).decode())
    # the context Airflow 3's deadline callbacks receive
    context = {
        "dag_run": {"dag_id": "ihc_attribution", "dag_run_id": "manual__1"},
        "deadline": {"id": "x", "deadline_time": "2026-11-28T06:00:00+00:00"},
    }
    asyncio.run(alerts.deadline_missed(context))
    [line] = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert (line["event"], line["run_id"], line["deadline"]) == (
        "deadline missed",
        "manual__1",
        "2026-11-28T06:00:00+00:00",
    )
