"""Load a SQLite warehouse's input tables into PostgreSQL, creating the database if missing.

``python -m tools.postgres_load --sqlite data/challenge.db --url postgresql://u:p@host/db``
fills a PostgreSQL warehouse with the sample (docker compose does this). Tables that already
hold rows are left alone unless ``--replace`` is given, so a rerun never wipes loaded data.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from include import schema, warehouse


def ensure_database(url: str) -> str:
    """Create the URL's database on its server when it does not exist; returns its name."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise warehouse.WarehouseError(f"database name {name!r} in {parts.hostname}: use letters, digits and _")
    server = urlunsplit(parts._replace(path="/postgres"))
    with warehouse.postgres_target(server, f"{parts.hostname}/postgres").open() as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = :name", {"name": name}).fetchone() is None:
            admin.execute(f'CREATE DATABASE "{name}"')
    return name


def load(sqlite_path: Path, url: str, *, replace: bool = False) -> dict[str, int] | None:
    """Copy the input tables; None when the target already holds sessions and ``replace`` is off."""
    name = ensure_database(url)
    with warehouse.postgres_target(url, name).open() as dest:
        schema.create_input_tables(dest)
        if not replace and dest.execute("SELECT 1 FROM session_sources LIMIT 1").fetchone():
            return None
        with warehouse.connect_sqlite(sqlite_path) as source:
            return copy_inputs(source, dest)


def copy_inputs(source: warehouse.Warehouse, dest: warehouse.Warehouse) -> dict[str, int]:
    """Replace the destination's input rows by the source's, in one transaction, then ANALYZE.

    COPY streams the rows without a statement per batch (the 100x bench set has 45 M sessions);
    FREEZE, allowed right after the TRUNCATE, writes them already visible to everyone, so the
    first queries do not rewrite every page to set hint bits, nor does a vacuum come later.
    The statistics let the first queries plan for the real sizes."""
    schema.create_input_tables(dest)
    counts = {}
    with dest.transaction():
        for table, columns in schema.INPUT_COLUMNS.items():
            names = ", ".join(columns)
            dest.execute(f"TRUNCATE {table}")
            rows = source.stream(f"SELECT {names} FROM {table}", {})
            warehouse.copy_rows(dest.conn.cursor(), f"COPY {table} ({names}) FROM STDIN (FREEZE)", rows)
            counts[table] = dest.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    for table in schema.INPUT_COLUMNS:
        dest.execute(f"ANALYZE {table}")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.postgres_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", type=Path, required=True, help="SQLite warehouse to read")
    parser.add_argument("--url", required=True, help="postgresql://user:password@host:port/database")
    parser.add_argument("--replace", action="store_true", help="replace input rows already there")
    args = parser.parse_args(argv)
    counts = load(args.sqlite, args.url, replace=args.replace)
    where = urlsplit(args.url).hostname
    if counts is None:
        print(f"{where}: the input tables already hold data; left alone (--replace to overwrite)")
    else:
        print(f"{where}: loaded " + ", ".join(f"{rows:,} rows into {table}" for table, rows in counts.items()))


if __name__ == "__main__":
    main()
