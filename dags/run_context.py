"""The one adapter between Airflow and the pipeline's steps.

Each task of the DAG is a step of ``include.pipeline`` written as ``step(run, *inputs) -> result``
with typed inputs and result. The adapter builds the step's :class:`RunContext` (configuration,
run folder, warehouse) from Airflow, turns the XCom values into the annotated types and the
result back, and classes errors by type: a :class:`FinalError` fails the task at once, anything
else is left to the task's retries. The first task builds the context through the checked start
(``include.preflight``) instead, and hands the configuration on by XCom.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include import settings
from include.errors import FinalError
from include.ihc_client import ApiTarget, local_target, target_from_connection
from include.preflight import StartSources, checked_start
from include.run_config import RunConfig, RunContext
from include.runfiles import StoragePath, run_directory
from include.settings import ConnectionFields, DateRange, SettingError
from include.warehouse import WarehouseTarget, sample_target
from include.warehouse import target_from_connection as warehouse_from_connection

from airflow_compat import (
    AirflowFailException,
    ObjectStoragePath,
    get_connection,
    get_current_context,
    get_variable,
    mapped_outputs,
    postgres_hook,
    run_type,
    task,
)

log = logging.getLogger(__name__)

SCHEDULED_RUN_TYPES = ("scheduled", "backfill")
CONFIG_ARG = "config"


def date_range(context: dict) -> DateRange:
    """A scheduled or backfill run covers its day (data interval start); a manual run its params."""
    if run_type(context) in SCHEDULED_RUN_TYPES:
        day = context["data_interval_start"].date().isoformat()
        return DateRange(day, day)
    params = context["params"]
    return settings.resolve_date_range(params["start_date"], params["end_date"])


def connection_fields(conn_id: str) -> ConnectionFields | None:
    """The connection's fields, None when it is not set anywhere; a SettingError when it is set in
    the environment but Airflow cannot read it (it would otherwise count as not set)."""
    env = f"AIRFLOW_CONN_{conn_id.upper()}"
    try:
        conn = get_connection(conn_id)
    except Exception as exc:  # a malformed URI raises whatever its parser meets (port, quoting)
        raise SettingError(f"connection {conn_id} cannot be read ({type(exc).__name__}: {exc})") from exc
    if conn is None:
        if os.environ.get(env):
            raise SettingError(f"env {env} is set but is neither a connection URI nor connection JSON")
        return None
    if not conn.conn_type and not conn.host:
        raise SettingError(f"connection {conn_id} has neither a type nor a host: is it a URI such as postgresql://...?")
    return ConnectionFields(
        conn_id, conn.conn_type, conn.host, conn.schema, conn.port, conn.login, conn.password, conn.extra_dejson
    )


def warehouse_target() -> WarehouseTarget:
    """Connection ``ihc_warehouse`` when it is set, whatever it says; the sample database only
    when it is not set at all."""
    conn = connection_fields(settings.WAREHOUSE_CONN_ID)
    if conn is None:
        return sample_target(settings.default_warehouse_path())
    return warehouse_from_connection(conn, lambda: postgres_hook(settings.WAREHOUSE_CONN_ID).get_conn())


def api_target() -> ApiTarget:
    conn = connection_fields(settings.API_CONN_ID)
    if conn is None:
        target = local_target()
        log.warning("no connection %s: using the local IHC server at %s", settings.API_CONN_ID, target.base_url)
        return target
    return target_from_connection(conn)


def api_key() -> str:
    """The key alone, read where requests are sent: it never travels by XCom."""
    return api_target().api_key


def run_dir(context: dict) -> StoragePath:
    """The run's folder under ATTRIBUTION_WORK_DIR, through Airflow's object storage, so any
    worker finds what another one wrote when the base is shared (s3://..., a network folder)."""
    base = settings.work_base()
    try:
        root = ObjectStoragePath(base, conn_id=settings.work_conn_id())
    except (ValueError, TypeError) as exc:
        raise SettingError(
            f"env {settings.WORK_DIR_ENV}={base!r} is not usable through Airflow's object storage ({exc}); "
            "s3:// needs apache-airflow-providers-amazon, gs:// the google provider, abfs:// the azure one"
        ) from exc
    return run_directory(root, context["run_id"])


def output_dir() -> Path:
    return settings.output_dir()


def start_sources(context: dict) -> StartSources:
    return StartSources(
        conf=dict(context["dag_run"].conf or {}),
        param_names=tuple(context["dag"].params),
        dates=lambda: date_range(context),
        variable=get_variable,
        warehouse=warehouse_target,
        api=api_target,
        run_dir=lambda: run_dir(context),
        output_dir=output_dir,
        api_key=api_key,
        export_journeys=bool(context["params"].get(settings.EXPORT_JOURNEYS_PARAM, False)),
        reprocess=bool(context["params"].get(settings.REPROCESS_PARAM, False)),
    )


def step_context(context: dict, config: dict) -> RunContext:
    return RunContext(RunConfig.from_xcom(config), run_dir(context), warehouse_target(), output_dir(), api_key)


def to_xcom(value: Any) -> Any:
    if hasattr(value, "to_xcom"):
        return value.to_xcom()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, list):
        return [to_xcom(item) for item in value]
    return value


