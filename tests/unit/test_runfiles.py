from __future__ import annotations

from pathlib import Path

import pytest

from include.runfiles import atomic_write_bytes, run_directory


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
