"""Rows and catalog queries for tests on small hand-built warehouses, SQLite and PostgreSQL alike."""

from __future__ import annotations

from include import warehouse
from include.schema import INPUT_COLUMNS

OUTPUT_TABLES = {"attribution_customer_journey", "channel_reporting", "channel_model_comparison"}


INDEXES = {
    "idx_session_sources_path",
    "idx_session_sources_date",
    "idx_conversions_date",
    "idx_attribution_session",
}


def add_sessions(db, rows):
    """rows: (session_id, user_id, 'YYYY-MM-DD HH:MM:SS', channel[, holder, closer, impression])."""
    full = []
    for row in rows:
        session_id, user_id, ts, channel, *flags = row
        day, time = ts.split(" ")
        full.append((session_id, user_id, day, time, channel, *(flags or (1, 0, 0))))
    db.insert_many("session_sources", INPUT_COLUMNS["session_sources"], full)


def add_conversions(db, rows):
    """rows: (conv_id, user_id, 'YYYY-MM-DD HH:MM:SS', revenue)."""
    full = [(c, u, *ts.split(" "), revenue) for c, u, ts, revenue in rows]
    db.insert_many("conversions", INPUT_COLUMNS["conversions"], full)


def add_costs(db, rows):
    db.insert_many("session_costs", INPUT_COLUMNS["session_costs"], rows)


CATALOG = {
    ("sqlite", "table"): "SELECT name FROM sqlite_master WHERE type = 'table'",
    ("sqlite", "index"): "SELECT name FROM sqlite_master WHERE type = 'index'",
    ("postgresql", "table"): "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
    ("postgresql", "index"): "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()",
    ("sqlite", "pk"): "SELECT name FROM pragma_table_info(:table) WHERE pk > 0 ORDER BY pk",
    ("postgresql", "pk"): """
        SELECT a.attname FROM pg_index i
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = CAST(:table AS regclass) AND i.indisprimary
        ORDER BY array_position(i.indkey, a.attnum)""",
}


def table_names(db, kind):
    return {r[0] for r in db.execute(CATALOG[db.dialect.name, kind])}


def primary_key(db, table):
    return [r[0] for r in db.execute(CATALOG[db.dialect.name, "pk"], {"table": table})]


def in_transaction(db) -> bool:
    conn = db.conn
    if db.dialect is warehouse.SQLITE:
        return conn.in_transaction
    status = conn.info.transaction_status if hasattr(conn, "info") else conn.get_transaction_status()
    return status != 0  # IDLE


def stored_attributions(db):
    return sorted(db.execute("SELECT conv_id, session_id, ihc FROM attribution_customer_journey").fetchall())


def stored_report(db):
    return db.execute(
        "SELECT channel_name, date, cost, ihc, ihc_revenue FROM channel_reporting ORDER BY 1, 2"
    ).fetchall()


def phased(rows):
    """(conv_id, session_id, ihc) rows as the writer takes them: each phase share equal to ihc."""
    return [(conv_id, session_id, ihc, ihc, ihc, ihc) for conv_id, session_id, ihc in rows]


def stored_phases(db):
    return sorted(
        db.execute("SELECT conv_id, session_id, initializer, holder, closer FROM attribution_phases").fetchall()
    )
