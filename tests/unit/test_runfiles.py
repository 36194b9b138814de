"""Run folders and atomic writes, on a local disk and on an object store (fsspec's memory fs)."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import time
import uuid
from pathlib import Path

import pytest
from upath import UPath

from include.runfiles import (
    atomic_write_bytes,
    atomic_writer,
    exclusive_lock,
    expired_runs,
    local_path,
    remove_folder,
    run_directory,
)


def test_run_directory_is_filesystem_safe_and_distinct_per_run(tmp_path: Path):
    first = run_directory(tmp_path, "manual__2023-09-01T00:00:00+00:00")
    second = run_directory(tmp_path, "scheduled__2023-09-02T00:00:00+00:00")
    assert first.is_dir() and second.is_dir() and first != second
    assert first.parent == tmp_path
    assert ":" not in first.name and "+" not in first.name
    assert run_directory(tmp_path, "../../etc").parent == tmp_path


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path: Path):
    path = tmp_path / "sub" / "file.json"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["file.json"]


def test_failed_atomic_write_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "file.json"
    atomic_write_bytes(path, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


@pytest.fixture
def object_store():
    """A folder on fsspec's in-memory filesystem: an object store with no local file behind it."""
    root = UPath(f"memory://ihc-{uuid.uuid4().hex[:8]}/runs")
    yield root
    if root.exists():
        root.fs.rm(root.path, recursive=True)


def test_local_path_tells_local_folders_from_object_stores(tmp_path, object_store):
    assert local_path(tmp_path) == tmp_path
    assert local_path(UPath(f"file://{tmp_path}")) == tmp_path
    assert local_path(object_store) is None


def test_object_store_write_appears_whole_and_only_on_success(object_store):
    path = run_directory(object_store, "manual__2023-09-01") / "chunks" / "chunk-0000.json"
    with pytest.raises(RuntimeError), atomic_writer(path) as handle:
        handle.write(b"half")
        raise RuntimeError("killed mid-write")
    assert not path.exists()

    atomic_write_bytes(path, b"whole")
    assert path.read_bytes() == b"whole"
    assert [p.name for p in path.parent.iterdir()] == ["chunk-0000.json"]


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_get_the_umask_mode_like_any_new_file(tmp_path: Path, umask: int, mode: int):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "channel_reporting.csv", b"a,b\n")
    finally:
        os.umask(old)
    assert (tmp_path / "channel_reporting.csv").stat().st_mode & 0o777 == mode
    assert [p.name for p in tmp_path.iterdir()] == ["channel_reporting.csv"]


def test_the_folder_lock_serialises_processes_and_leaves_no_file(tmp_path: Path):
    folder = tmp_path / "output"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(folder, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    finally:
        release.set()
        holder.join(30)
    with exclusive_lock(folder):
        pass
    assert list(folder.iterdir()) == []


def _hold_lock(folder: Path, ready, release) -> None:
    with exclusive_lock(folder):
        ready.set()
        release.wait(30)


def _age(folder: Path, days: float, now: float) -> None:
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (now - days * 86400, now - days * 86400))


def test_expired_runs_are_the_old_ones_except_the_kept_one(tmp_path: Path):
    now = time.time()
    for name, days in (("old", 40), ("recent", 2), ("current", 90)):
        atomic_write_bytes(tmp_path / name / "chunks" / "chunk-0000.json", b"[]")
        _age(tmp_path / name, days, now)
    os.utime(tmp_path / "recent" / "chunks" / "chunk-0000.json", (now, now))
    (tmp_path / "channel_reporting.csv").write_text("not a folder")

    assert [f.name for f in expired_runs(tmp_path, "current", 30, now)] == ["old"]
    assert [f.name for f in expired_runs(tmp_path, "current", 50, now)] == []


def test_expired_runs_on_an_object_store(object_store):
    for name in ("a", "b"):
        atomic_write_bytes(object_store / name / "summary.json", b"{}")
    later = time.time() + 3 * 86400
    assert [f.name for f in expired_runs(object_store, "b", 1, later)] == ["a"]
    remove_folder(object_store / "a")
    assert [f.name for f in object_store.iterdir()] == ["b"]
