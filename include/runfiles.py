"""Run-scoped working folders and atomic file writes, on a local disk or an object store.

Each DAG run works in its own folder, so parallel backfill runs never read each other's
chunks. A folder is a ``pathlib.Path`` or anything with its interface, such as Airflow's
ObjectStoragePath on ``s3://``: the DAG decides, the steps only use the interface. A reader
never sees half a file: locally a file is written under a temporary name and renamed; an
object store gets a finished local file in one upload.
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
from typing import IO, Any, BinaryIO, Protocol

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
LOCAL_PROTOCOLS = ("", "file", "local")


class StoragePath(Protocol):
    """The part of ``pathlib.Path`` that the steps use; Airflow's ObjectStoragePath has it too."""

    @property
    def name(self) -> str: ...
    @property
    def parent(self) -> Any: ...
    def __truediv__(self, other: str) -> Any: ...
    def open(self, mode: str = "r") -> IO[Any]: ...
    def read_bytes(self) -> bytes: ...
    def exists(self) -> bool: ...
    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None: ...


def local_path(path: StoragePath) -> Path | None:
    """The local file behind ``path``, or None when it lives in an object store."""
    protocol = getattr(path, "protocol", None)
    if protocol is None:
        return Path(path)  # type: ignore[arg-type]
    return Path(path.path) if protocol in LOCAL_PROTOCOLS else None  # type: ignore[attr-defined]


def read_bytes(path: StoragePath) -> bytes:
    return (local_path(path) or path).read_bytes()


def read_lines(path: StoragePath) -> Iterator[bytes]:
    """The file's lines, streamed (readline: Airflow 2.10's object-storage handles do not iterate)."""
    with (local_path(path) or path).open("rb") as handle:
        yield from iter(handle.readline, b"")


def run_directory(root: StoragePath, run_id: str) -> StoragePath:
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
def atomic_writer(path: StoragePath) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file that becomes ``path`` when the block ends cleanly."""
    local = local_path(path)
    folder = local.parent if local is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if local is not None:
            os.replace(tmp, local)
        else:
            # One upload of a finished file: object stores show an object only once it completes.
            path.parent.mkdir(parents=True, exist_ok=True)
            path.fs.put_file(tmp, path.path)  # type: ignore[attr-defined]
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: StoragePath, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)
