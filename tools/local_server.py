"""Local IHC server: the real API's HTTP contract over the offline engine, for tests and demos.

Same path, auth header, per-request limits, status codes and response shape as
``https://api.ihc-attribution.com``; attribution by ``tools.ihc_engine`` (an offline
re-implementation of the model, trained per conversion type from journeys: not the commercial
service). It serves each conversion type that has a parameter file in its engine folder
(``tools.engine_parameters``) and refuses the others; answers name that file in the
``X-Ihc-Engine-Parameters`` header. Switches for latency and faults let tests exercise a
client's retries over real HTTP; a running server's faults can be replaced with
``PUT /local/faults`` (a JSON list, same key; not part of the real API).

Run it with ``python -m tools.local_server`` (``--help`` lists the switches).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiohttp import web

from include.ihc_client import COMPUTE_PATH, ENGINE_PARAMETERS_HEADER, REQUEST_FIELDS
from include.settings import (
    LOCAL_API_HOST,
    LOCAL_API_KEY,
    LOCAL_API_PORT,
    MAX_JOURNEYS_PER_REQUEST,
    MAX_SESSIONS_PER_REQUEST,
)
from tools import engine_parameters
from tools.engine_parameters import ParameterFile, ParameterFileError
from tools.ihc_engine import PHASES, EngineParameters, RedistributionRule, Touchpoint, attribute_journey

log = logging.getLogger(__name__)

# The plain form, or with a UTC offset as the service accepts it: "2021-03-20 18:49:31 +0400".
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}( [+-]\d{2}:?\d{2})?")
# Transport faults answer instead of the engine; answer faults tamper with the engine's answer.
TRANSPORT_FAULTS = ("429", "500", "slow", "malformed_json", "body_500", "html", "reset")
ANSWER_FAULTS = ("partial", "drop_session", "extra_session", "ihc_out_of_range", "sum_off")
FAULT_KINDS = TRANSPORT_FAULTS + ANSWER_FAULTS
HTML_ERROR_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class Fault:
    """An injected failure hitting the next ``times`` matching requests (-1: every one).

    A fault with a ``conversion_id`` only hits requests that carry that journey.
    """

    kind: str
    times: int = 1
    conversion_id: str | None = None
    retry_after: float | None = 1.0
    delay_seconds: float = 0.0
    status: int = 502

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {FAULT_KINDS}")


@dataclass
class ServerConfig:
    api_key: str = LOCAL_API_KEY
    # The API's limits per request, which the Variables' defaults follow.
    max_journeys: int = MAX_JOURNEYS_PER_REQUEST.default
    max_sessions: int = MAX_SESSIONS_PER_REQUEST.default
    latency_seconds: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    parameters: dict[str, ParameterFile] = field(default_factory=dict)
    requests: int = 0
    faults_fired: int = 0
    engine_cpu_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def parameters_for(self, conv_type_id: str) -> ParameterFile:
        """Trained parameters only: an unknown conversion type is the client's error."""
        try:
            return self.parameters[conv_type_id]
        except KeyError:
            known = ", ".join(sorted(self.parameters)) or "none"
            raise BadRequestError(
                400,
                f"conv_type_id {conv_type_id!r} has no trained engine parameters on this server "
                f"(known conversion types: {known}); 'make engine-train CONV_TYPE={conv_type_id}' trains it, "
                "and the server reads parameter files when it starts",
            ) from None

    def set_faults(self, faults: list[Fault]) -> None:
        with self._lock:
            self.faults = faults

    def take_fault(self, conversion_ids: Iterable[str]) -> Fault | None:
        ids = set(conversion_ids)
        with self._lock:
            self.requests += 1
            for fault in self.faults:
                if fault.times != 0 and (fault.conversion_id is None or fault.conversion_id in ids):
                    if fault.times > 0:
                        fault.times -= 1
                    self.faults_fired += 1
                    return fault
        return None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status, headers=headers)


class BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _group_journeys(rows: object, config: ServerConfig) -> dict[str, list[dict]]:
    if not isinstance(rows, list) or not rows:
        raise BadRequestError(400, "customer_journeys must be a non-empty list")
    if len(rows) > config.max_sessions:
        raise BadRequestError(400, f"request holds {len(rows)} sessions, the limit is {config.max_sessions}")
    journeys: dict[str, list[dict]] = {}
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadRequestError(400, f"customer_journeys[{index}] is not an object")
        for name, kind in REQUEST_FIELDS.items():
            if not isinstance(row.get(name), kind):
                raise BadRequestError(400, f"customer_journeys[{index}].{name} is missing or not {kind.__name__}")
        journeys.setdefault(row["conversion_id"], []).append(row)
    if len(journeys) > config.max_journeys:
        raise BadRequestError(400, f"request holds {len(journeys)} journeys, the limit is {config.max_journeys}")
    return journeys


def _redistribution(body: dict) -> dict[str, RedistributionRule] | None:
    raw = body.get("redistribution_parameter")
    if not raw:
        return None
    try:
        return {
            phase: RedistributionRule(
                direction=spec["direction"],
                receive_threshold=float(spec.get("receive_threshold", 0)),
                channel_labels=frozenset(spec.get("redistribution_channel_labels", [])),
            )
            for phase, spec in raw.items()
            if phase in PHASES
        }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise BadRequestError(400, f"invalid redistribution_parameter: {exc}") from None


