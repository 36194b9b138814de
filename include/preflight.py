"""The checked start of a run: everything the run depends on is checked before anything is read
or written, and every problem found is reported in one error, each naming its setting, its value
(never a secret) and what is allowed.

Only an API that does not answer is not a configuration problem: a real API can be down for a
while, so the start waits for it within ``ihc_api_wait_seconds`` and then leaves it to the task's
retries.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from include import run_config, settings
from include.ihc_client import ApiTarget, IhcUnavailableError
from include.run_config import RunConfig, RunContext
from include.runfiles import StoragePath
from include.schema import check_input_tables
from include.settings import ConfigurationError, DateRange, SettingError, problems_of
from include.warehouse import WarehouseBusyError, WarehouseError, WarehouseTarget, WarehouseUnreachableError

log = logging.getLogger(__name__)

T = TypeVar("T")
WRITE_PROBE = ".write-check"
API_CONNECT_TIMEOUT_SECONDS = 5.0
API_MAX_PAUSE_SECONDS = 10.0


@dataclass(frozen=True)
class StartSources:
    """Where each part of a run's configuration comes from; the Airflow side supplies the readers,
    each raising SettingError when its setting is unusable."""

    conf: Mapping[str, object]
    param_names: tuple[str, ...]
    dates: Callable[[], DateRange]
    variable: Callable[[str], object]
    warehouse: Callable[[], WarehouseTarget]
    api: Callable[[], ApiTarget]
    run_dir: Callable[[], StoragePath]
    output_dir: Callable[[], Path]
    api_key: Callable[[], str]
    export_journeys: bool = False
    reprocess: bool = False


def check_conf_keys(conf: Mapping[str, object], param_names: tuple[str, ...]) -> None:
    """A key the DAG has no param for would be ignored, and the run would attribute another range."""
    unknown = sorted(set(conf) - set(param_names))
    if unknown:
        raise SettingError(
            f"trigger conf has unknown keys {', '.join(map(repr, unknown))}: the params are {', '.join(param_names)}"
        )


def check_warehouse(target: WarehouseTarget) -> None:
    """Connect and find the input tables, reading only. A lock held by another writer is no
    setting's fault: it propagates, for the task's retries to wait out."""
    try:
        with target.reader() as db:
            check_input_tables(db)
    except WarehouseBusyError as exc:
        if not isinstance(exc, WarehouseUnreachableError):
            raise
        raise SettingError(f"{settings.WAREHOUSE_CONN_ID}: {exc}") from exc
    except WarehouseError as exc:
        hint = " (make demo generates it)" if target.sample else ""
        raise SettingError(f"{settings.WAREHOUSE_CONN_ID}: {exc}{hint}") from exc


def writable_folder(folder: Callable[[], StoragePath], setting: str, value: str) -> StoragePath:
    """The folder, created if missing, once a file could be written in it and removed again."""
    try:
        path = folder()
        path.mkdir(parents=True, exist_ok=True)
        probe = path / WRITE_PROBE
        with probe.open("wb") as handle:
            handle.write(b"")
        probe.unlink()
    except SettingError:
        raise
    except Exception as exc:  # any storage's failure: a file in the way, no permission, no bucket
        raise SettingError(
            f"{setting}={value!r} is not a writable folder or object-storage URL ({type(exc).__name__}: {exc})"
        ) from exc
    return path


def api_address(target: ApiTarget) -> tuple[str, int]:
    parts = urlsplit(target.base_url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def wait_for_api(
    target: ApiTarget,
    budget_seconds: float,
    connect: Callable[[tuple[str, int], float], object] = socket.create_connection,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> int:
    """Connect to the API's host until it answers or the budget is spent; the attempts it took.

    Only a TCP connection: nothing is sent, so the key is not either."""
    host, port = api_address(target)
    deadline = clock() + budget_seconds
    attempt = 0
    while True:
        attempt += 1
        left = deadline - clock()
        try:
            connect((host, port), max(0.1, min(API_CONNECT_TIMEOUT_SECONDS, left))).close()  # type: ignore[attr-defined]
            return attempt
        except OSError as exc:
            cause = f"{type(exc).__name__}: {exc}"
        left = deadline - clock()
        if left <= 0:
            raise IhcUnavailableError(
                f"the IHC API at {host}:{port} (connection {settings.API_CONN_ID}) did not answer in {attempt} "
                f"attempts within {settings.API_WAIT_SECONDS.name}={budget_seconds:g} s; last cause {cause}"
            )
        delay = min(2.0 ** (attempt - 1), API_MAX_PAUSE_SECONDS, left)
        log.warning(
            "IHC API %s:%d not reachable, attempt %d: %s; next attempt in %.1f s", host, port, attempt, cause, delay
        )
        pause(delay)


class _Problems:
    """Runs independent checks, keeping every SettingError to raise them as one."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def check(self, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except SettingError as exc:
            self.found.extend(problems_of(exc))
            return None


def checked_start(sources: StartSources) -> RunContext:
    """The run's context once every check passed; ConfigurationError listing all that did not."""
    problems = _Problems()
    problems.check(lambda: check_conf_keys(sources.conf, sources.param_names))
    dates = problems.check(sources.dates)
    values = problems.check(lambda: run_config.parse_variables(sources.variable))
    api = problems.check(sources.api)
    warehouse = problems.check(sources.warehouse)
    busy: list[WarehouseBusyError] = []
    if warehouse is not None:
        try:
            problems.check(lambda: check_warehouse(warehouse))
        except WarehouseBusyError as exc:
            busy.append(exc)
    run_dir = problems.check(
        lambda: writable_folder(sources.run_dir, f"env {settings.WORK_DIR_ENV}", settings.work_base())
    )
    output_dir = problems.check(
        lambda: writable_folder(sources.output_dir, f"env {settings.OUTPUT_DIR_ENV}", str(settings.output_dir()))
    )
    config: RunConfig | None = None
    if dates is not None and api is not None and values is not None and not problems.found:
        config = problems.check(
            lambda: run_config.configuration(dates, values, api, sources.export_journeys, sources.reprocess)
        )
    if problems.found or config is None or warehouse is None or run_dir is None or output_dir is None:
        raise ConfigurationError(problems.found)
    if busy:
        raise busy[0]
    attempts = wait_for_api(config.api, config.api_wait_seconds)
    log.info("IHC API %s:%d answers (attempt %d)", *api_address(config.api), attempts)
    if warehouse.sample:
        log.warning("reading the %s: its numbers are the sample's, not a warehouse's", warehouse.label)
    return RunContext(config, run_dir, warehouse, output_dir, sources.api_key)
