"""The API key never leaks; the edges of the input (no conversions, a refused key) end cleanly."""

from __future__ import annotations

from pathlib import Path

from include import settings
from include.runfiles import run_directory
from include.summary import SUMMARY_FILE, RunSummary
from tests.e2e.conftest import run, task_instances
from tools.local_airflow import local_api_connection

SECRET = "sk-live-IHC-7f3a9c1e5b2d4f60-MUST-NOT-LEAK"
WRONG = "sk-live-IHC-0000aaaa1111bbbb-WRONG-KEY"


def use_key(monkeypatch, url: str, key: str) -> None:
    for name, value in local_api_connection(url, key).items():
        monkeypatch.setenv(name, value)


def files_containing(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and any(needle in path.read_bytes() for needle in needles):
            found.append(str(path))
    return found


def test_the_api_key_is_in_no_log_file_xcom_template_or_error(
    dag, pipeline_env, local_server, server_config, monkeypatch, capfd, test_root
):
    server_config.api_key = SECRET
    use_key(monkeypatch, local_server, SECRET)
    good = run(dag)
    use_key(monkeypatch, local_server, WRONG)
    refused = run(dag)

    assert str(good.state).endswith("success")
    assert str(refused.state).endswith("failed")
    chunk = task_instances(refused)[("attribute_chunk", 0)]
    assert str(chunk.state).endswith("failed") and chunk.try_number == 1, "a refused key is not retried"
    output = capfd.readouterr()
    assert "the API refused the key (HTTP 403)" in output.out + output.err
    for secret in (SECRET, WRONG):
        assert secret not in output.out + output.err
    assert files_containing(test_root, [SECRET.encode(), WRONG.encode()]) == []
    assert files_containing(pipeline_env.parent, [SECRET.encode(), WRONG.encode()]) == []


def test_a_range_without_conversions_succeeds_with_an_empty_update(dag, pipeline_env):
    dag_run = run(dag, "2030-01-01", "2030-01-02")

    assert str(dag_run.state).endswith("success")
    assert str(task_instances(dag_run)[("export_csv", -1)].state).endswith("success")
    summary = RunSummary.load(run_directory(Path(settings.work_base()), dag_run.run_id) / SUMMARY_FILE)
    assert (summary.conversions, summary.attributed, summary.chunks, summary.report_rows) == (0, 0, 0, 0)
    assert "no conversions in range: nothing to attribute" in summary.text()
