"""Every setting of the pipeline, its default, and where it comes from, in one place.

Values arrive as strings (Airflow Variables, DAG params, environment); the parsers here turn
them into typed values and name the setting at fault when one is wrong.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import ClassVar

from include.errors import FinalError

PROJECT_ROOT = Path(__file__).resolve().parents[1]

SAMPLE_START_DATE = "2023-09-01"
SAMPLE_END_DATE = "2023-09-07"

API_POOL = "ihc_api"
DAG_ID = "ihc_attribution"
API_CONN_ID = "ihc_api"
WAREHOUSE_CONN_ID = "ihc_warehouse"

LOCAL_API_HOST = "127.0.0.1"
LOCAL_API_PORT = 8765
LOCAL_API_KEY = "local-dev-key"
DEFAULT_CONV_TYPE_ID = "default"

# The outputs as Airflow Assets (Datasets on 2.10): a downstream DAG scheduled on one of these
# URIs runs when a run of ihc_attribution has updated it.
JOURNEYS_ASSET_URI = "ihc://warehouse/attribution_customer_journey"
REPORT_ASSET_URI = "ihc://warehouse/channel_reporting"
CSV_ASSET_URI = "ihc://output/channel_reporting.csv"

MAX_MAP_LENGTH = 1024
# Largest |Σ ihc - 1| accepted for one conversion, by the client and by the writer alike.
SUM_TOLERANCE = 0.01


class SettingError(FinalError, ValueError):
    """A setting, param or Variable holds a value the pipeline cannot use."""


class ConfigurationError(SettingError):
    """Several settings are wrong at once: each is named, so one failed run shows them all."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        listed = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(
            f"the run's configuration has {len(self.problems)} problem(s); nothing was read or written:\n{listed}"
        )


def problems_of(exc: SettingError) -> tuple[str, ...]:
    return exc.problems if isinstance(exc, ConfigurationError) else (str(exc),)


@dataclass(frozen=True)
class ConnectionFields:
    """An Airflow connection's fields as plain values: the pipeline reads them, not Airflow."""

    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    schema: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NumberVariable:
    """An Airflow Variable holding a finite number within [``minimum``, ``maximum``]; the bounds
    and the description are what the README and the Variable's description in the UI show."""

    name: str
    default: float
    minimum: float = 0.0
    maximum: float = math.inf
    description: str = ""
    KIND: ClassVar[type] = float
    KIND_NAME: ClassVar[str] = "a number"

    @property
    def bounds(self) -> str:
        if math.isinf(self.maximum):
            return f"{self.KIND_NAME} of at least {self.minimum:g}"
        return f"{self.KIND_NAME} from {self.minimum:g} to {self.maximum:g}"

    @property
    def ui_description(self) -> str:
        """The description Airflow's UI shows beside the Variable."""
        return f"{self.description} ({self.bounds}; default {self.default:g})"

    def parse(self, raw: object) -> float:
        if raw is None or raw == "":
            return self.default
        try:
            value = self.KIND(str(raw).strip())
        except ValueError:
            raise SettingError(
                f"Variable {self.name}={raw!r} is not {self.KIND_NAME} (allowed: {self.bounds})"
            ) from None
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum:
            raise SettingError(f"Variable {self.name}={raw!r} is outside the allowed range: {self.bounds}")
        return value


@dataclass(frozen=True)
class IntVariable(NumberVariable):
    """An Airflow Variable holding an integer, positive unless ``minimum`` says otherwise."""

    default: int
    minimum: int = 1
    KIND: ClassVar[type] = int
    KIND_NAME: ClassVar[str] = "an integer"


@dataclass(frozen=True)
class FloatVariable(NumberVariable):
    """An Airflow Variable holding a finite float."""


# The API's own per-request limits (free test accounts: 200 sessions).
API_MAX_JOURNEYS = 100
API_MAX_SESSIONS = 3000

