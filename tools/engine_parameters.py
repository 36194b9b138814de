"""The engine's parameter files: one JSON file per conversion type, ``<folder>/<conv_type_id>.json``.

Plain data a person can read and diff: the trained bounds, the time-to-conversion distribution,
the levels, weights and constants, and what they were trained on. A file is checked field by
field when it is read, so a broken one stops the server's start naming the file and the field,
instead of scoring with something made up.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import orjson

from include import settings
from include.runfiles import atomic_write_bytes
from tools.ihc_engine import PHASES, EngineParameters

FORMAT_VERSION = 1
ENGINE_DIR_ENV = "IHC_ENGINE_DIR"


class ParameterFileError(ValueError):
    """A parameter file is missing, unreadable, or holds a field the engine cannot use."""


@dataclass(frozen=True)
class TrainedOn:
    """Where the parameters came from: the warehouse (no password), the range, and the counts."""

    warehouse: str
    start: str
    end: str
    lookback_days: int
    conversions: int
    journeys: int
    multi_session_journeys: int
    gaps: int
    toc_values: int


@dataclass(frozen=True)
class ParameterFile:
    conv_type_id: str
    parameters: EngineParameters
    trained_on: TrainedOn
    path: str = ""  # where it was read from or written to; not part of the file

    def to_json(self) -> bytes:
        p = self.parameters
        document = {
            "format": FORMAT_VERSION,
            "conv_type_id": self.conv_type_id,
            "trained_on": asdict(self.trained_on),
            "initializer": {"start_hours": p.initializer_start_hours, "end_hours": p.initializer_end_hours},
            "holder": {"power": p.holder_power, "divisor": p.holder_divisor},
            "weights": dict(zip(PHASES, p.weights, strict=True)),
            "closer": {"levels": list(p.closer_levels), "toc_quantiles_hours": list(p.toc_quantiles_hours)},
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def engine_dir() -> Path:
    """The folder of the parameter files: env IHC_ENGINE_DIR, else ``data/engine``."""
    return Path(os.environ.get(ENGINE_DIR_ENV) or settings.data_dir() / "engine")


def file_for(folder: Path, conv_type_id: str) -> Path:
    if not conv_type_id or "/" in conv_type_id or conv_type_id.startswith("."):
        raise ParameterFileError(f"conversion type {conv_type_id!r} cannot name a parameter file")
    return folder / f"{conv_type_id}.json"


def write(folder: Path, parameter_file: ParameterFile) -> Path:
    """Write atomically (a temporary file of its own, then rename): a reader never sees half a
    file, and two trainings at once (make demo beside make airflow) never share one."""
    path = file_for(folder, parameter_file.conv_type_id)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, parameter_file.to_json())
    return path


class _Fields:
    """Typed fields of one document by dotted name (``closer.levels.0``); each error names the
    file and the field."""

    def __init__(self, path: Path, document: dict) -> None:
        self.path = path
        self.document = document

    def fail(self, name: str, problem: str) -> ParameterFileError:
        return ParameterFileError(f"engine parameter file {self.path}: {name} {problem}")

    def get(self, name: str) -> object:
        node: object = self.document
        for part in name.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise self.fail(name, "is missing")
        return node

    def number(self, name: str, minimum: float | None = None) -> float:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(name, f"is {value!r}, not a finite number")
        if minimum is not None and value < minimum:
            raise self.fail(name, f"is {value}, below {minimum}")
        return float(value)

    def positive(self, name: str) -> float:
        value = self.number(name)
        if value <= 0:
            raise self.fail(name, f"is {value}, not above 0")
        return value

    def text(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str) or not value:
            raise self.fail(name, f"is {value!r}, not a non-empty string")
        return value

    def count(self, name: str) -> int:
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(name, f"is {value!r}, not a count")
        return value

    def array(self, name: str, length: int | None = None) -> list:
        value = self.get(name)
        if not isinstance(value, list):
            raise self.fail(name, f"is {value!r}, not a list")
        if length is not None and len(value) != length:
            raise self.fail(name, f"holds {len(value)} values, not {length}")
        return value


def parse(path: Path, raw: bytes) -> ParameterFile:
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParameterFileError(f"engine parameter file {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ParameterFileError(f"engine parameter file {path} does not hold a JSON object")
    f = _Fields(path, document)
    if f.get("format") != FORMAT_VERSION:
        raise f.fail("format", f"is {f.get('format')!r}; this engine reads format {FORMAT_VERSION}")
    start = f.number("initializer.start_hours", minimum=0)
    end = f.number("initializer.end_hours", minimum=0)
    if end < start:
        raise f.fail("initializer.end_hours", f"({end}) is below initializer.start_hours ({start})")
    f.array("closer.levels", length=2)
    low, high = f.number("closer.levels.0", minimum=0), f.number("closer.levels.1", minimum=0)
    if not low < high <= 1:
        raise f.fail("closer.levels", f"must be two levels 0 <= a < b <= 1, not [{low}, {high}]")
    parameters = EngineParameters(
        initializer_start_hours=start,
        initializer_end_hours=end,
        toc_quantiles_hours=_quantiles(f, "closer.toc_quantiles_hours"),
        closer_levels=(low, high),
        weights=tuple(f.positive(f"weights.{phase}") for phase in PHASES),
        holder_power=f.positive("holder.power"),
        holder_divisor=f.positive("holder.divisor"),
    )
    trained_on = TrainedOn(
        warehouse=f.text("trained_on.warehouse"),
        start=f.text("trained_on.start"),
        end=f.text("trained_on.end"),
        lookback_days=f.count("trained_on.lookback_days"),
        conversions=f.count("trained_on.conversions"),
        journeys=f.count("trained_on.journeys"),
        multi_session_journeys=f.count("trained_on.multi_session_journeys"),
        gaps=f.count("trained_on.gaps"),
        toc_values=f.count("trained_on.toc_values"),
    )
    conv_type_id = f.text("conv_type_id")
    if path.stem != conv_type_id:
        raise f.fail("conv_type_id", f"is {conv_type_id!r}, but the file is named for {path.stem!r}")
    return ParameterFile(conv_type_id, parameters, trained_on, str(path))


def _quantiles(f: _Fields, name: str) -> tuple[float, ...]:
    count = len(f.array(name))
    if count < 2:
        raise f.fail(name, f"holds {count} values: the time-to-conversion distribution is empty")
    values = tuple(f.number(f"{name}.{i}", minimum=0) for i in range(count))
    if any(b < a for a, b in pairwise(values)):
        raise f.fail(name, "is not in ascending order")
    return values


def read(path: Path) -> ParameterFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ParameterFileError(f"engine parameter file {path} cannot be read: {exc.strerror}") from None
    return parse(path, raw)


def read_folder(folder: Path) -> dict[str, ParameterFile]:
    """Every ``*.json`` of the folder by conversion type; the first broken file stops it."""
    return {pf.conv_type_id: pf for pf in (read(path) for path in sorted(folder.glob("*.json")))}
