"""Loading the sample into a PostgreSQL server that lacks the database (as docker compose does)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from include import schema, warehouse
from tools import postgres_load
from tools.sample_data import SampleSpec, generate


@pytest.fixture(scope="module")
def small_sample(tmp_path_factory) -> Path:
    """A 2 % sample: the loader's behaviour, without copying 450k rows three times."""
    path = tmp_path_factory.mktemp("load") / "small.db"
    generate(path, SampleSpec(seed=3, scale=0.02))
    return path


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in schema.INPUT_COLUMNS}


@pytest.fixture
def new_database_url(postgres_server_url, postgres_admin):
    name = f"ihc_load_{uuid.uuid4().hex[:10]}"
    yield postgres_server_url.rsplit("/", 1)[0] + "/" + name
    postgres_admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def session_count(url: str) -> int:
    with warehouse.postgres_target(url, "check").open() as db:
        return db.execute("SELECT COUNT(*) FROM session_sources").fetchone()[0]


def test_load_creates_the_database_then_leaves_loaded_data_alone(small_sample, new_database_url, capsys):
    expected = table_counts(small_sample)
    sessions = expected["session_sources"]
    postgres_load.main(["--sqlite", str(small_sample), "--url", new_database_url])
    assert f"{sessions:,} rows into session_sources" in capsys.readouterr().out
    assert session_count(new_database_url) == sessions

    with warehouse.postgres_target(new_database_url, "edit").open() as db:
        db.execute("DELETE FROM session_sources WHERE session_id IN (SELECT session_id FROM session_sources LIMIT 10)")
    postgres_load.main(["--sqlite", str(small_sample), "--url", new_database_url])
    assert "left alone" in capsys.readouterr().out
    assert session_count(new_database_url) == sessions - 10

    counts = postgres_load.load(small_sample, new_database_url, replace=True)
    assert counts == expected
    assert session_count(new_database_url) == sessions


def test_unsafe_database_name_is_refused(postgres_server_url):
    with pytest.raises(warehouse.WarehouseError, match="database name 'x;drop'"):
        postgres_load.ensure_database(postgres_server_url.rsplit("/", 1)[0] + "/x;drop")
