"""make demo's checks before it starts anything (tests/e2e/test_demo.py runs it whole)."""

from __future__ import annotations

from tools import demo


def test_a_malformed_date_stops_the_demo_before_it_starts_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATTRIBUTION_AIRFLOW_HOME", str(tmp_path / "airflow"))
    monkeypatch.setenv("ATTRIBUTION_END_DATE", "2023-09-31")

    assert demo.main() == 1

    assert capsys.readouterr().err.strip() == (
        "demo not started: env ATTRIBUTION_END_DATE='2023-09-31' is not a date of the form YYYY-MM-DD"
    )
    assert not (tmp_path / "airflow").exists()