CHUNK_SIZE = IntVariable("ihc_chunk_size", 400, maximum=100_000, description="journeys per mapped API task")
MAX_JOURNEYS_PER_REQUEST = IntVariable(
    "ihc_max_journeys_per_request", API_MAX_JOURNEYS, maximum=API_MAX_JOURNEYS, description="journeys per API request"
)
MAX_SESSIONS_PER_REQUEST = IntVariable(
    "ihc_max_sessions_per_request",
    API_MAX_SESSIONS,
    maximum=API_MAX_SESSIONS,
    description="sessions per API request (a free test account takes 200)",
)
REQUEST_CONCURRENCY = IntVariable(
    "ihc_request_concurrency", 4, maximum=64, description="API requests in flight per chunk task"
)
LOOKBACK_DAYS = IntVariable(
    "ihc_lookback_days", 30, maximum=3650, description="days of sessions before a conversion that count"
)
REQUEST_TIMEOUT_SECONDS = FloatVariable(
    "ihc_request_timeout_seconds", 60.0, minimum=0.001, maximum=3600, description="seconds one API request may take"
)
MAX_ATTEMPTS = IntVariable(
    "ihc_max_attempts_per_request", 5, maximum=100, description="attempts per API request within a task try"
)
BACKOFF_SECONDS = FloatVariable(
    "ihc_backoff_seconds", 0.5, minimum=0.01, maximum=600, description="first wait before an API request's retry"
)
MAX_BAD_ROW_SHARE = FloatVariable(
    "ihc_max_bad_row_share", 0.05, maximum=1.0, description="share of unusable input rows a run tolerates"
)
CHUNK_BUDGET_SECONDS = FloatVariable(
    "ihc_chunk_budget_seconds", 1800.0, minimum=1.0, maximum=86_400, description="seconds one chunk task try may take"
)
# At least a day, so a run never removes the folder of another run that is still going.
RUN_RETENTION_DAYS = IntVariable(
    "ihc_run_retention_days", 30, maximum=3650, description="days a run folder is kept after its last change"
)
API_WAIT_SECONDS = FloatVariable(
    "ihc_api_wait_seconds",
    60.0,
    maximum=3600,
    description="seconds the first task waits for an unreachable API before its try fails (it is then retried)",
)
DECAY_HALF_LIFE_DAYS = FloatVariable(
    "ihc_decay_half_life_days",
    7.0,
    minimum=0.01,
    maximum=3650,
    description="days before its conversion at which a session counts half in the time_decay model",
)

VARIABLES: tuple[NumberVariable, ...] = (
    CHUNK_SIZE,
    MAX_JOURNEYS_PER_REQUEST,
    MAX_SESSIONS_PER_REQUEST,
    REQUEST_CONCURRENCY,
    LOOKBACK_DAYS,
    REQUEST_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    BACKOFF_SECONDS,
    CHUNK_BUDGET_SECONDS,
    MAX_BAD_ROW_SHARE,
    RUN_RETENTION_DAYS,
    API_WAIT_SECONDS,
    DECAY_HALF_LIFE_DAYS,
)

# A DAG param (boolean): the run also writes its journeys as the IHC web app's training file.
EXPORT_JOURNEYS_PARAM = "export_training_journeys"

# A DAG param (boolean): attribute again every stored conversion near the range, changed or not.
REPROCESS_PARAM = "reprocess"

# Read by the failure callback when a task fails, not by the run configuration: it must work
# even when the run failed on a bad Variable.
FAILURE_NOTIFIER = "ihc_failure_notifier"


@dataclass(frozen=True)
class NotifierSpec:
    """An Airflow notifier class (import path) and its keyword arguments."""

    class_path: str
    kwargs: dict


