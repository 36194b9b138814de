"""Run folders through Airflow's object storage under a configurable base (ATTRIBUTION_WORK_DIR):
every step finds the files another step wrote there, whatever the base."""

from __future__ import annotations

import pytest

from include import settings
from include.runfiles import run_directory
from include.summary import SUMMARY_FILE, RunSummary
from tests.e2e.conftest import run, succeeded, task_instances

from airflow_compat import AIRFLOW_3


@pytest.mark.parametrize(
    "as_url",
    [
        pytest.param(False, id="folder"),
        pytest.param(True, id="file-url", marks=pytest.mark.skipif(not AIRFLOW_3, reason="2.10 refuses file://")),
    ],
)
def test_run_files_live_under_the_configured_base(dag, pipeline_env, tmp_path, monkeypatch, as_url):
    base = tmp_path / "shared-runs"
    monkeypatch.setenv("ATTRIBUTION_WORK_DIR", f"file://{base}" if as_url else str(base))

    dag_run = run(dag)

    assert succeeded(dag_run)
    folder = base / run_directory(base, dag_run.run_id).name
    chunks = sorted(p.name for p in (folder / "chunks").iterdir())
    assert chunks == [f"chunk-{i:04d}.jsonl" for i in range(4)]
    assert sorted(p.name for p in (folder / "results").iterdir()) == [f"chunk-{i:04d}.json" for i in range(4)]
    assert {p.name for p in (folder / "extract").iterdir()} == {
        "conversions.jsonl",
        "sessions.jsonl",
        "stored_journeys.jsonl",
    }
    assert [p.name for p in (folder / "journeys").iterdir()] == ["ledger.jsonl"]
    assert RunSummary.load(folder / SUMMARY_FILE).chunks == 4
    assert not (settings.data_dir() / "runs" / folder.name).exists(), "nothing went to the default base"


def test_unusable_base_fails_naming_the_setting(dag, pipeline_env, monkeypatch, capfd, caplog):
    monkeypatch.setenv("ATTRIBUTION_WORK_DIR", "nosuchscheme://bucket/runs")

    dag_run = run(dag)

    assert str(task_instances(dag_run)[("extract", -1)].state).endswith("failed")
    captured = capfd.readouterr()
    assert "ATTRIBUTION_WORK_DIR='nosuchscheme://bucket/runs' is not usable" in (
        captured.out + captured.err + caplog.text
    )
