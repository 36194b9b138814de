"""Parameter files: what training writes is what the server reads; a broken file is refused
naming the file and the field, and the server does not start on it."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from include import settings
from tools import engine_parameters
from tools.engine_parameters import ParameterFile, ParameterFileError


@pytest.fixture
def document(trained_engine: ParameterFile) -> dict:
    return orjson.loads(trained_engine.to_json())


def write_document(folder: Path, document: dict, name: str = "default") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_bytes(orjson.dumps(document))
    return path


def test_write_then_read_gives_the_same_parameters(trained_engine: ParameterFile, tmp_path: Path) -> None:
    path = engine_parameters.write(tmp_path, trained_engine)
    assert path == tmp_path / "default.json"
    again = engine_parameters.read(path)
    assert again.parameters == trained_engine.parameters
    assert again.trained_on == trained_engine.trained_on
    assert again.path == str(path)
    assert [p.name for p in tmp_path.iterdir()] == ["default.json"], "no temporary file is left"


def test_the_file_says_what_it_was_trained_on(document: dict) -> None:
    on = document["trained_on"]
    assert (on["start"], on["end"], on["lookback_days"]) == (settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE, 30)
    assert on["conversions"] == 2000
    assert on["gaps"] == on["toc_values"] > 0
    assert on["journeys"] > on["multi_session_journeys"] > 0
    assert document["initializer"]["start_hours"] < document["initializer"]["end_hours"]


def without(document: dict, dotted: str) -> dict:
    changed = copy.deepcopy(document)
    *parents, last = dotted.split(".")
    node = changed
    for part in parents:
        node = node[part]
    del node[last]
    return changed


def with_value(document: dict, dotted: str, value: object) -> dict:
    changed = copy.deepcopy(document)
    *parents, last = dotted.split(".")
    node = changed
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return changed


@pytest.mark.parametrize(
    "field",
    [
        "initializer.start_hours",
        "initializer.end_hours",
        "closer.levels",
        "closer.toc_quantiles_hours",
        "weights.holder",
        "holder.power",
        "trained_on.gaps",
        "trained_on.start",
        "conv_type_id",
        "format",
    ],
)
def test_a_missing_field_is_named(document: dict, tmp_path: Path, field: str) -> None:
    path = write_document(tmp_path, without(document, field))
    with pytest.raises(ParameterFileError) as caught:
        engine_parameters.read(path)
    assert str(path) in str(caught.value)
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("initializer.end_hours", 0.5, "initializer.end_hours (0.5) is below initializer.start_hours"),
        ("initializer.start_hours", "4h", "initializer.start_hours is '4h', not a finite number"),
        ("closer.toc_quantiles_hours", [], "the time-to-conversion distribution is empty"),
        ("closer.toc_quantiles_hours", [3.0, 2.0, 5.0], "closer.toc_quantiles_hours is not in ascending order"),
        ("closer.toc_quantiles_hours.1", None, "closer.toc_quantiles_hours.1 is None, not a finite number"),
        ("closer.levels", [0.7, 0.08], "closer.levels must be two levels 0 <= a < b <= 1"),
        ("closer.levels", [0.08, 0.7, 0.9], "closer.levels holds 3 values, not 2"),
        ("weights.closer", 0, "weights.closer is 0.0, not above 0"),
        ("trained_on.journeys", -1, "trained_on.journeys is -1, not a count"),
        ("conv_type_id", "other", "conv_type_id is 'other', but the file is named for 'default'"),
        ("format", 2, "format is 2; this engine reads format 1"),
    ],
)
def test_a_bad_field_is_named(document: dict, tmp_path: Path, field: str, value: object, problem: str) -> None:
    path = write_document(tmp_path, with_value(document, field, value))
    with pytest.raises(ParameterFileError) as caught:
        engine_parameters.read(path)
    assert str(caught.value).startswith(f"engine parameter file {path}: ")
    assert problem in str(caught.value)


def test_a_file_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "default.json"
    path.write_text('{"format": 1,')
    with pytest.raises(ParameterFileError, match=r"default\.json is not valid JSON"):
        engine_parameters.read(path)


def test_a_conversion_type_that_cannot_be_a_file_name_is_refused(tmp_path: Path) -> None:
    for bad in ("", "../x", ".hidden"):
        with pytest.raises(ParameterFileError, match="cannot name a parameter file"):
            engine_parameters.file_for(tmp_path, bad)


def test_read_folder_keys_the_files_by_conversion_type(trained_engine: ParameterFile, tmp_path: Path) -> None:
    document = orjson.loads(trained_engine.to_json())
    write_document(tmp_path, document)
    write_document(tmp_path, {**document, "conv_type_id": "purchase"}, name="purchase")
    (tmp_path / "notes.txt").write_text("not a parameter file")
    assert sorted(engine_parameters.read_folder(tmp_path)) == ["default", "purchase"]
    assert engine_parameters.read_folder(tmp_path / "missing") == {}


def start_server(engine_dir: Path) -> subprocess.CompletedProcess:
    """The server's command line; a start that fails exits before it listens."""
    return subprocess.run(
        [sys.executable, "-m", "tools.local_server", "--port", "0", "--engine-dir", str(engine_dir)],
        cwd=settings.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: without(d, "initializer.end_hours"), "initializer.end_hours is missing"),
        (lambda d: with_value(d, "initializer.end_hours", 0.1), "is below initializer.start_hours"),
        (lambda d: with_value(d, "closer.toc_quantiles_hours", []), "distribution is empty"),
    ],
    ids=["missing-field", "bounds-out-of-order", "empty-distribution"],
)
def test_the_server_does_not_start_on_a_broken_file(document: dict, tmp_path: Path, change, problem: str) -> None:
    path = write_document(tmp_path, change(document))
    done = start_server(tmp_path)
    assert done.returncode != 0
    assert f"local IHC server not started: engine parameter file {path}" in done.stderr
    assert problem in done.stderr


def test_the_server_does_not_start_without_parameter_files(tmp_path: Path) -> None:
    done = start_server(tmp_path)
    assert done.returncode != 0
    assert f"no engine parameter files (*.json) in {tmp_path}" in done.stderr
    assert "make engine-train" in done.stderr
