"""The schema on both dialects: output tables and indexes created once, missing inputs named."""

from __future__ import annotations

import pytest

from include import schema
from include.warehouse import WarehouseError
from tests.warehouse_rows import (
    INDEXES,
    OUTPUT_TABLES,
    add_conversions,
    primary_key,
    stored_attributions,
    stored_report,
    table_names,
)


def test_init_schema_creates_output_tables_and_indexes(db):
    assert not OUTPUT_TABLES & table_names(db, "table")
    schema.init_schema(db)
    assert table_names(db, "table") >= OUTPUT_TABLES
    assert table_names(db, "index") >= INDEXES
    assert primary_key(db, "attribution_customer_journey") == ["conv_id", "session_id"]
    assert primary_key(db, "channel_reporting") == ["channel_name", "date"]
    assert db.columns("channel_reporting") == {"channel_name", "date", "cost", "ihc", "ihc_revenue"}


def test_init_schema_is_idempotent_and_keeps_data(db):
    schema.init_schema(db)
    add_conversions(db, [("c1", "u1", "2023-09-01 10:00:00", 5.0)])
    db.execute("INSERT INTO attribution_customer_journey VALUES ('c1', 's1', 1.0)")
    db.execute("INSERT INTO channel_reporting VALUES ('Referral', '2023-09-01', 1.0, 1.0, 5.0)")
    tables, indexes = table_names(db, "table"), table_names(db, "index")

    schema.init_schema(db)
    schema.init_schema(db)

    assert table_names(db, "table") == tables
    assert table_names(db, "index") == indexes
    assert stored_attributions(db) == [("c1", "s1", 1.0)]
    assert stored_report(db) == [("Referral", "2023-09-01", 1.0, 1.0, 5.0)]


@pytest.mark.parametrize("missing", ["session_sources", "conversions", "session_costs"])
def test_missing_input_table_is_named(db, missing):
    db.execute(f"DROP TABLE {missing}")
    with pytest.raises(WarehouseError) as info:
        schema.init_schema(db)
    assert repr(missing) in str(info.value)
    assert not OUTPUT_TABLES & table_names(db, "table")


@pytest.mark.parametrize(
    ("table", "column"),
    [("session_sources", "closer_engagement"), ("conversions", "revenue"), ("session_costs", "cost")],
)
def test_missing_input_column_is_named(db, table, column):
    db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    with pytest.raises(WarehouseError) as info:
        schema.init_schema(db)
    assert table in str(info.value)
    assert column in str(info.value)


def test_init_schema_drops_the_indexes_a_current_one_covers(db):
    db.execute("CREATE TABLE IF NOT EXISTS keep_me (x INTEGER)")
    db.execute("CREATE INDEX idx_session_sources_user_time ON session_sources (user_id, event_date, event_time)")
    schema.init_schema(db)
    assert "idx_session_sources_user_time" not in table_names(db, "index")
    assert table_names(db, "index") >= INDEXES
