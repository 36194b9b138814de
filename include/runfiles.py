"""Run-scoped working folders and atomic file writes.

Each DAG run works in its own folder, so parallel backfill runs never read each other's
chunks; files are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_directory(root: Path, run_id: str) -> Path:
    """The folder of one DAG run: the run id made filesystem-safe, plus a short hash of the raw
    id so that two ids differing only in unsafe characters never share a folder."""
    safe = _UNSAFE.sub("_", run_id).strip("._") or "run"
    path = root / f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An advisory lock on ``path`` across processes of this machine (held until the block ends)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file that replaces ``path`` when the block ends cleanly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)
