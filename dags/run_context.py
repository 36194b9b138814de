"""Where each setting of a run comes from in Airflow: params, Variables, Connections, run id.

Kept out of the DAG file so that file reads as the pipeline; kept out of ``include/`` because
it talks to Airflow.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from include import run_config, settings
from include.ihc_client import ApiTarget, IhcRejectedError, local_target, target_from_connection
from include.journeys import BadRowError
from include.run_config import RunConfig
from include.runfiles import StoragePath, run_directory
from include.settings import DateRange, SettingError
from include.warehouse import WarehouseTarget, connect_postgres, sqlite_target

from airflow_compat import (
    AirflowFailException,
    ObjectStoragePath,
    get_connection,
    get_variable,
    postgres_hook,
    run_type,
)

log = logging.getLogger(__name__)

SCHEDULED_RUN_TYPES = ("scheduled", "backfill")
# Errors that another try would meet again: a bad setting or param, unusable input rows, a
# request the API refuses. Everything else (a lock timeout, a lost connection) is retried.
FINAL_ERRORS = (SettingError, BadRowError, IhcRejectedError)

F = TypeVar("F", bound=Callable)


def no_retry_on_final_errors(step: F) -> F:
    """Fail the task without its retries when the error is one another try would meet again."""

    @functools.wraps(step)
    def run(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        except FINAL_ERRORS as exc:
            raise AirflowFailException(f"{exc} (not retried: another try would fail the same way)") from None

    return run  # type: ignore[return-value]


POSTGRES_CONN_TYPES = ("postgres", "postgresql")


def date_range(context: dict) -> DateRange:
    """A scheduled or backfill run covers its day (data interval start); a manual run its params."""
    if run_type(context) in SCHEDULED_RUN_TYPES:
        day = context["data_interval_start"].date().isoformat()
        return DateRange(day, day)
    params = context["params"]
    return settings.resolve_date_range(params["start_date"], params["end_date"])


def run_configuration(context: dict) -> RunConfig:
    """Every param, Variable and the API connection of this run, read and checked once."""
    return run_config.resolve(date_range(context), get_variable, api_target())


def run_dir(context: dict) -> StoragePath:
    """The run's folder under ATTRIBUTION_WORK_DIR, through Airflow's object storage, so any
    worker finds what another one wrote when the base is shared (s3://..., a network folder)."""
    base = settings.work_base()
    try:
        return run_directory(ObjectStoragePath(base, conn_id=settings.work_conn_id()), context["run_id"])
    except (ValueError, TypeError) as exc:
        raise SettingError(
            f"{settings.WORK_DIR_ENV}={base!r} is not usable through Airflow's object storage ({exc}); "
            "s3:// needs apache-airflow-providers-amazon, gs:// the google provider, abfs:// the azure one"
        ) from exc


def warehouse() -> WarehouseTarget:
    """Connection ``ihc_warehouse``: PostgreSQL when its type is postgres, else the SQLite file named
    by its host; without it, the sample database."""
    conn = get_connection(settings.WAREHOUSE_CONN_ID)
    if conn is not None and conn.conn_type in POSTGRES_CONN_TYPES:
        label = f"{conn.host}:{conn.port or 5432}/{conn.schema} (connection {settings.WAREHOUSE_CONN_ID})"
        hook = postgres_hook(settings.WAREHOUSE_CONN_ID)
        return WarehouseTarget(f"PostgreSQL {label}", lambda: connect_postgres(hook.get_conn, label))
    return sqlite_target(Path(conn.host) if conn is not None and conn.host else settings.default_warehouse_path())


def api_target() -> ApiTarget:
    conn = get_connection(settings.API_CONN_ID)
    if conn is None:
        target = local_target()
        log.warning("no connection %s: using the local IHC server at %s", settings.API_CONN_ID, target.base_url)
        return target
    return target_from_connection(
        settings.API_CONN_ID, conn.conn_type, conn.host, conn.schema, conn.port, conn.password, conn.extra_dejson
    )


def api_key() -> str:
    """The key alone, read where requests are sent: it never travels by XCom."""
    return api_target().api_key
