"""One read-only SQLite query in a process of its own, for ``Warehouse.read_each``.

SQLite serializes the memory allocator of one process (the distributions' builds count every
allocation under one mutex and have no lookaside), so two threads reading at once are slower than
one; two processes use two cores. This module imports only the standard library and runs as a
script (``python -I include/sqlite_reader.py``), so it starts in milliseconds under any
interpreter that runs the pipeline, whatever imported what before.

The request comes as JSON on stdin: ``{"path", "sql", "params", "timeout", "threads"}``; the answer
goes as JSON to stdout: ``{"rows": [[...], ...]}``, or ``{"error": message, "code": SQLite's
extended result code}`` with exit code 1.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any


def rows(request: dict[str, Any]) -> list[list[Any]]:
    uri = f"{Path(request['path']).absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=request["timeout"], isolation_level=None)
    try:
        conn.execute(f"PRAGMA threads = {int(request['threads'])}")
        return [list(row) for row in conn.execute(request["sql"], request["params"])]
    finally:
        conn.close()


def main() -> int:
    request = json.load(sys.stdin)
    try:
        answer: dict[str, Any] = {"rows": rows(request)}
    except sqlite3.Error as exc:
        answer = {"error": str(exc), "code": getattr(exc, "sqlite_errorcode", None)}
    json.dump(answer, sys.stdout)
    return 0 if "rows" in answer else 1


if __name__ == "__main__":
    sys.exit(main())
