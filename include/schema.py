"""The tables: the challenge's input tables the pipeline reads, and the output tables and indexes
it creates if missing."""

from __future__ import annotations

from include.warehouse import Warehouse, WarehouseSetupError

INPUT_COLUMNS = {
    "session_sources": (
        "session_id",
        "user_id",
        "event_date",
        "event_time",
        "channel_name",
        "holder_engagement",
        "closer_engagement",
        "impression_interaction",
    ),
    "conversions": ("conv_id", "user_id", "conv_date", "conv_time", "revenue"),
    "session_costs": ("session_id", "cost"),
}


# The challenge's input tables, for warehouses that the tools here fill (tests, compose, copies).
INPUT_DDL = (
    """CREATE TABLE IF NOT EXISTS session_sources (
        session_id TEXT NOT NULL PRIMARY KEY, user_id TEXT, event_date TEXT, event_time TEXT,
        channel_name TEXT, holder_engagement INTEGER, closer_engagement INTEGER,
        impression_interaction INTEGER)""",
    """CREATE TABLE IF NOT EXISTS conversions (
        conv_id TEXT NOT NULL PRIMARY KEY, user_id TEXT, conv_date TEXT, conv_time TEXT, revenue {float})""",
    "CREATE TABLE IF NOT EXISTS session_costs (session_id TEXT NOT NULL PRIMARY KEY, cost {float})",
)


OUTPUT_DDL = (
    """CREATE TABLE IF NOT EXISTS attribution_customer_journey (
        conv_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        ihc {float} NOT NULL,
        PRIMARY KEY (conv_id, session_id))""",
    """CREATE TABLE IF NOT EXISTS attribution_phases (
        conv_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        initializer {float} NOT NULL,
        holder {float} NOT NULL,
        closer {float} NOT NULL,
        PRIMARY KEY (conv_id, session_id))""",
    # Each stored conversion's Markov credit per session of its journey (Σ credit = 1 per conversion).
    """CREATE TABLE IF NOT EXISTS attribution_markov (
        conv_id TEXT NOT NULL,
        session_id TEXT NOT NULL,
        credit {float} NOT NULL,
        PRIMARY KEY (conv_id, session_id))""",
    # Every conversion a run built a journey for (sessions 0: none before it), as it was sent: a
    # later run compares the journey it builds now with this fingerprint (include.ledger).
    """CREATE TABLE IF NOT EXISTS conversion_journeys (
        conv_id TEXT NOT NULL PRIMARY KEY,
        conv_timestamp TEXT NOT NULL,
        conv_date TEXT NOT NULL,
        sessions INTEGER NOT NULL,
        fingerprint TEXT NOT NULL)""",
    # The browsing paths' transitions (one user's sessions of one day) per session date: the
    # Markov model of a conversion date adds up its look-back's days (include.markov).
    """CREATE TABLE IF NOT EXISTS markov_day_transitions (
        date TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (date, from_state, to_state))""",
    """CREATE TABLE IF NOT EXISTS channel_reporting (
        channel_name TEXT NOT NULL,
        date TEXT NOT NULL,
        cost {float} NOT NULL,
        ihc {float} NOT NULL,
        ihc_revenue {float} NOT NULL,
        PRIMARY KEY (channel_name, date))""",
    """CREATE TABLE IF NOT EXISTS channel_roles (
        channel_name TEXT NOT NULL,
        date TEXT NOT NULL,
        initializer {float} NOT NULL,
        holder {float} NOT NULL,
        closer {float} NOT NULL,
        initializer_revenue {float} NOT NULL,
        holder_revenue {float} NOT NULL,
        closer_revenue {float} NOT NULL,
        PRIMARY KEY (channel_name, date))""",
    """CREATE TABLE IF NOT EXISTS channel_model_comparison (
        model TEXT NOT NULL,
        channel_name TEXT NOT NULL,
        date TEXT NOT NULL,
        credit {float} NOT NULL,
        revenue {float} NOT NULL,
        PRIMARY KEY (model, channel_name, date))""",
)


# Every table the pipeline writes, by name (the first word after TABLE IF NOT EXISTS above).
OUTPUT_TABLES = tuple(statement.split()[5] for statement in OUTPUT_DDL)


INDEXES = (
    # Each user's sessions in time order, with their channel: the journeys look users up by it, and
    # the Markov model reads every path from it alone.
    """CREATE INDEX IF NOT EXISTS idx_session_sources_path
       ON session_sources (user_id, event_date, event_time, session_id{bytewise}, channel_name)""",
    "CREATE INDEX IF NOT EXISTS idx_session_sources_date ON session_sources (event_date)",
    "CREATE INDEX IF NOT EXISTS idx_conversions_date ON conversions (conv_date)",
    "CREATE INDEX IF NOT EXISTS idx_attribution_session ON attribution_customer_journey (session_id)",
    "CREATE INDEX IF NOT EXISTS idx_conversion_journeys_date ON conversion_journeys (conv_date)",
)


# Indexes of earlier versions that a current one covers: dropped, so writes to session_sources
# do not keep them up to date for nothing.
RETIRED_INDEXES = ("idx_session_sources_user_time",)


def check_input_tables(db: Warehouse) -> None:
    for table, columns in INPUT_COLUMNS.items():
        present = db.columns(table)
        if not present:
            raise WarehouseSetupError(f"{db.label} has no table {table!r} (expected columns {columns})")
        missing = set(columns) - present
        if missing:
            raise WarehouseSetupError(f"{db.label}: table {table!r} lacks the columns {sorted(missing)}")


def init_schema(db: Warehouse) -> None:
    """Create the output tables and the indexes the queries filter by, if missing."""
    check_input_tables(db)
    with db.transaction():
        for statement in OUTPUT_DDL + INDEXES:
            db.execute(statement)
        for index in RETIRED_INDEXES:
            db.execute(f"DROP INDEX IF EXISTS {index}")


def create_input_tables(db: Warehouse) -> None:
    with db.transaction():
        for statement in INPUT_DDL:
            db.execute(statement)
