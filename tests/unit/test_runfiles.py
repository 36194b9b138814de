"""Run folders and atomic writes, on a local disk and on an object store (fsspec's memory fs)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from upath import UPath

from include.runfiles import atomic_write_bytes, atomic_writer, local_path, run_directory


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
