"""aiohttp client of the IHC attribution API: the wire format, requests, retries, and checks.

The request shape of a journey is written here once: the chunk files hold it, the local server
checks requests against it. A chunk is packed into requests of whole journeys, sent
concurrently up to a limit. Transient trouble (429, 5xx, timeouts, dropped connections,
unreadable answers) is retried with exponential backoff and jitter; a rejected request (400,
401, 403, 406) fails at once. Every answer is checked before anything of it is kept.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NamedTuple
from urllib.parse import urlsplit

import aiohttp
import orjson

from include import settings as cfg
from include.errors import FinalError, TransientError
from include.journeys import Journey

log = logging.getLogger(__name__)

COMPUTE_PATH = "/v1/compute_ihc"
# Sent by the bundled local server only: the parameter file its offline engine scored with.
ENGINE_PARAMETERS_HEADER = "X-Ihc-Engine-Parameters"

ApiRow = dict[str, object]
ApiJourney = list[ApiRow]
# One session of a request: field -> JSON type.
REQUEST_FIELDS: dict[str, type] = {
    "conversion_id": str,
    "session_id": str,
    "timestamp": str,
    "channel_label": str,
    "holder_engagement": int,
    "closer_engagement": int,
    "conversion": int,
    "impression_interaction": int,
}


def journey_rows(journey: Journey) -> ApiJourney:
    """The journey in the request shape; its last session is the conversion session."""
    last = len(journey.sessions) - 1
    return [
        {
            "conversion_id": journey.conversion_id,
            "session_id": s.session_id,
            "timestamp": s.timestamp,
            "channel_label": s.channel_name,
            "holder_engagement": s.holder_engagement,
            "closer_engagement": s.closer_engagement,
            "conversion": int(i == last),
            "impression_interaction": s.impression_interaction,
        }
        for i, s in enumerate(journey.sessions)
    ]


@dataclass(frozen=True)
class RequestLimits:
    """The per-request limits whole journeys are packed under, greedily and in order."""

    max_journeys: int
    max_sessions: int

    def starts_new_request(self, journeys: int, sessions: int, next_sessions: int) -> bool:
        """Whether a journey of ``next_sessions`` opens a new request after one holding
        ``journeys`` journeys of ``sessions`` sessions."""
        return journeys > 0 and (journeys == self.max_journeys or sessions + next_sessions > self.max_sessions)


def iter_requests(journeys: Iterable[ApiJourney], limits: RequestLimits) -> Iterator[list[ApiJourney]]:
    """Greedy, order-keeping packing of whole journeys under both per-request limits, each
    request given as soon as the journey after it arrives.

    No journey is longer than the session limit: the journey step trimmed them to the same limit,
    read once for the run (include.run_config).
    """
    current: list[ApiJourney] = []
    current_sessions = 0
    for journey in journeys:
        if limits.starts_new_request(len(current), current_sessions, len(journey)):
            yield current
            current, current_sessions = [], 0
        current.append(journey)
        current_sessions += len(journey)
    if current:
        yield current


ROUNDING_SLACK = 1e-4
# A share may stray this far outside [0, 1] by float rounding.
SHARE_LOW, SHARE_HIGH = -1e-9, 1 + 1e-9
BODY_SNIPPET = 200


@dataclass(frozen=True)
class ApiTarget:
    """Where to send requests. The key never shows in repr, logs or errors."""

    base_url: str
    api_key: str = field(repr=False)
    conv_type_id: str
    redistribution_parameter: dict | None = None

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + COMPUTE_PATH

    @property
    def query(self) -> dict[str, str]:
        return {"conv_type_id": self.conv_type_id}

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", "x-api-key": self.api_key}

    def body(self, journeys: Sequence[ApiJourney]) -> bytes:
        """A request's body: the journeys' rows, one after another, and the redistribution."""
        payload: dict[str, object] = {"customer_journeys": [row for j in journeys for row in j]}
        if self.redistribution_parameter:
            payload["redistribution_parameter"] = self.redistribution_parameter
        return orjson.dumps(payload)


@dataclass(frozen=True)
class ClientSettings:
    """The client's settings; each run's come from the Variables (include.run_config)."""

    max_journeys_per_request: int = cfg.MAX_JOURNEYS_PER_REQUEST.default
    max_sessions_per_request: int = cfg.MAX_SESSIONS_PER_REQUEST.default
    concurrency: int = cfg.REQUEST_CONCURRENCY.default
    timeout_seconds: float = cfg.REQUEST_TIMEOUT_SECONDS.default
    max_attempts: int = cfg.MAX_ATTEMPTS.default
    backoff_seconds: float = cfg.BACKOFF_SECONDS.default
    max_backoff_seconds: float = 30.0
    budget_seconds: float = cfg.CHUNK_BUDGET_SECONDS.default


API_SCHEMES = ("http", "https")


def target_from_connection(conn: cfg.ConnectionFields) -> ApiTarget:
    """The API target from an Airflow connection's fields (key in the password field)."""
    if not conn.host:
        raise cfg.SettingError(f"connection {conn.conn_id} has no host (the API base URL)")
    if not conn.password:
        raise cfg.SettingError(f"connection {conn.conn_id} has no password (the API key)")
    if "://" in conn.host:
        parts = urlsplit(conn.host)
        if parts.scheme not in API_SCHEMES or not parts.hostname:
            raise cfg.SettingError(
                f"connection {conn.conn_id} has host {conn.host!r}: the API base URL must be http(s)://host[:port]"
            )
        with_port = parts._replace(netloc=f"{parts.netloc}:{conn.port}").geturl()
        base = with_port if conn.port and not parts.port else conn.host
    else:
        scheme = conn.schema if conn.schema in API_SCHEMES else "https"
        base = f"{scheme}://{conn.host}" + (f":{conn.port}" if conn.port else "")
    return ApiTarget(
        base_url=base,
        api_key=conn.password,
        conv_type_id=str(conn.extra.get("conv_type_id") or cfg.DEFAULT_CONV_TYPE_ID),
        redistribution_parameter=conn.extra.get("redistribution_parameter"),
    )


