"""One run's configuration: every Variable, param and connection field it uses, read and checked
once by the first task, then handed to the others by XCom.

A bad Variable fails the first task naming it, before anything is extracted; a Variable changed
while a run is going does not reach that run; the per-request limits the journeys are trimmed to
are the ones the client packs requests by. The API key is the one thing left out of the XCom
form: the task that sends requests reads it from the connection again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from include import settings
from include.ihc_client import ApiTarget, ClientSettings
from include.runfiles import StoragePath
from include.settings import ConfigurationError, DateRange, RunWindow, SettingError
from include.warehouse import WarehouseTarget


@dataclass(frozen=True)
class RunConfig:
    window: RunWindow
    chunk_size: int
    max_bad_row_share: float
    retention_days: int
    api_wait_seconds: float
    decay_half_life_days: float
    client: ClientSettings
    api: ApiTarget
    # Param export_training_journeys: the range's journeys also as the IHC web app's training file.
    export_journeys: bool = False
    # Param reprocess: the stored conversions near the range are attributed again, changed or not.
    reprocess: bool = False

    def to_xcom(self) -> dict[str, object]:
        return {
            "window": self.window.to_xcom(),
            "chunk_size": self.chunk_size,
            "max_bad_row_share": self.max_bad_row_share,
            "retention_days": self.retention_days,
            "api_wait_seconds": self.api_wait_seconds,
            "decay_half_life_days": self.decay_half_life_days,
            "client": asdict(self.client),
            "api": {
                "base_url": self.api.base_url,
                "conv_type_id": self.api.conv_type_id,
                "redistribution_parameter": self.api.redistribution_parameter,
            },
            "export_journeys": self.export_journeys,
            "reprocess": self.reprocess,
        }

    @classmethod
    def from_xcom(cls, data: dict, api_key: str = "") -> RunConfig:
        return cls(
            window=RunWindow.from_xcom(data["window"]),
            chunk_size=int(data["chunk_size"]),
            max_bad_row_share=float(data["max_bad_row_share"]),
            retention_days=int(data["retention_days"]),
            api_wait_seconds=float(data["api_wait_seconds"]),
            decay_half_life_days=float(data["decay_half_life_days"]),
            client=ClientSettings(**data["client"]),
            api=ApiTarget(api_key=api_key, **data["api"]),
            export_journeys=bool(data.get("export_journeys", False)),
            reprocess=bool(data.get("reprocess", False)),
        )

    def with_api_key(self, api_key: str) -> RunConfig:
        return replace(self, api=replace(self.api, api_key=api_key))


def parse_variables(variable: Callable[[str], object]) -> dict[str, float]:
    """Every Variable's value by name, from a lookup (name -> raw value or None); every bad one
    is named in one error."""
    values, problems = {}, []
    for var in settings.VARIABLES:
        try:
            values[var.name] = var.parse(variable(var.name))
        except SettingError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigurationError(problems)
    return values


def resolve(dates: DateRange, variable: Callable[[str], object], api: ApiTarget) -> RunConfig:
    """The run's configuration from its dates, a Variable lookup and the API target."""
    return configuration(dates, parse_variables(variable), api)


def configuration(
    dates: DateRange, values: dict[str, float], api: ApiTarget, export_journeys: bool = False, reprocess: bool = False
) -> RunConfig:
    """The run's configuration from Variables already parsed (parse_variables)."""

    def value(var: settings.NumberVariable) -> float:
        return values[var.name]

    return RunConfig(
        window=RunWindow(dates, int(value(settings.LOOKBACK_DAYS))),
        chunk_size=int(value(settings.CHUNK_SIZE)),
        max_bad_row_share=value(settings.MAX_BAD_ROW_SHARE),
        retention_days=int(value(settings.RUN_RETENTION_DAYS)),
        api_wait_seconds=value(settings.API_WAIT_SECONDS),
        decay_half_life_days=value(settings.DECAY_HALF_LIFE_DAYS),
        client=ClientSettings(
            max_journeys_per_request=int(value(settings.MAX_JOURNEYS_PER_REQUEST)),
            max_sessions_per_request=int(value(settings.MAX_SESSIONS_PER_REQUEST)),
            concurrency=int(value(settings.REQUEST_CONCURRENCY)),
            timeout_seconds=value(settings.REQUEST_TIMEOUT_SECONDS),
            max_attempts=int(value(settings.MAX_ATTEMPTS)),
            backoff_seconds=value(settings.BACKOFF_SECONDS),
            budget_seconds=value(settings.CHUNK_BUDGET_SECONDS),
        ),
        api=api,
        export_journeys=export_journeys,
        reprocess=reprocess,
    )


def _no_key() -> str:
    return ""


@dataclass(frozen=True)
class RunContext:
    """What every step of one run works with: its configuration, its folder, the warehouse and
    the output folder. The Airflow side builds it once per task; the steps never ask Airflow."""

    config: RunConfig
    run_dir: StoragePath
    warehouse: WarehouseTarget
    output_dir: Path
    # Read where requests are sent, never before: the key does not travel by XCom.
    api_key: Callable[[], str] = field(default=_no_key, repr=False, compare=False)

    @property
    def window(self) -> RunWindow:
        return self.config.window

    def api(self) -> ApiTarget:
        return self.config.with_api_key(self.api_key()).api