def parse_notifier_spec(raw: str) -> NotifierSpec:
    """``{"class": "package.module.Notifier", "kwargs": {...}}``, the form of the Variable."""
    try:
        spec = json.loads(raw)
    except ValueError as exc:
        raise SettingError(f"Variable {FAILURE_NOTIFIER} is not JSON ({exc})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("class"), str) or "." not in spec["class"]:
        raise SettingError(f'Variable {FAILURE_NOTIFIER} needs {{"class": "module.Notifier", "kwargs": {{...}}}}')
    kwargs = spec.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise SettingError(f"Variable {FAILURE_NOTIFIER}: kwargs must be a JSON object")
    return NotifierSpec(spec["class"], kwargs)


@dataclass(frozen=True)
class DateRange:
    """Conversion dates, inclusive, as ISO strings (they compare like the stored TEXT)."""

    start: str
    end: str

    def days(self) -> list[str]:
        first, last = date.fromisoformat(self.start).toordinal(), date.fromisoformat(self.end).toordinal()
        return [date.fromordinal(day).isoformat() for day in range(first, last + 1)]


@dataclass(frozen=True)
class RunWindow:
    """What one run covers: conversions dated within ``dates``, sessions back to the look-back.

    Resolved once by the first task and handed on by XCom, so every step sees the same values
    even if a Variable changes while the run is going.
    """

    dates: DateRange
    lookback_days: int

    def __post_init__(self) -> None:
        if date.fromisoformat(self.dates.start) - date.min < timedelta(days=self.lookback_days):
            raise SettingError(
                f"param start_date={self.dates.start} with {LOOKBACK_DAYS.name}={self.lookback_days} reaches "
                "back before 0001-01-01, the earliest date the pipeline can compute"
            )

    @property
    def first_session_date(self) -> str:
        """The earliest session date the run reads: the look-back before its first conversion date."""
        return shifted_day(self.dates.start, -self.lookback_days)

    def to_xcom(self) -> dict[str, object]:
        return {"start": self.dates.start, "end": self.dates.end, "lookback_days": self.lookback_days}

    @classmethod
    def from_xcom(cls, data: dict) -> RunWindow:
        return cls(DateRange(data["start"], data["end"]), int(data["lookback_days"]))


def shifted_day(day: str, days: int) -> str:
    """A YYYY-MM-DD date ``days`` later (earlier if negative), held within the calendar's ends."""
    moved = date.fromordinal(min(max(date.fromisoformat(day).toordinal() + days, 1), date.max.toordinal()))
    return moved.isoformat()


def parse_date_param(name: str, raw: object) -> date:
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a date of the form YYYY-MM-DD") from None


def resolve_date_range(
    start: object, end: object, names: tuple[str, str] = ("param start_date", "param end_date")
) -> DateRange:
    """The range of two dates; ``names`` are how errors call them (the DAG's params by default)."""
    start_day = parse_date_param(names[0], start)
    end_day = parse_date_param(names[1], end)
    if end_day < start_day:
        raise SettingError(f"{names[1]}={end_day} is before {names[0]}={start_day}")
    return DateRange(start_day.isoformat(), end_day.isoformat())


def _env_date(name: str, default: str) -> str:
    """A date param's default from the environment, checked where it is read: a bad one would
    otherwise surface as the param's own error, naming neither the variable nor where it is set."""
    return parse_date_param(f"env {name}", os.environ.get(name) or default).isoformat()


def default_start_date() -> str:
    return _env_date("ATTRIBUTION_START_DATE", SAMPLE_START_DATE)


def default_end_date() -> str:
    return _env_date("ATTRIBUTION_END_DATE", SAMPLE_END_DATE)


DATA_DIR_ENV = "ATTRIBUTION_DATA_DIR"
WORK_DIR_ENV = "ATTRIBUTION_WORK_DIR"
OUTPUT_DIR_ENV = "ATTRIBUTION_OUTPUT_DIR"


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(DATA_DIR_ENV) or PROJECT_ROOT / "data")


def default_warehouse_path() -> Path:
    return data_dir() / "challenge.db"


def work_base(environ: Mapping[str, str] = os.environ) -> str:
    """Root of the run folders (extract, chunk and result files): a local folder, or an object
    storage URL such as s3://bucket/prefix that every worker reaches."""
    return environ.get(WORK_DIR_ENV) or str(data_dir(environ) / "runs")


def work_conn_id() -> str | None:
    """The Airflow connection with the object store's credentials (e.g. aws_default), if any."""
    return os.environ.get("ATTRIBUTION_WORK_CONN_ID") or None


def output_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get(OUTPUT_DIR_ENV) or data_dir(environ) / "output")


def local_api_url(host: str = LOCAL_API_HOST, port: int = LOCAL_API_PORT) -> str:
    return f"http://{host}:{port}"


def _env_number(name: str, default: str) -> float:
    """A duration from the environment: a finite number, 0 or more."""
    raw = os.environ.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"env {name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SettingError(f"env {name}={raw!r} must be a finite number of 0 or more")
    return value


LOCK_TIMEOUT_ENV = "ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS"


def warehouse_lock_timeout_seconds() -> float:
    """How long a warehouse write waits for another writer's lock before it fails."""
    return _env_number(LOCK_TIMEOUT_ENV, "60")


DEADLINE_ENV = "ATTRIBUTION_RUN_DEADLINE_MINUTES"


def run_deadline_minutes() -> float:
    """Minutes after a run was queued by which it should be done, else an alert (Airflow 3).

    Off (0) unless set: Airflow 3.3's ``dag.test()`` (``airflow dags test``, the demo) fails at
    the end of a successful run of a DAG that has a deadline; schedulers handle it (make airflow
    and docker compose set 120)."""
    return _env_number(DEADLINE_ENV, "0")


def retry_delay_seconds() -> float:
    """Airflow's first retry delay of every task (doubles on each retry)."""
    return _env_number("ATTRIBUTION_RETRY_DELAY_SECONDS", "30")
