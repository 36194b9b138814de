"""The tables are a function of the warehouse, whatever the run history: daily runs, a reverse
backfill, reruns and overlapping ranges leave every output table and the CSVs of one run over
the same days; late, deleted and re-dated rows reach them in the next run that reads their dates.

The sequences run the pipeline's steps (tests/steps.py: the DAG's data flow without Airflow, HTTP
to the local server, a real SQLite warehouse); late and corrected rows also through real Airflow.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from include import settings
from include.export import CSV_FILE, ROLES_CSV_FILE
from include.ihc_client import ClientSettings
from include.ledger import JOURNEY_CHANGED, REDATED
from include.settings import DateRange, RunWindow
from tests.airflow_helpers import snapshot
from tests.e2e.conftest import run, succeeded
from tests.steps import run_all, run_context
from tools.local_server import ServerThread

START, END = settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE
FAST = ClientSettings(backoff_seconds=0.01, max_attempts=2)


def days(first: str, last: str) -> list[str]:
    return DateRange(first, last).days()


class Warehouse:
    """A copy of the sample warehouse with its own run and output folders."""

    def __init__(self, template: Path, folder: Path, url: str) -> None:
        folder.mkdir(parents=True)
        self.db, self.folder, self.url, self.runs = folder / "challenge.db", folder, url, 0
        shutil.copyfile(template, self.db)

    @classmethod
    def at(cls, db: Path) -> Warehouse:
        """A warehouse the test only reads and changes (an Airflow run writes it)."""
        warehouse = cls.__new__(cls)
        warehouse.db = db
        return warehouse

    def run(self, start: str, end: str, **variables: object):
        self.runs += 1
        window = RunWindow(DateRange(start, end), 30)
        context = run_context(
            self.db, self.folder / f"run-{self.runs}", self.url, window, self.folder / "output", FAST, **variables
        )
        return run_all(context).summary

    def outputs(self) -> dict[str, object]:
        csvs = {name: (self.folder / "output" / name).read_bytes() for name in (CSV_FILE, ROLES_CSV_FILE)}
        return {**snapshot(self.db), **csvs}

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(statement, params).fetchall()


@pytest.fixture(scope="module")
def server(server_config_module):
    with ServerThread(server_config_module) as url:
        yield url


@pytest.fixture(scope="module")
def server_config_module(trained_engine):
    from tools.local_server import ServerConfig

    return ServerConfig(parameters={trained_engine.conv_type_id: trained_engine})


@pytest.fixture(scope="module")
def full_run(sample_db_template, tmp_path_factory, server) -> dict[str, object]:
    """Every output of one run over the sample's whole range."""
    warehouse = Warehouse(sample_db_template, tmp_path_factory.mktemp("full") / "w", server)
    warehouse.run(START, END)
    return warehouse.outputs()


def warehouse_of(sample_db_template, tmp_path, server) -> Warehouse:
    return Warehouse(sample_db_template, tmp_path / "w", server)


SEQUENCES = {
    "daily": [(day, day) for day in days(START, END)],
    "reverse backfill": [(day, day) for day in reversed(days(START, END))],
    "rerun of a middle day": [(START, END), ("2023-09-04", "2023-09-04")],
    "overlapping ranges": [("2023-09-03", END), (START, "2023-09-05"), ("2023-09-02", "2023-09-06")],
    "daily then a day without conversions": [*((day, day) for day in days(START, END)), ("2023-09-20", "2023-09-20")],
}


