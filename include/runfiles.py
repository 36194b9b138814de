"""Run-scoped working folders and atomic file writes, on a local disk or an object store.

Each DAG run works in its own folder, so parallel backfill runs never read each other's
chunks. A folder is a ``pathlib.Path`` or anything with its interface, such as Airflow's
ObjectStoragePath on ``s3://``: the DAG decides, the steps only use the interface. A reader
never sees half a file: locally a file is written under a temporary name and renamed; an
object store gets a finished local file in one upload.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import datetime
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


def read_lines(path: StoragePath) -> Generator[bytes, None, None]:
    """The file's lines, streamed (readline: Airflow 2.10's object-storage handles do not iterate)."""
    with (local_path(path) or path).open("rb") as handle:
        yield from iter(handle.readline, b"")


def run_folder_name(run_id: str) -> str:
    """The run id made filesystem-safe, plus a short hash of the raw id so that two ids
    differing only in unsafe characters never share a folder."""
    safe = _UNSAFE.sub("_", run_id).strip("._") or "run"
    return f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def run_directory(root: StoragePath, run_id: str) -> StoragePath:
    """The folder of one DAG run under ``root``, created if missing."""
    path = root / run_folder_name(run_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def exclusive_lock(folder: Path) -> Iterator[None]:
    """An advisory lock on a folder across processes of this machine, held until the block ends.

    The folder itself is locked (Linux locks directories like files), so no lock file is left.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _modified(info: dict) -> float | None:
    """A file's modification time from an object store's listing (the key differs by store)."""
    for key in ("mtime", "LastModified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
    return None


def last_modified(folder: StoragePath) -> float | None:
    """The newest modification time (epoch seconds) of a folder and the files below it."""
    local = local_path(folder)
    if local is not None:
        return max((p.stat().st_mtime for p in [local, *local.rglob("*")]), default=None)
    found = folder.fs.find(folder.path, detail=True)  # type: ignore[attr-defined]
    return max((t for t in map(_modified, found.values()) if t is not None), default=None)


def expired_runs(root: StoragePath, keep: str, max_age_days: int, now: float) -> list[StoragePath]:
    """Run folders under ``root`` untouched for more than ``max_age_days``, except ``keep``.

    A folder whose age cannot be read is kept."""
    cutoff = now - max_age_days * 86400
    folders = [f for f in (local_path(root) or root).iterdir() if f.is_dir() and f.name != keep]
    return [f for f in sorted(folders, key=str) if (m := last_modified(f)) is not None and m < cutoff]


def remove_folder(folder: StoragePath) -> None:
    local = local_path(folder)
    if local is not None:
        shutil.rmtree(local)
    else:
        folder.fs.rm(folder.path, recursive=True)  # type: ignore[attr-defined]


def temporary_file(folder: Path, name: str, mode: int) -> tuple[int, str]:
    """A new hidden file for ``name`` in ``folder``, created with ``mode`` less the umask. Beside its
    target it takes 0666 like any other new file: mkstemp's 0600 would leave outputs in a shared
    folder unreadable to the rest of the team."""
    while True:
        tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), str(tmp)
        except FileExistsError:
            continue


def temporaries(folder: Path, name: str) -> list[Path]:
    """The temporary files for ``name`` in ``folder``: what a killed writer of it left behind."""
    return sorted(folder.glob(f".{glob.escape(name)}.*.tmp"))


def fsync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable: a rename is an entry of the folder, not of the file."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_writer(path: StoragePath) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file that becomes ``path`` when the block ends cleanly."""
    local = local_path(path)
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = temporary_file(local.parent, path.name, 0o666)
    else:  # a staging copy for the upload, in the machine's shared temporary folder
        fd, tmp = temporary_file(Path(tempfile.gettempdir()), path.name, 0o600)
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
