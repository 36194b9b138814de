"""The warehouse adapter on both dialects: connecting, transactions, the write lock."""

from __future__ import annotations

import importlib
import logging
import sqlite3
from contextlib import closing

import pytest

from include import schema, warehouse
from include.warehouse import WarehouseError
from tests.warehouse_rows import (
    in_transaction,
)


def test_connect_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "challenge.db"
    with pytest.raises(WarehouseError) as info:
        warehouse.connect_sqlite(path)
    assert str(path) in str(info.value)
    assert not path.exists()


def test_connect_create_makes_the_file(tmp_path):
    path = tmp_path / "new.db"
    database = warehouse.connect_sqlite(path, create=True)
    try:
        assert path.is_file()
        assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        database.close()


def test_a_warehouse_switched_to_wal_is_logged_once_naming_the_file(tmp_path, caplog):
    path = tmp_path / "users.db"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()

    with caplog.at_level(logging.WARNING, logger="include.warehouse"):
        warehouse.connect_sqlite(path).close()
        warehouse.connect_sqlite(path).close()

    [record] = caplog.records
    assert str(path) in record.getMessage() and "from journal mode delete to WAL" in record.getMessage()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_transaction_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
        raise RuntimeError("boom")
    assert db.execute("SELECT COUNT(*) FROM session_costs").fetchone()[0] == 0
    assert not in_transaction(db)


def test_postgres_write_lock_timeout_names_the_cause_and_leaves_no_transaction(postgres_url, monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS", "0.2")
    target = warehouse.postgres_target(postgres_url, "locked")
    with target.open() as holder, target.open() as db:
        schema.create_input_tables(db)
        with holder.transaction():
            with pytest.raises(WarehouseError, match=r"locked by another writer .*\(0\.2 s"), db.transaction():
                db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
            assert not in_transaction(db)
        with db.transaction():
            db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
        assert db.execute("SELECT COUNT(*) FROM session_costs").fetchone()[0] == 1


AWKWARD_ROWS = [
    ("s1", "u1", "2023-09-01", "10:00:00", "Paid\tSearch", 1, 0, 0),
    ("s2", "u\\2", "2023-09-01", "10:00:01", "line\nbreak\r", 0, 1, 0),
    ("s3", "ü3", "2023-09-02", "11:00:00", None, 0, 0, 1),
]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_copy_rows_keeps_every_value_through_either_driver(postgres_url, driver):
    """Tabs, line breaks, backslashes, NULL and non-ASCII arrive as they were sent."""
    module = importlib.import_module(driver)
    columns = ", ".join(schema.INPUT_COLUMNS["session_sources"])
    with warehouse.postgres_target(postgres_url, "copy").open() as db:
        schema.create_input_tables(db)
    conn = module.connect(postgres_url)
    try:
        warehouse.copy_rows(conn.cursor(), f"COPY session_sources ({columns}) FROM STDIN", AWKWARD_ROWS)
        conn.commit()
    finally:
        conn.close()
    with warehouse.postgres_target(postgres_url, "copy").open() as db:
        stored = db.execute(f"SELECT {columns} FROM session_sources ORDER BY session_id").fetchall()
    assert [tuple(row) for row in stored] == AWKWARD_ROWS