@pytest.mark.parametrize("sequence", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_a_sequence_of_runs_leaves_every_table_and_csv_of_one_full_run(
    sample_db_template, tmp_path, server, full_run, sequence
):
    warehouse = warehouse_of(sample_db_template, tmp_path, server)
    for start, end in sequence:
        warehouse.run(start, end)
    outputs = warehouse.outputs()
    assert outputs.keys() == full_run.keys()
    for name, rows in full_run.items():
        assert outputs[name] == rows, name
    assert all(full_run.values())


def test_markov_credit_equals_ihc_credit_per_conversion_after_daily_runs(sample_db_template, tmp_path, server):
    warehouse = warehouse_of(sample_db_template, tmp_path, server)
    for day in days(START, END):
        warehouse.run(day, day)
    per_date = warehouse.sql("""
        SELECT c.conv_date, SUM(a.ihc), SUM(m.credit), COUNT(DISTINCT a.conv_id)
        FROM attribution_customer_journey a
        JOIN attribution_markov m ON m.conv_id = a.conv_id AND m.session_id = a.session_id
        JOIN conversions c ON c.conv_id = a.conv_id
        GROUP BY c.conv_date""")
    assert [row[0] for row in per_date] == days(START, END)
    for _, ihc, markov, conversions in per_date:
        assert ihc == pytest.approx(conversions, abs=1e-9)
        assert markov == pytest.approx(conversions, abs=1e-9)
    models = dict(warehouse.sql("SELECT model, SUM(credit) FROM channel_model_comparison GROUP BY model"))
    attributed = warehouse.sql("SELECT COUNT(DISTINCT conv_id) FROM attribution_customer_journey")[0][0]
    assert models.keys() == {"ihc", "first_touch", "last_touch", "linear", "position_based", "time_decay", "markov"}
    for model, credit in models.items():
        assert credit == pytest.approx(attributed, abs=1e-6), model


def a_conversion(warehouse: Warehouse, day: str, sessions_from: str = "0000") -> tuple[str, str, str]:
    """(conv_id, user_id, conv_time) of a conversion dated ``day`` whose stored journey has a
    session dated on or after ``sessions_from``."""
    return warehouse.sql(
        """SELECT c.conv_id, c.user_id, c.conv_time FROM conversions c
           WHERE c.conv_date = ? AND EXISTS (
               SELECT 1 FROM attribution_customer_journey a JOIN session_sources s ON s.session_id = a.session_id
               WHERE a.conv_id = c.conv_id AND s.event_date >= ?)
           ORDER BY c.conv_id LIMIT 1""",
        (day, sessions_from),
    )[0]


def add_late_session(warehouse: Warehouse, user: str, when: str, session_id: str = "late-session") -> None:
    day, time = when.split(" ")
    warehouse.sql("INSERT INTO session_sources VALUES (?, ?, ?, ?, 'Referral', 1, 1, 0)", (session_id, user, day, time))
    warehouse.sql("INSERT INTO session_costs VALUES (?, 2.5)", (session_id,))


@dataclass(frozen=True)
class Changes:
    """Late, deleted and re-dated rows: a session of 09-03 for the user of a conversion of 09-05;
    a conversion of 09-04 deleted; one of 09-06 whose journey has sessions from 09-03 on moved to
    09-02 23:00."""

    late_user: str
    deleted: str
    moved: str

    @classmethod
    def picked(cls, warehouse: Warehouse) -> Changes:
        return cls(
            a_conversion(warehouse, "2023-09-05")[1],
            a_conversion(warehouse, "2023-09-04")[0],
            a_conversion(warehouse, "2023-09-06", "2023-09-03")[0],
        )

    def make_late(self, warehouse: Warehouse) -> None:
        add_late_session(warehouse, self.late_user, "2023-09-03 12:00:00")

    def redate_and_delete(self, warehouse: Warehouse) -> None:
        warehouse.sql("DELETE FROM conversions WHERE conv_id = ?", (self.deleted,))
        warehouse.sql(
            "UPDATE conversions SET conv_date = '2023-09-02', conv_time = '23:00:00' WHERE conv_id = ?", (self.moved,)
        )


def test_a_late_session_reaches_the_conversion_it_belongs_to_in_the_run_of_its_day(
    sample_db_template, tmp_path, server
):
    """The late session is dated 09-03 and belongs to a conversion of 09-05: rerunning 09-03
    alone re-attributes that conversion, and every table is that of a full run on the new data."""
    warehouse = warehouse_of(sample_db_template, tmp_path, server)
    warehouse.run(START, END)
    conv_id = a_conversion(warehouse, "2023-09-05")[0]
    changes = Changes.picked(warehouse)
    changes.make_late(warehouse)

    summary = warehouse.run("2023-09-03", "2023-09-03")

    assert summary.reattributed == {JOURNEY_CHANGED: 1}
    journey = {
        row[0]
        for row in warehouse.sql("SELECT session_id FROM attribution_customer_journey WHERE conv_id = ?", (conv_id,))
    }
    assert "late-session" in journey
    reference = warehouse_of(sample_db_template, tmp_path / "reference", server)
    changes.make_late(reference)
    reference.run(START, END)
    assert warehouse.outputs() == reference.outputs()


def test_deleted_and_redated_conversions_are_removed_and_moved_by_the_run_of_their_old_dates(
    sample_db_template, tmp_path, server
):
    warehouse = warehouse_of(sample_db_template, tmp_path, server)
    warehouse.run(START, END)
    changes = Changes.picked(warehouse)
    deleted, moved = changes.deleted, changes.moved
    changes.redate_and_delete(warehouse)

    summary = warehouse.run("2023-09-04", "2023-09-06")

    assert summary.reattributed == {REDATED: 1}
    assert summary.removed == 1
    assert warehouse.sql("SELECT * FROM attribution_customer_journey WHERE conv_id = ?", (deleted,)) == []
    late = warehouse.sql(
        """SELECT s.session_id FROM attribution_customer_journey a JOIN session_sources s ON s.session_id = a.session_id
           WHERE a.conv_id = ? AND s.event_date || ' ' || s.event_time >= '2023-09-02 23:00:00'""",
        (moved,),
    )
    assert late == []
    reference = warehouse_of(sample_db_template, tmp_path / "reference", server)
    changes.redate_and_delete(reference)
    reference.run(START, END)
    assert warehouse.outputs() == reference.outputs()


def airflow_run_after_changes(dag, pipeline_env: Path, tmp_path: Path, monkeypatch, change: str, *ranges):
    """dag.test() over the whole range, then ``change`` (a Changes method) made to the warehouse
    and to a copy of it, then the runs of ``ranges``; returns the tables and those of one run over
    the copy."""
    warehouse = Warehouse.at(pipeline_env)
    reference = Warehouse.at(tmp_path / "reference.db")
    shutil.copyfile(pipeline_env, reference.db)
    assert succeeded(run(dag))
    changes = Changes.picked(warehouse)
    for db in (warehouse, reference):
        getattr(changes, change)(db)
    for start, end in ranges:
        assert succeeded(run(dag, start, end))
    monkeypatch.setenv("AIRFLOW_CONN_IHC_WAREHOUSE", f'{{"conn_type": "sqlite", "host": "{reference.db}"}}')
    assert succeeded(run(dag))
    return snapshot(warehouse.db), snapshot(reference.db)


def test_a_late_session_reaches_its_conversion_through_airflow(dag, pipeline_env, monkeypatch, tmp_path):
    tables, reference = airflow_run_after_changes(
        dag, pipeline_env, tmp_path, monkeypatch, "make_late", ("2023-09-03", "2023-09-03")
    )
    assert tables == reference


def test_deleted_and_redated_conversions_reach_the_tables_through_airflow(dag, pipeline_env, monkeypatch, tmp_path):
    tables, reference = airflow_run_after_changes(
        dag, pipeline_env, tmp_path, monkeypatch, "redate_and_delete", ("2023-09-04", "2023-09-06")
    )
    assert tables == reference
