"""The local stack's settings, without starting it (tests/scheduler start it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from include import settings
from tools.local_stack import LocalStack


def sourced(env_file: Path, name: str) -> str:
    done = subprocess.run(
        ["bash", "-c", f'source {env_file} && printf %s "${name}"'], capture_output=True, text=True, check=True
    )
    return done.stdout


def test_the_cli_env_file_has_the_stack_settings_but_no_run_deadline(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(settings.DEADLINE_ENV, raising=False)
    stack = LocalStack(tmp_path / "home", port=8123)
    stack.home.mkdir()
    env = stack.env()
    assert env[settings.DEADLINE_ENV] == "120", "the stack's own processes keep the deadline"

    stack.write_cli_env(env)

    assert sourced(stack.cli_env_file, "AIRFLOW_HOME") == env["AIRFLOW_HOME"]
    assert sourced(stack.cli_env_file, "AIRFLOW__API__BASE_URL") == "http://127.0.0.1:8123"
    # `airflow dags test` from that shell runs the DAG in-process, where a deadline fails the run.
    assert sourced(stack.cli_env_file, settings.DEADLINE_ENV) == "0"
