"""The warehouse adapter on both dialects: connecting, transactions, the write lock."""

from __future__ import annotations

import importlib
import logging
import os
import sqlite3
from contextlib import closing

import pytest

from include import schema, settings, warehouse
from include.warehouse import WarehouseBusyError, WarehouseError
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


def test_sqlite_sorts_with_the_machines_cores_read_only_or_not(tmp_path):
    """The Markov model's GROUP BY sorts every session of the window (SQLite's default: 1 thread)."""
    warehouse.connect_sqlite(tmp_path / "w.db", create=True).close()
    for read_only in (False, True):
        with warehouse.connect_sqlite(tmp_path / "w.db", read_only=read_only) as db:
            assert db.execute("PRAGMA threads").fetchone()[0] == min(os.cpu_count() or 1, 8), read_only


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


def test_read_each_reads_the_committed_tables_on_connections_of_their_own(db):
    """Each part is a connection of its own (SQLite: in a process of its own): it sees what is
    committed, not this connection's open transaction; the answers come in the order asked."""
    count = "SELECT COUNT(*) FROM session_costs"
    with db.transaction():
        db.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
        apart = db.read_each([(count, {}), ("SELECT :v AS value", {"v": "two"})])
        alone = db.read_each([(count, {})])
    assert apart == [[(0,)], [("two",)]]
    assert alone == [[(1,)]]


def test_a_part_that_fails_raises_a_warehouse_error_naming_the_warehouse(db):
    with pytest.raises(WarehouseError) as info:
        db.read_each([("SELECT 1", {}), ("SELECT * FROM no_such_table", {})])
    assert db.label in str(info.value) and "no_such_table" in str(info.value)


def test_a_sqlite_part_locked_out_is_classified_by_its_code(tmp_path, monkeypatch):
    """The part's process sends SQLite's result code along: busy is a warehouse busy error
    (retried), as it would be in this process."""
    monkeypatch.setenv(settings.LOCK_TIMEOUT_ENV, "0.2")
    path = tmp_path / "w.db"
    with warehouse.connect_sqlite(path, create=True) as db:
        schema.create_input_tables(db)
    with closing(sqlite3.connect(path, isolation_level=None)) as holder:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO session_costs VALUES ('x', 1.0)")
        with warehouse.connect_sqlite(path, read_only=True) as db, pytest.raises(WarehouseBusyError, match=r"\(0\.2 s"):
            db.read_each([("SELECT 1", {}), ("SELECT COUNT(*) FROM session_costs", {})])


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


def driver_warehouse(postgres_url: str, driver: str) -> warehouse.Warehouse:
    """The PostgreSQL warehouse through the named driver, with the pipeline's tables."""
    module = importlib.import_module(driver)
    db = warehouse.connect_postgres(lambda: module.connect(postgres_url), driver)
    schema.create_input_tables(db)
    schema.init_schema(db)
    return db


SHARES = [("c1", "s1", 0.1), ("c1", "s2", 1 / 3), ("c1", "s3", 1e-17), ("c1", "s4", 1 - 0.1 - 1 / 3 - 1e-17)]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_insert_many_keeps_every_float_bit_through_either_driver(postgres_url, driver):
    with closing(driver_warehouse(postgres_url, driver)) as db:
        with db.transaction():
            db.insert_many("attribution_customer_journey", ("conv_id", "session_id", "ihc"), SHARES)
        stored = db.execute("SELECT conv_id, session_id, ihc FROM attribution_customer_journey ORDER BY session_id")
        assert [tuple(row) for row in stored.fetchall()] == SHARES


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_insert_many_duplicates_are_classified_not_unique_and_roll_back(postgres_url, driver):
    with closing(driver_warehouse(postgres_url, driver)) as db:
        with pytest.raises(db.errors) as raised, db.transaction():
            db.insert_many("attribution_customer_journey", ("conv_id", "session_id", "ihc"), SHARES[:1] * 2)
        assert warehouse.error_meaning(raised.value) == warehouse.NOT_UNIQUE
        assert db.execute("SELECT COUNT(*) FROM attribution_customer_journey").fetchone()[0] == 0


class RowsBrokeError(Exception):
    """Raised by the rows themselves, as a damaged result file raises while it is read."""


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_insert_many_raises_the_rows_own_error_through_either_driver(postgres_url, driver):
    def rows():
        yield SHARES[0]
        raise RowsBrokeError("result file results/chunk-0001.json is not a valid result")

    with closing(driver_warehouse(postgres_url, driver)) as db:
        with pytest.raises(RowsBrokeError, match="chunk-0001"), db.transaction():
            db.insert_many("attribution_customer_journey", ("conv_id", "session_id", "ihc"), rows())
        assert db.execute("SELECT COUNT(*) FROM attribution_customer_journey").fetchone()[0] == 0
