"""The DAG file parses in real Airflow and is wired as docs/design.md describes."""

from __future__ import annotations

import itertools

import pytest

from include import settings
from tests.airflow_helpers import load_dag, parse_dags
from tools.local_airflow import AIRFLOW_3

TASKS = [
    "init_db",
    "extract",
    "build_journeys",
    "attribute_chunk",
    "write_attributions",
    "build_report",
    "export_csv",
    "cleanup_run_folders",
]


@pytest.fixture(scope="module")
def dag_bag():
    return load_dag()


@pytest.fixture(scope="module")
def dag(dag_bag):
    return dag_bag[1]


def test_imports_without_errors(dag_bag):
    bag, dag = dag_bag
    assert bag.import_errors == {}
    assert list(bag.dags) == ["ihc_attribution"]
    assert dag.doc_md and "attribute_chunk" in dag.doc_md
    assert dag.description and "attribution" in dag.description


def test_one_task_per_step_in_order(dag):
    assert sorted(dag.task_ids) == sorted(TASKS)
    for upstream, downstream in itertools.pairwise(TASKS):
        assert upstream in dag.get_task(downstream).upstream_task_ids


def test_api_task_is_mapped_with_pool_retries_and_chunk_names(dag):
    task = dag.get_task("attribute_chunk")
    assert task.is_mapped if hasattr(task, "is_mapped") else type(task).__name__.endswith("MappedOperator")
    assert task.pool == settings.API_POOL
    assert task.retries >= 2
    assert task.retry_exponential_backoff
    assert task.max_retry_delay is not None
    assert task.execution_timeout is not None
    assert "chunk" in task.map_index_template and "label" in task.map_index_template


def test_every_task_retries_with_backoff_and_alerts_on_failure(dag):
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.retry_delay.total_seconds() == settings.retry_delay_seconds(), task.task_id
        callbacks = task.on_failure_callback
        assert [c.__name__ for c in (callbacks if isinstance(callbacks, list) else [callbacks])] == ["notify_failure"]


def test_outputs_are_assets(dag):
    outlets = {t.task_id: [getattr(o, "uri", None) for o in t.outlets] for t in dag.tasks if t.outlets}
    assert outlets == {
        "write_attributions": [settings.JOURNEYS_ASSET_URI],
        "build_report": [settings.REPORT_ASSET_URI],
        "export_csv": [settings.CSV_ASSET_URI],
    }


def test_writer_runs_when_no_chunk_was_mapped(dag):
    assert str(dag.get_task("write_attributions").trigger_rule).lower().endswith("none_failed")


def test_params_default_to_env_or_sample_range(dag):
    assert dag.params["start_date"] == settings.default_start_date()
    assert dag.params["end_date"] == settings.default_end_date()


@pytest.mark.parametrize("name", ["start_date", "end_date"])
def test_date_params_are_typed_dates(dag, name):
    param = dag.params.get_param(name)
    assert param.schema["format"] == "date"
    assert param.resolve("2023-09-03") == "2023-09-03"
    with pytest.raises(Exception, match="date"):
        param.resolve("2023-9-1x")


def test_helper_modules_are_ignored_by_the_dag_processor():
    ignored = (settings.PROJECT_ROOT / "dags" / ".airflowignore").read_text().split()
    helpers = {p.name for p in (settings.PROJECT_ROOT / "dags").glob("*.py")} - {"ihc_attribution.py"}
    assert helpers == set(ignored)


def test_a_malformed_date_default_fails_the_parse_naming_its_variable(monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_END_DATE", "2023-09-31")
    [error] = parse_dags().import_errors.values()
    assert "env ATTRIBUTION_END_DATE='2023-09-31' is not a date of the form YYYY-MM-DD" in error


def test_no_deadline_unless_the_env_sets_one(dag):
    assert not getattr(dag, "deadline", None)


def test_a_run_deadline_from_the_env_on_airflow_3(monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_RUN_DEADLINE_MINUTES", "45")
    deadlines = getattr(load_dag()[1], "deadline", None)
    if not AIRFLOW_3:
        assert not deadlines, "2.10 has no deadline alerts"
        return
    [alert] = deadlines if isinstance(deadlines, list) else [deadlines]
    assert alert.interval.total_seconds() == 45 * 60
    assert "failure_alerts.deadline_missed" in str(alert.callback.path)