def published(result: Any) -> Any:
    """The result's XCom value; what it publishes under keys of its own is pushed here."""
    for key, value in getattr(result, "extra_xcom", dict)().items():
        get_current_context()["ti"].xcom_push(key=key, value=value)
    return to_xcom(result)


def from_xcom(hint: Any, raw: Any) -> Any:
    """An XCom value as the annotated type: a list of results of a mapped task, a dataclass."""
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return [from_xcom(item, value) for value in mapped_outputs(raw)]
    if hasattr(hint, "from_xcom"):
        return hint.from_xcom(raw)
    if dataclasses.is_dataclass(hint):
        return hint(**raw)
    return raw


def classed(step: Callable[..., Any]) -> Callable[..., Any]:
    """Fail the task without its retries on a final error; leave every other one to them."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return step(*args, **kwargs)
        except FinalError as exc:
            raise AirflowFailException(
                f"{exc} ({type(exc).__name__}: final, not retried: another try would fail the same way)"
            ) from exc
        except Exception as exc:
            log.warning("%s: %s; the task's retries decide what follows", type(exc).__name__, exc)
            raise

    return run


def _as_task(step: Callable[..., Any], inputs: list[inspect.Parameter], call: Callable[..., Any]) -> Callable:
    """A task callable with the step's name, docs and input names, its annotations left out
    (Airflow would read them as the XCom's types)."""
    call.__name__ = step.__name__
    call.__qualname__ = step.__qualname__
    call.__doc__ = step.__doc__
    call.__module__ = step.__module__
    call.__signature__ = inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in inputs])  # type: ignore[attr-defined]
    return call


def pipeline_task(**task_args: Any) -> Callable[[Callable[..., Any]], Any]:
    """``@pipeline_task(...)`` over ``def name(run: RunContext, *inputs) -> result``: an Airflow
    task taking the run configuration (``config``) and the inputs as XCom values."""

    def decorate(step: Callable[..., Any]) -> Any:
        hints = typing.get_type_hints(step)
        _, *inputs = inspect.signature(step).parameters.values()

        config = inspect.Parameter(CONFIG_ARG, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        signature = inspect.Signature([config, *inputs])

        def call(*args: Any, **kwargs: Any) -> Any:
            values = signature.bind(*args, **kwargs).arguments
            run = step_context(get_current_context(), values.pop(CONFIG_ARG))
            typed = {name: from_xcom(hints.get(name), value) for name, value in values.items()}
            return published(step(run, **typed))

        return task(**task_args)(_as_task(step, [config, *inputs], classed(call)))

    return decorate


def start_task(**task_args: Any) -> Callable[[Callable[[RunContext], Any]], Any]:
    """``@start_task()`` over ``def name(run: RunContext) -> RunConfig``: the first task, whose
    context comes from the checked start and whose result is the configuration the others get."""

    def decorate(step: Callable[[RunContext], Any]) -> Any:
        def call() -> Any:
            return published(step(checked_start(start_sources(get_current_context()))))

        return task(**task_args)(_as_task(step, [], classed(call)))

    return decorate
