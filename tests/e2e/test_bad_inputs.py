"""Every row of docs/bad-inputs.md, run through the DAG in real Airflow: the run fails, in the
first try of the task that rejects it, the output names the setting, and the warehouse is the
same afterwards, byte for byte when the checked start rejects it."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from include import settings
from tests.e2e.conftest import END, START, run, task_instances

DOC = settings.PROJECT_ROOT / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class Case:
    """A bad input: how to make it (env, trigger conf, a change of the warehouse), the task that
    must reject it, and the words its error must contain ({db} and {tmp} filled in)."""

    name: str
    task: str
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    conf: dict[str, str] | None = None
    prepare: Callable[[Path, Path], None] | None = None


def bad_session(db: Path, tmp: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE session_sources SET event_time = 'noon' WHERE session_id IN "
            "(SELECT session_id FROM session_sources WHERE event_date = '2023-09-06' LIMIT 1)"
        )


def empty_sqlite(db: Path, tmp: Path) -> None:
    sqlite3.connect(tmp / "empty.db").close()


def without_revenue(db: Path, tmp: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE conversions DROP COLUMN revenue")


def a_file(db: Path, tmp: Path) -> None:
    (tmp / "a-file").write_text("not a folder")


def sqlite_conn(path: str) -> str:
    return orjson.dumps({"conn_type": "sqlite", "host": path}).decode()


WAREHOUSE = "AIRFLOW_CONN_IHC_WAREHOUSE"
API = "AIRFLOW_CONN_IHC_API"
CASES = [
    Case(
        "warehouse connection that is not a URI",
        "init_db",
        ("connection ihc_warehouse has neither a type nor a host",),
        {WAREHOUSE: "not-a-uri"},
    ),
    Case(
        "warehouse connection JSON that does not parse",
        "init_db",
        ("env AIRFLOW_CONN_IHC_WAREHOUSE is set but is neither a connection URI nor connection JSON",),
        {WAREHOUSE: '{"conn_type": "sqlite", "host": '},
    ),
    Case(
        "warehouse connection of a type the pipeline does not read",
        "init_db",
        ("connection ihc_warehouse has type 'mongodb'",),
        {WAREHOUSE: "mongodb://db.example.com:27017/ihc"},
    ),
    Case(
        "SQLite warehouse file that does not exist",
        "init_db",
        ("ihc_warehouse: warehouse database {tmp}/nowhere.db does not exist",),
        {WAREHOUSE: sqlite_conn("{tmp}/nowhere.db")},
    ),
    Case(
        "PostgreSQL warehouse that does not answer",
        "init_db",
        ("ihc_warehouse: cannot connect to the PostgreSQL warehouse 127.0.0.1:9/nowhere",),
        {WAREHOUSE: "postgresql://nobody@127.0.0.1:9/nowhere"},
    ),
    Case(
        "warehouse without the input tables",
        "init_db",
        ("ihc_warehouse: database {tmp}/empty.db has no table 'session_sources'",),
        {WAREHOUSE: sqlite_conn("{tmp}/empty.db")},
        prepare=empty_sqlite,
    ),
    Case(
        "input table without a column the pipeline reads",
        "init_db",
        ("table 'conversions' lacks the columns ['revenue']",),
        prepare=without_revenue,
    ),
    Case(
        "trigger conf with keys that are not params",
        "init_db",
        ("trigger conf has unknown keys 'end', 'start': the params are start_date, end_date",),
        conf={"start": "2023-09-05", "end": "2023-09-06"},
    ),
    Case(
        "end date before start date",
        "init_db",
        ("param end_date=2023-09-01 is before param start_date=2023-09-07",),
        conf={"start_date": "2023-09-07", "end_date": "2023-09-01"},
    ),
    Case(
        "two Variables out of bounds at once",
        "init_db",
        (
            "Variable ihc_chunk_size='0' is outside the allowed range: an integer from 1 to 100000",
            "Variable ihc_max_bad_row_share='5' is outside the allowed range: a number from 0 to 1",
        ),
        {"AIRFLOW_VAR_IHC_CHUNK_SIZE": "0", "AIRFLOW_VAR_IHC_MAX_BAD_ROW_SHARE": "5"},
    ),
    Case(
        "Variable that is not a number",
        "init_db",
        ("Variable ihc_request_concurrency='four' is not an integer (allowed: an integer from 1 to 64)",),
        {"AIRFLOW_VAR_IHC_REQUEST_CONCURRENCY": "four"},
    ),
    Case(
        "API connection JSON that does not parse",
        "init_db",
        ("env AIRFLOW_CONN_IHC_API is set but is neither a connection URI nor connection JSON",),
        {API: '{"conn_type": "http", "host": '},
    ),
    Case(
        "API base URL that is not http(s)",
        "init_db",
        ("connection ihc_api has host 'ftp://api.example.com': the API base URL must be http(s)://host[:port]",),
        {API: '{"conn_type": "http", "host": "ftp://api.example.com", "password": "k"}'},
    ),
    Case(
        "API connection without a key",
        "init_db",
        ("connection ihc_api has no password (the API key)",),
        {API: '{"conn_type": "http", "host": "https://api.ihc-attribution.com"}'},
    ),
    Case(
        "run folder that is a file",
        "init_db",
        ("env ATTRIBUTION_WORK_DIR='{tmp}/a-file' is not a writable folder or object-storage URL",),
        {settings.WORK_DIR_ENV: "{tmp}/a-file"},
        prepare=a_file,
    ),
    Case(
        "output folder that is a file",
        "init_db",
        ("env ATTRIBUTION_OUTPUT_DIR='{tmp}/a-file' is not a writable folder or object-storage URL",),
        {settings.OUTPUT_DIR_ENV: "{tmp}/a-file"},
        prepare=a_file,
    ),
    Case(
        "unusable input rows beyond ihc_max_bad_row_share",
        "build_journeys",
        ("session_sources rows are unusable (limit 0%): session_sources: NULL or malformed event_date/event_time",),
        {"AIRFLOW_VAR_IHC_MAX_BAD_ROW_SHARE": "0"},
        prepare=bad_session,
    ),
    Case(
        "API key the API refuses",
        "attribute_chunk",
        ("the API refused the key (HTTP 403): check the password of the ihc_api connection",),
        {API: "{local_api_with_wrong_key}"},
    ),
]


def file_digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def tables(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows, sorted: the input tables and whatever output tables exist."""
    with sqlite3.connect(db) as conn:
        names = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in names}