def local_target() -> ApiTarget:
    """The bundled local server with its default key: the target when no connection is set."""
    return ApiTarget(cfg.local_api_url(), cfg.LOCAL_API_KEY, cfg.DEFAULT_CONV_TYPE_ID)


class Attribution(NamedTuple):
    """One attributed session. A named tuple: as immutable as a frozen dataclass, and built in a
    third of its time, which counts at one per session of a run."""

    conversion_id: str
    session_id: str
    initializer: float
    holder: float
    closer: float
    ihc: float


# Takes each request's checked attributions as they arrive (include.attributions encodes them
# then), so little is left to do after the last answer.
AttributionSink = Callable[[list[Attribution]], None]


@dataclass(frozen=True)
class ChunkOutcome:
    requests: int
    attempts: int
    engine_parameters: str | None = None


class IhcApiError(RuntimeError):
    """The API could not attribute a request; the message says why and which journeys."""


class IhcUnavailableError(IhcApiError, TransientError):
    """A request still failed after its attempts or its time budget: the API may be back later."""


class IhcRejectedError(IhcApiError, FinalError):
    """The API refused the request itself: retrying the same request cannot help."""


class _RetryableError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def backoff_delay(attempt: int, settings: ClientSettings) -> float:
    """Exponential backoff with jitter, so concurrent retries do not arrive together."""
    ceiling = min(settings.max_backoff_seconds, settings.backoff_seconds * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def _snippet(body: bytes) -> str:
    text = body[:BODY_SNIPPET].decode("utf-8", errors="replace")
    return " ".join(text.split()) + ("…" if len(body) > BODY_SNIPPET else "")


def _failed_conversions(body: dict, sent: dict[str, ApiJourney]) -> set[str]:
    failed: set[str] = set()
    items = body.get("partialFailureErrors") or []
    if not isinstance(items, list):
        raise _RetryableError(f"partialFailureErrors is not a list: {str(items)[:BODY_SNIPPET]}")
    for item in items:
        conv_id = item.get("conversion_id") if isinstance(item, dict) else None
        if not isinstance(conv_id, str) or conv_id not in sent:
            raise _RetryableError(f"partialFailureErrors names an unknown journey: {str(item)[:BODY_SNIPPET]}")
        failed.add(conv_id)
    return failed


def validate_answer(body: object, sent: dict[str, ApiJourney]) -> tuple[list[Attribution], set[str]]:
    """Attributions of the journeys that succeeded, and the ids of those that failed (206).

    Each session of a succeeded journey must come back exactly once, nothing else may come
    back, every share lies in [0, 1], and each journey's ihc sums to 1 within rounding. It runs
    on every answer while other requests wait to be sent, so each row costs one lookup in the
    set of sessions not seen yet; the slower checks run only to word an error.
    """
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise _RetryableError("answer has no 'value' list")
    failed = _failed_conversions(body, sent)
    expected = {
        (conv_id, row["session_id"]) for conv_id, journey in sent.items() if conv_id not in failed for row in journey
    }
    unseen = set(expected)
    sums: dict[str, float] = {}
    result: list[Attribution] = []
    for item in body["value"]:
        try:
            key = (item["conversion_id"], item["session_id"])
            initializer, holder, closer, ihc = (
                float(item["initializer"]),
                float(item["holder"]),
                float(item["closer"]),
                float(item["ihc"]),
            )
            first_time = key in unseen  # hashes the ids: TypeError for a list or an object
        except (KeyError, TypeError, ValueError):
            raise _RetryableError(f"answer holds a malformed row: {str(item)[:BODY_SNIPPET]}") from None
        if not first_time:
            how = " twice" if key in expected else ", which was not sent"
            raise _RetryableError(f"answer holds session {key[1]!r} of conversion {key[0]!r}{how}")
        # Chained comparisons are False for NaN and inf too.
        if not (
            SHARE_LOW <= initializer <= SHARE_HIGH
            and SHARE_LOW <= holder <= SHARE_HIGH
            and SHARE_LOW <= closer <= SHARE_HIGH
            and SHARE_LOW <= ihc <= SHARE_HIGH
        ):
            raise _RetryableError(
                f"answer gives session {key[1]!r} of conversion {key[0]!r} shares "
                f"{[initializer, holder, closer, ihc]} outside [0, 1]"
            )
        unseen.remove(key)
        sums[key[0]] = sums.get(key[0], 0.0) + ihc
        result.append(Attribution(key[0], key[1], initializer, holder, closer, ihc))
    if unseen:
        first = sorted(unseen)[:3]
        raise _RetryableError(f"answer lacks {len(unseen)} sent sessions, e.g. {first}")
    for conv_id, total in sums.items():
        if abs(total - 1) > min(cfg.SUM_TOLERANCE, ROUNDING_SLACK * len(sent[conv_id])):
            raise _RetryableError(f"ihc of conversion {conv_id!r} sums to {total:.6f}, not 1")
    return result, failed


class RawAnswer(NamedTuple):
    """An HTTP answer as it came: status, body, Retry-After header."""

    status: int
    body: bytes
    retry_after: str | None


async def _yield_to_senders() -> None:
    """Two turns of the event loop, so that a request waiting for the slot an answer freed goes
    out before that answer is decoded and checked, instead of after every answer that arrived
    with it: one turn for the request to start, one for the task in which aiohttp writes its
    body (started lazily before Python 3.12)."""
    for _ in range(2):
        await asyncio.sleep(0)


class IhcClient:
    """One chunk's worth of requests over one aiohttp session."""

    def __init__(self, target: ApiTarget, settings: ClientSettings, sink: AttributionSink) -> None:
        self.target = target
        self.settings = settings
        self.sink = sink
        self.attempts = 0
        self.deadline = 0.0
        self.engine_parameters: str | None = None

    @staticmethod
    def _classify(answer: RawAnswer) -> dict:
        status, body, retry_after = answer
        if status == 429:
            raise _RetryableError("HTTP 429 Too Many Requests", parse_retry_after(retry_after))
        if status >= 500 or status == 408:
            raise _RetryableError(f"HTTP {status}: {_snippet(body)}", parse_retry_after(retry_after))
        if 300 <= status < 400:
            raise IhcRejectedError(f"the API answered with a redirect (HTTP {status}); set the final URL as host")
        if status in (401, 403):
            raise IhcRejectedError(
                f"the API refused the key (HTTP {status}): check the password of the ihc_api connection"
            )
        if status not in (200, 206):
            raise IhcRejectedError(f"the API rejected the request (HTTP {status}): {_snippet(body)}")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _RetryableError(f"HTTP {status} with a body that is not JSON: {_snippet(body)}") from None
        code = payload.get("statusCode", status) if isinstance(payload, dict) else status
        if code in (200, 206):
            return payload
        if code == 429 or (isinstance(code, int) and code >= 500):
            raise _RetryableError(f"HTTP {status} but statusCode {code} in the body: {_snippet(body)}")
        raise IhcRejectedError(f"the API rejected the request (statusCode {code}): {_snippet(body)}")

    async def _send(self, session: aiohttp.ClientSession, journeys: Sequence[ApiJourney]) -> RawAnswer:
        """One HTTP exchange; the answer is decoded by the caller, once the slot is free."""
        self.attempts += 1
        try:
            async with session.post(
                self.target.url,
                params=self.target.query,
                data=self.target.body(journeys),
                headers=self.target.headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                self.engine_parameters = response.headers.get(ENGINE_PARAMETERS_HEADER, self.engine_parameters)
                return RawAnswer(response.status, body, response.headers.get("Retry-After"))
        except TimeoutError:
            raise _RetryableError(f"no answer within {self.settings.timeout_seconds} s") from None
        except aiohttp.ClientError as exc:
            raise _RetryableError(f"connection problem: {type(exc).__name__}: {exc}") from None

    async def _attribute_request(
        self, session: aiohttp.ClientSession, semaphore: asyncio.Semaphore, journeys: list[ApiJourney]
    ) -> None:
        pending = {j[0]["conversion_id"]: j for j in journeys}
        where = f"request of {len(journeys)} journeys starting with conversion {journeys[0][0]['conversion_id']!r}"
        attempt = 0
        while True:
            attempt += 1
            try:
                async with semaphore:
                    answer = await self._send(session, list(pending.values()))
                await _yield_to_senders()
                attributions, failed = validate_answer(self._classify(answer), pending)
            except _RetryableError as exc:
                if attempt == self.settings.max_attempts:
                    raise IhcUnavailableError(f"{where} failed after {attempt} attempts: {exc}") from None
                delay = exc.retry_after if exc.retry_after is not None else backoff_delay(attempt, self.settings)
                left = self.deadline - asyncio.get_running_loop().time()
                if delay > left:
                    raise IhcUnavailableError(
                        f"{where}: the API asks to wait {delay:.0f} s ({exc}), more than the {max(left, 0):.0f} s "
                        f"left of this try's {self.settings.budget_seconds:.0f} s budget; giving up this try"
                    ) from None
                log.warning("%s, attempt %d: %s; retrying in %.2f s", where, attempt, exc, delay)
                await asyncio.sleep(delay)
                continue
            self.sink(attributions)
            if not failed:
                return
            pending = {conv_id: pending[conv_id] for conv_id in failed}
            failed_after = (
                f"{where}: {len(pending)} journeys still failed after {attempt} attempts: {sorted(pending)[:5]}"
            )
            if attempt == self.settings.max_attempts:
                raise IhcUnavailableError(failed_after)
            delay = backoff_delay(attempt, self.settings)
            left = self.deadline - asyncio.get_running_loop().time()
            if delay > left:
                raise IhcUnavailableError(
                    f"{failed_after}; the next backoff of {delay:.2f} s would overrun the {max(left, 0):.2f} s "
                    f"left of this try's {self.settings.budget_seconds:.0f} s budget; giving up this try"
                )
            log.warning("%s: %d journeys failed (206), retrying them: %s", where, len(failed), sorted(failed)[:5])
            await asyncio.sleep(delay)

    async def attribute(self, journeys: Iterable[ApiJourney]) -> ChunkOutcome:
        """Attribute the journeys; each request goes out as soon as it is packed and a slot is
        free, so a chunk decoded lazily (include.chunks.read_chunk) is sent while it decodes."""
        self.deadline = asyncio.get_running_loop().time() + self.settings.budget_seconds
        limits = RequestLimits(self.settings.max_journeys_per_request, self.settings.max_sessions_per_request)
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_seconds)
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            tasks: list[asyncio.Task[None]] = []
            failed: list[asyncio.Task[None]] = []
            try:
                for request in iter_requests(journeys, limits):
                    task = asyncio.ensure_future(self._attribute_request(session, semaphore, request))
                    task.add_done_callback(functools.partial(_keep_failed, failed))
                    tasks.append(task)
                    await asyncio.sleep(0)  # the request starts now if a slot is free
                    if failed:  # a request failed for good: the rest are not packed and sent
                        await failed[0]
                for done, task in enumerate(asyncio.as_completed(tasks), start=1):
                    await task
                    if done % max(1, len(tasks) // 10) == 0 or done == len(tasks):
                        log.info("%d/%d requests attributed", done, len(tasks))
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        return ChunkOutcome(len(tasks), self.attempts, self.engine_parameters)


def _keep_failed(failed: list[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        failed.append(task)


def attribute_journeys(
    journeys: Iterable[ApiJourney], target: ApiTarget, settings: ClientSettings, sink: AttributionSink
) -> ChunkOutcome:
    """Attribute the journeys, handing each request's checked attributions to ``sink``. A request
    that fails for good raises, after ``sink`` may have taken the rows of others."""
    return asyncio.run(IhcClient(target, settings, sink).attribute(journeys))
