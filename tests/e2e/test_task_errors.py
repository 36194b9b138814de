"""Every task of the DAG, run in real Airflow with one final and one transient error injected into
its step: the adapter fails the task in its first try on the final one, and leaves the transient
one to the task's retries, after which the run completes."""

from __future__ import annotations

import pytest

from include import pipeline
from include.errors import FinalError, TransientError
from tests.e2e.conftest import run, succeeded, task_instances

STEPS = {
    "init_db": "prepare",
    "extract": "extract_step",
    "build_journeys": "journeys_step",
    "attribute_chunk": "attribute_step",
    "write_attributions": "write_step",
    "build_report": "report_step",
    "export_csv": "export_step",
    "cleanup_run_folders": "cleanup_step",
}


class InjectedFinalError(FinalError):
    pass


class InjectedTransientError(TransientError):
    pass


def failing_once(monkeypatch, name: str, error: type[Exception]) -> list[int]:
    """The step raises ``error`` on its first call only; the calls are counted."""
    real = getattr(pipeline, name)
    calls: list[int] = []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error(f"injected into {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, name, step)
    return calls


def instances(dag_run, task_id: str) -> list:
    """The task's instances: one, or one per chunk of the mapped task (the first call is one of them)."""
    return [ti for (tid, _), ti in task_instances(dag_run).items() if tid == task_id]


def test_every_task_has_a_step_here(dag):
    assert set(STEPS) == set(dag.task_ids)


@pytest.mark.parametrize("task_id", STEPS)
def test_a_final_error_fails_the_task_in_its_first_try(task_id, dag, pipeline_env, monkeypatch, capfd):
    calls = failing_once(monkeypatch, STEPS[task_id], InjectedFinalError)

    dag_run = run(dag)

    assert not succeeded(dag_run)
    [failed] = [ti for ti in instances(dag_run, task_id) if str(ti.state).endswith("failed")]
    assert failed.try_number == 1
    assert len(calls) == len(instances(dag_run, task_id)), "each instance ran its step once: no retry"
    captured = capfd.readouterr()
    assert f"injected into {STEPS[task_id]} (InjectedFinalError: final, not retried" in captured.out + captured.err


@pytest.mark.parametrize("task_id", STEPS)
def test_a_transient_error_is_retried_and_the_run_completes(task_id, dag, pipeline_env, monkeypatch):
    calls = failing_once(monkeypatch, STEPS[task_id], InjectedTransientError)

    dag_run = run(dag)

    assert succeeded(dag_run)
    assert sorted(ti.try_number for ti in instances(dag_run, task_id))[-1] == 2
    assert len(calls) >= 2