INPUT_TABLES = ("session_sources", "conversions", "session_costs")


def unchanged(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> bool:
    """The same input rows; each output table as it was, or created empty by init_db's DDL."""
    same_inputs = all(before.get(name) == after.get(name) for name in INPUT_TABLES)
    return same_inputs and all(before.get(name, []) == rows for name, rows in after.items() if name not in INPUT_TABLES)


def filled(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_input_fails_its_run_at_once_naming_it(
    case: Case, dag, pipeline_env, local_server, monkeypatch, tmp_path, capfd, caplog
):
    values = {
        "db": str(pipeline_env),
        "tmp": str(tmp_path),
        "local_api_with_wrong_key": orjson.dumps(
            {"conn_type": "http", "host": local_server, "password": "wrong-key"}
        ).decode(),
    }
    if case.prepare is not None:
        case.prepare(pipeline_env, tmp_path)
    for key, value in case.env.items():
        monkeypatch.setenv(key, filled(value, values))
    watched = [pipeline_env, tmp_path / "empty.db"]
    digests = {path: file_digest(path) for path in watched}
    before = tables(pipeline_env)

    dag_run = run(dag) if case.conf is None else dag.test(run_conf=case.conf)

    assert str(dag_run.state).endswith("failed")
    tis = task_instances(dag_run)
    failed = [ti for (task_id, _), ti in tis.items() if task_id == case.task and str(ti.state).endswith("failed")]
    assert failed, f"{case.task} did not fail"
    assert all(ti.try_number == 1 for ti in failed), "a final error is not retried"
    captured = capfd.readouterr()
    output = captured.out + captured.err + caplog.text
    for words in case.says:
        assert filled(words, values) in output
    assert unchanged(before, tables(pipeline_env))
    if case.task == "init_db":
        assert {path: file_digest(path) for path in watched} == digests, "the checked start changed the warehouse"


def test_the_docs_table_has_a_row_for_each_case_and_no_other():
    rows = re.findall(r"^\| (.+?) \| `(\w+)` \| (.+) \|$", DOC.read_text(), re.M)
    assert [(name, task) for name, task, _ in rows] == [(c.name, c.task) for c in CASES]
    for (_, _, said), case in zip(rows, CASES, strict=True):
        assert all(words.split("{")[0] in said for words in case.says), case.name


def test_a_good_configuration_still_runs_after_the_checks(dag, pipeline_env):
    assert str(run(dag, START, END).state).endswith("success")


def test_an_api_host_that_does_not_answer_is_retried_with_each_attempt_logged(
    dag, pipeline_env, monkeypatch, capfd, caplog
):
    """Not a bad setting: a real API can be down for a while. init_db waits ihc_api_wait_seconds,
    then fails its try; Airflow retries it, and the warehouse is not touched meanwhile."""
    monkeypatch.setenv(API, '{"conn_type": "http", "host": "http://127.0.0.1:9", "password": "k"}')
    monkeypatch.setenv("AIRFLOW_VAR_IHC_API_WAIT_SECONDS", "0.5")
    before = file_digest(pipeline_env)

    dag_run = run(dag)

    [init] = [ti for (task_id, _), ti in task_instances(dag_run).items() if task_id == "init_db"]
    assert str(init.state).endswith("failed") and init.try_number == 3, "retried by the task's policy"
    captured = capfd.readouterr()
    output = captured.out + captured.err + caplog.text
    assert "IHC API 127.0.0.1:9 not reachable, attempt 1: ConnectionRefusedError" in output
    assert "the IHC API at 127.0.0.1:9 (connection ihc_api) did not answer" in output
    assert file_digest(pipeline_env) == before
