"""Loading the sample into a PostgreSQL server that lacks the database (as docker compose does)."""

from __future__ import annotations

import uuid

import pytest

from include import warehouse
from tools import postgres_load


@pytest.fixture
def new_database_url(postgres_server_url, postgres_admin):
    name = f"ihc_load_{uuid.uuid4().hex[:10]}"
    yield postgres_server_url.rsplit("/", 1)[0] + "/" + name
    postgres_admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def session_count(url: str) -> int:
    with warehouse.postgres_target(url, "check").open() as db:
        return db.execute("SELECT COUNT(*) FROM session_sources").fetchone()[0]


def test_load_creates_the_database_then_leaves_loaded_data_alone(sample_db, new_database_url, capsys):
    postgres_load.main(["--sqlite", str(sample_db), "--url", new_database_url])
    assert "450,616 rows into session_sources" in capsys.readouterr().out
    assert session_count(new_database_url) == 450_616

    with warehouse.postgres_target(new_database_url, "edit").open() as db:
        db.execute("DELETE FROM session_sources WHERE session_id IN (SELECT session_id FROM session_sources LIMIT 10)")
    postgres_load.main(["--sqlite", str(sample_db), "--url", new_database_url])
    assert "left alone" in capsys.readouterr().out
    assert session_count(new_database_url) == 450_606

    counts = postgres_load.load(sample_db, new_database_url, replace=True)
    assert counts == {"session_sources": 450_616, "conversions": 2_000, "session_costs": 450_616}
    assert session_count(new_database_url) == 450_616


def test_unsafe_database_name_is_refused(postgres_server_url):
    with pytest.raises(warehouse.WarehouseError, match="database name 'x;drop'"):
        postgres_load.ensure_database(postgres_server_url.rsplit("/", 1)[0] + "/x;drop")
