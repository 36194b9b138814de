"""The DAG with a PostgreSQL warehouse (connection type postgres, through Airflow's Postgres
provider) against the same DAG with SQLite: the same tables and CSV, and the same again on a rerun."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from include import settings, warehouse
from include.export import CSV_FILE
from tests.e2e.conftest import run, succeeded, task_instances

OUTPUT_TABLES = ("attribution_customer_journey", "channel_reporting")


def sqlite_tables(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {name: conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall() for name in OUTPUT_TABLES}


def postgres_tables(url: str) -> dict[str, list[tuple]]:
    with warehouse.postgres_target(url, "check").open() as db:
        return {name: db.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall() for name in OUTPUT_TABLES}


def assert_same_tables(actual: dict[str, list[tuple]], expected: dict[str, list[tuple]]) -> None:
    for name in OUTPUT_TABLES:
        # Both tables: two key columns, then numbers (summed in another order by each database).
        assert [row[:2] for row in actual[name]] == [row[:2] for row in expected[name]], name
        numbers = [value for row in actual[name] for value in row[2:]]
        assert numbers == pytest.approx([value for row in expected[name] for value in row[2:]], abs=1e-9), name


def test_postgres_warehouse_gives_the_same_tables_and_csv_as_sqlite(
    dag, pipeline_env, sample_postgres, monkeypatch, caplog
):
    assert succeeded(run(dag))
    on_sqlite = sqlite_tables(pipeline_env)
    assert len(on_sqlite["attribution_customer_journey"]) > 3000
    csv_on_sqlite = (settings.output_dir() / CSV_FILE).read_text()

    monkeypatch.setenv("AIRFLOW_CONN_IHC_WAREHOUSE", sample_postgres)
    caplog.clear()
    assert succeeded(run(dag))
    assert "warehouse PostgreSQL 127.0.0.1:" in caplog.text
    on_postgres = postgres_tables(sample_postgres)
    assert_same_tables(on_postgres, on_sqlite)
    # the same bytes, also where a cost sums to exactly a half cent (Pinterest Ads, 2023-09-05)
    assert (settings.output_dir() / CSV_FILE).read_text() == csv_on_sqlite
    assert "Pinterest Ads,2023-09-05,401.81," in csv_on_sqlite

    assert succeeded(run(dag))
    assert postgres_tables(sample_postgres) == on_postgres


def test_unreachable_postgres_warehouse_fails_init_db_naming_it(dag, pipeline_env, monkeypatch, capfd, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_IHC_WAREHOUSE", "postgresql://nobody@127.0.0.1:9/nowhere")
    dag_run = run(dag)

    assert str(task_instances(dag_run)[("init_db", -1)].state).endswith("failed")
    captured = capfd.readouterr()
    assert "cannot connect to the PostgreSQL warehouse 127.0.0.1:9/nowhere" in captured.out + captured.err + caplog.text
