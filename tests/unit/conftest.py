"""The empty warehouse of the SQL tests, on each dialect."""

from __future__ import annotations

import pytest

from include import schema, warehouse


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """An empty warehouse with the input tables, on each dialect."""
    if request.param == "sqlite":
        database = warehouse.connect_sqlite(tmp_path / "w.db", create=True)
    else:
        database = warehouse.postgres_target(request.getfixturevalue("postgres_url"), "test").open()
    schema.create_input_tables(database)
    yield database
    database.close()
