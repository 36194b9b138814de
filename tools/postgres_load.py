"""Load a SQLite warehouse's input tables into PostgreSQL, creating the database if missing.

``python -m tools.postgres_load --sqlite data/challenge.db --url postgresql://u:p@host/db``
fills a PostgreSQL warehouse with the sample (docker compose does this). Tables that already
hold rows are left alone unless ``--replace`` is given, so a rerun never wipes loaded data.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
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
            copy_rows(dest.conn.cursor(), f"COPY {table} ({names}) FROM STDIN (FREEZE)", rows)
            counts[table] = dest.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    for table in schema.INPUT_COLUMNS:
        dest.execute(f"ANALYZE {table}")
    return counts


def copy_rows(cursor: Any, statement: str, rows: Iterable[Sequence[object]]) -> None:
    """COPY ... FROM STDIN through either driver: psycopg 3 writes rows itself; psycopg2 (the
    Airflow 2.10 line, older images) reads them as COPY text from a file-like object."""
    if hasattr(cursor, "copy"):
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    else:
        cursor.copy_expert(statement, _CopyText(rows))


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class _CopyText:
    """Rows as COPY text lines, produced as psycopg2's copy_expert reads them, a block at a time."""

    def __init__(self, rows: Iterable[Sequence[object]]) -> None:
        self._lines = ("\t".join(map(_copy_field, row)).encode() + b"\n" for row in rows)
        self._pending = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            line = next(self._lines, None)
            if line is None:
                break
            self._pending += line
        taken = bytes(self._pending if size < 0 else self._pending[:size])
        del self._pending[: len(taken)]
        return taken


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