def _timestamp(value: str) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` (UTC) or with an offset (``+0400``), strictly: fromisoformat
    alone would take other forms. Aware, so journeys mixing both forms compare correctly."""
    match = TIMESTAMP.fullmatch(value)
    if not match:
        raise ValueError(f"timestamp {value!r} is not YYYY-MM-DD HH:MM:SS[ +HHMM]")
    if match.group(1) is None:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S %z")


def _touchpoints(conv_id: str, rows: list[dict]) -> list[Touchpoint]:
    try:
        points = [
            Touchpoint(
                session_id=r["session_id"],
                timestamp=_timestamp(r["timestamp"]),
                channel_label=r["channel_label"],
                holder_engagement=r["holder_engagement"],
                closer_engagement=r["closer_engagement"],
                conversion=r["conversion"],
            )
            for r in rows
        ]
    except ValueError as exc:
        raise BadRequestError(406, f"journey {conv_id!r} could not be parsed: {exc}") from None
    return sorted(points, key=lambda p: p.timestamp)


def latency_left(arrived: float, now: float, latency_seconds: float) -> float:
    """How long to hold an answer so it leaves ``latency_seconds`` after the request arrived:
    like a remote API's response time, the latency includes the engine's work instead of
    queueing behind it."""
    return max(0.0, arrived + latency_seconds - now)


async def _answer_time(config: ServerConfig, started: float) -> None:
    remaining = latency_left(started, asyncio.get_running_loop().time(), config.latency_seconds)
    if remaining > 0:
        await asyncio.sleep(remaining)


@dataclass(frozen=True)
class ParsedRequest:
    """A checked request: its rows grouped by journey, its redistribution, its touchpoints."""

    journeys: dict[str, list[dict]]
    redistribution: dict[str, RedistributionRule] | None
    touchpoints: dict[str, list[Touchpoint]]


def parse_request(raw: bytes, config: ServerConfig) -> ParsedRequest:
    """The request body checked against the API's contract; BadRequestError says why not."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError(400, "request body must be a JSON object")
    journeys = _group_journeys(body.get("customer_journeys"), config)
    redistribution = _redistribution(body)
    touchpoints = {conv_id: _touchpoints(conv_id, rows) for conv_id, rows in journeys.items()}
    return ParsedRequest(journeys, redistribution, touchpoints)


def score(parsed: ParsedRequest, failed: set[str], parameters: EngineParameters) -> tuple[list[dict], float]:
    """The answer's rows for the journeys not ``failed``, and the engine's CPU seconds."""
    cpu_started = time.thread_time()
    value = [
        {
            "conversion_id": conv_id,
            "session_id": s.session_id,
            "initializer": s.initializer,
            "holder": s.holder,
            "closer": s.closer,
            "ihc": s.ihc,
        }
        for conv_id, points in parsed.touchpoints.items()
        if conv_id not in failed
        for s in attribute_journey(points, parameters, parsed.redistribution)
    ]
    return value, time.thread_time() - cpu_started


async def compute_ihc(request: web.Request) -> web.Response:
    """One request, answered ``latency_seconds`` after it arrived.

    Parsing and scoring run on worker threads so the event loop takes every request as it
    arrives: its latency counts from its arrival. On the loop they made concurrent requests
    queue behind each other's ~2.5 ms of work, which a real, parallel API does not do.
    """
    started = asyncio.get_running_loop().time()
    config = request.app[CONFIG]
    key = request.headers.get("x-api-key", "")
    if not hmac.compare_digest(key.encode(), config.api_key.encode()):
        return _error(403, "Forbidden: missing or invalid x-api-key")
    conv_type_id = request.query.get("conv_type_id")
    if not conv_type_id:
        return _error(400, "query parameter conv_type_id is required")
    try:
        trained = config.parameters_for(conv_type_id)
        parsed = await asyncio.to_thread(parse_request, await request.read(), config)
    except BadRequestError as exc:
        return _error(exc.status, str(exc))

    fault = config.take_fault(parsed.journeys)
    if fault is not None:
        await _answer_time(config, started)
        log.info("injecting fault %s", fault.kind)
        if fault.kind in TRANSPORT_FAULTS:
            response = await _transport_fault(fault, request)
            if response is not None:
                return response
    failed: set[str] = set()
    if fault is not None and fault.kind == "partial":
        failed = {fault.conversion_id if fault.conversion_id in parsed.journeys else next(iter(parsed.journeys))}
    value, engine_cpu = await asyncio.to_thread(score, parsed, failed, trained.parameters)
    config.engine_cpu_seconds += engine_cpu
    if fault is not None and fault.kind in ANSWER_FAULTS:
        value = _tamper(fault.kind, value)
    status = 206 if failed else 200
    errors = [{"conversion_id": c, "error": "journey failed (injected)"} for c in sorted(failed)]
    body = orjson.dumps({"statusCode": status, "value": value, "partialFailureErrors": errors})
    await _answer_time(config, started)
    headers = {ENGINE_PARAMETERS_HEADER: trained.path or f"{conv_type_id} (in memory)"}
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


async def _transport_fault(fault: Fault, request: web.Request) -> web.StreamResponse | None:
    """The answer of a transport fault, or None to let the engine answer (after a delay)."""
    if fault.kind == "429":
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
        return _error(429, "Too Many Requests", headers)
    if fault.kind == "500":
        return _error(500, "Internal Server Error (injected)")
    if fault.kind == "malformed_json":
        return web.Response(body=b'{"statusCode": 200, "value": [{"conversion_id": ', content_type="application/json")
    if fault.kind == "body_500":
        return web.json_response({"statusCode": 500, "message": "internal error (injected)"}, status=200)
    if fault.kind == "html":
        return web.Response(body=HTML_ERROR_PAGE, status=fault.status, content_type="text/html")
    if fault.kind == "reset":
        response = web.StreamResponse(headers={"Content-Type": "application/json", "Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b'{"statusCode": 200, "value": [')
        request.transport.abort()
        return response
    await asyncio.sleep(fault.delay_seconds)
    return None


def _tamper(kind: str, value: list[dict]) -> list[dict]:
    """A wrong answer of the kind asked for, built from the right one."""
    if kind == "drop_session":
        return value[1:]
    if kind == "extra_session":
        return [*value, {**value[0], "session_id": "never-sent"}]
    if kind == "ihc_out_of_range":
        return [{**value[0], "ihc": 1.5}, *value[1:]]
    if kind == "sum_off":
        return [{**row, "ihc": row["ihc"] / 2} for row in value]
    return value


async def control_faults(request: web.Request) -> web.Response:
    """Local-only control: PUT replaces the fault list, GET reports counters (same key as the API)."""
    config = request.app[CONFIG]
    if not hmac.compare_digest(request.headers.get("x-api-key", "").encode(), config.api_key.encode()):
        return _error(403, "Forbidden: missing or invalid x-api-key")
    if request.method == "PUT":
        try:
            faults = [Fault(**spec) for spec in orjson.loads(await request.read())]
        except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
            return _error(400, f"invalid fault list: {exc}")
        config.set_faults(faults)
    return web.json_response(
        {
            "requests": config.requests,
            "faults_fired": config.faults_fired,
            "engine_cpu_seconds": config.engine_cpu_seconds,
        }
    )


CONFIG = web.AppKey("config", ServerConfig)
CONTROL_PATH = "/local/faults"


def make_app(config: ServerConfig) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[CONFIG] = config
    app.router.add_post(COMPUTE_PATH, compute_ihc)
    app.router.add_route("GET", CONTROL_PATH, control_faults)
    app.router.add_route("PUT", CONTROL_PATH, control_faults)
    return app


class ServerThread:
    """The server on a background thread of this process; ``with ServerThread(cfg) as url``."""

    def __init__(self, config: ServerConfig, host: str = LOCAL_API_HOST, port: int = 0) -> None:
        self.config = config
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="local-ihc-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _start(self) -> None:
        self._runner = web.AppRunner(make_app(self.config), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self.url

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.local_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=LOCAL_API_HOST)
    parser.add_argument("--port", type=int, default=LOCAL_API_PORT)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("IHC_LOCAL_API_KEY", LOCAL_API_KEY),
        help="key the server requires in x-api-key (env IHC_LOCAL_API_KEY)",
    )
    parser.add_argument(
        "--engine-dir",
        type=Path,
        default=engine_parameters.engine_dir(),
        help=f"folder of the parameter files, one per conversion type (env {engine_parameters.ENGINE_DIR_ENV})",
    )
    parser.add_argument("--max-journeys", type=int, default=ServerConfig.max_journeys, help="journeys per request")
    parser.add_argument("--max-sessions", type=int, default=ServerConfig.max_sessions, help="sessions per request")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="time from a request's arrival to its answer (engine work included)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='e.g. \'{"kind": "500", "times": 3, "conversion_id": "c1"}\'; kinds: ' + ", ".join(FAULT_KINDS),
    )
    return parser.parse_args(argv)


# How often a thread holding the GIL hands it over when another waits (Python's default: 5 ms).
SWITCH_INTERVAL_SECONDS = 0.001


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # The server's own process: while a worker thread scores, the event loop waits for the GIL
    # up to the switch interval before it can take a request or send an answer.
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    try:
        parameters = engine_parameters.read_folder(args.engine_dir)
    except ParameterFileError as exc:
        sys.exit(f"local IHC server not started: {exc}")
    if not parameters:
        sys.exit(
            f"local IHC server not started: no engine parameter files (*.json) in {args.engine_dir}; "
            "'make engine-train' trains the default conversion type"
        )
    config = ServerConfig(
        parameters=parameters,
        api_key=args.api_key,
        max_journeys=args.max_journeys,
        max_sessions=args.max_sessions,
        latency_seconds=args.latency_ms / 1000,
        faults=[Fault(**orjson.loads(spec)) for spec in args.fault],
    )
    print(f"local IHC server on http://{args.host}:{args.port}", flush=True)
    for conv_type_id, trained in parameters.items():
        print(f"  conversion type {conv_type_id!r}: {trained.path}", flush=True)
    try:
        web.run_app(make_app(config), host=args.host, port=args.port, print=None, access_log=None)
    except OSError as exc:
        sys.exit(f"local IHC server stopped: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
