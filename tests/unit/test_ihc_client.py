"""The IHC client against the real local server (retries, limits, rejections) and its pure helpers."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from include import ihc_client
from include.ihc_client import (
    ApiTarget,
    ClientSettings,
    IhcApiError,
    IhcClient,
    IhcRejectedError,
    _RetryableError,
    backoff_delay,
    journey_rows,
    parse_retry_after,
    target_from_connection,
    validate_answer,
)
from include.journeys import Journey
from include.records import Session
from include.settings import LOCAL_API_KEY, ConnectionFields, SettingError
from tests.api_rows import attribute_collecting, journey, pack_requests
from tools.local_server import Fault, ServerConfig

FAST = ClientSettings(backoff_seconds=0.01, max_backoff_seconds=0.05, max_attempts=3, timeout_seconds=5)


def journeys_of(*sizes: int) -> list[list[dict]]:
    return [journey(f"c{i + 1}", n) for i, n in enumerate(sizes)]


def fields(conn_id: str, conn_type: str, host, schema, port, password, extra: dict) -> ConnectionFields:
    return ConnectionFields(conn_id, conn_type, host, schema, port, None, password, extra)


def target(base_url: str, key: str = LOCAL_API_KEY) -> ApiTarget:
    return ApiTarget(base_url=base_url, api_key=key, conv_type_id="default")


def sent_keys(journeys: list[list[dict]]) -> list[tuple[str, str]]:
    return sorted((row["conversion_id"], row["session_id"]) for j in journeys for row in j)


def assert_complete(attributions: list, journeys: list[list[dict]]) -> None:
    """Every sent session came back exactly once and each conversion's ihc sums to 1."""
    assert sorted((a.conversion_id, a.session_id) for a in attributions) == sent_keys(journeys)
    sums: dict[str, float] = {}
    for a in attributions:
        sums[a.conversion_id] = sums.get(a.conversion_id, 0.0) + a.ihc
    assert all(total == pytest.approx(1, abs=1e-6) for total in sums.values()), sums


# --- against the local server --------------------------------------------------------------


def test_plain_success(local_server: str, server_config: ServerConfig) -> None:
    journeys = journeys_of(1, 3, 2, 5)
    outcome = attribute_collecting(journeys, target(local_server), FAST)
    assert_complete(outcome.attributions, journeys)
    assert outcome.requests == 1
    assert outcome.attempts == 1
    assert server_config.requests == 1
    single = next(a for a in outcome.attributions if a.conversion_id == "c1")
    assert (single.initializer, single.holder, single.closer, single.ihc) == (1, 0, 1, 1)


def test_requests_follow_pack_requests(local_server: str, server_config: ServerConfig) -> None:
    # the server enforces the same limits: a request over them would come back 400
    server_config.max_journeys = 3
    server_config.max_sessions = 6
    settings = ClientSettings(
        max_journeys_per_request=3, max_sessions_per_request=6, concurrency=2, backoff_seconds=0.01
    )
    journeys = journeys_of(1, 2, 4, 1, 1, 1, 6, 3, 2, 2, 1)
    expected = pack_requests(journeys, 3, 6)
    assert len(expected) > 3
    outcome = attribute_collecting(journeys, target(local_server), settings)
    assert outcome.requests == len(expected)
    assert server_config.requests == len(expected)
    assert outcome.attempts == len(expected)
    assert_complete(outcome.attributions, journeys)


def test_500_then_success_is_retried(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("500", times=1))
    journeys = journeys_of(2, 3)
    outcome = attribute_collecting(journeys, target(local_server), FAST)
    assert_complete(outcome.attributions, journeys)
    assert server_config.requests == 2
    assert server_config.faults_fired == 1
    assert outcome.attempts == 2


def test_429_retry_after_is_honoured(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("429", retry_after=0.3))
    journeys = journeys_of(2)
    started = time.monotonic()
    outcome = attribute_collecting(journeys, target(local_server), FAST)
    assert time.monotonic() - started >= 0.3
    assert_complete(outcome.attributions, journeys)
    assert server_config.requests == 2


def test_retry_after_above_the_allowed_wait_gives_up(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("429", retry_after=50))
    settings = ClientSettings(backoff_seconds=0.01, budget_seconds=5)
    with pytest.raises(IhcApiError, match="asks to wait 50 s"):
        attribute_collecting(journeys_of(1), target(local_server), settings)
    assert server_config.requests == 1, "it gave up at once instead of waiting and asking again"


def test_slow_answer_times_out_and_is_retried(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("slow", delay_seconds=1.0))
    settings = ClientSettings(timeout_seconds=0.2, backoff_seconds=0.01, max_attempts=3)
    journeys = journeys_of(3, 1)
    outcome = attribute_collecting(journeys, target(local_server), settings)
    assert_complete(outcome.attributions, journeys)
    # two attempts: the first timed out (a waited-for slow answer would have been complete)
    assert server_config.requests == 2
    assert outcome.attempts == 2


def test_partial_answer_retries_the_failed_journey_only(local_server: str, server_config: ServerConfig) -> None:
    # the second fault fails every request that carries c1 again: only c2 may be resent
    server_config.faults.extend([Fault("partial", conversion_id="c2"), Fault("500", times=-1, conversion_id="c1")])
    journeys = journeys_of(2, 3, 1)
    outcome = attribute_collecting(journeys, target(local_server), FAST)
    assert_complete(outcome.attributions, journeys)
    assert server_config.requests == 2
    assert server_config.faults_fired == 1


def test_persistent_partial_failure_names_the_conversion(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("partial", times=-1, conversion_id="c2"))
    with pytest.raises(IhcApiError, match=r"1 journeys still failed after 3 attempts: \['c2'\]$") as caught:
        attribute_collecting(journeys_of(2, 3, 1), target(local_server), FAST)
    assert not isinstance(caught.value, IhcRejectedError)
    assert server_config.requests == FAST.max_attempts


def test_persistent_500_fails_after_max_attempts(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("500", times=-1))
    settings = ClientSettings(backoff_seconds=0.01, max_attempts=4)
    with pytest.raises(IhcApiError, match="after 4 attempts") as caught:
        attribute_collecting(journeys_of(2), target(local_server), settings)
    assert not isinstance(caught.value, IhcRejectedError)
    assert "500" in str(caught.value)
    assert server_config.requests == 4


def test_a_freed_slot_sends_the_next_request_before_the_answer_is_checked(
    local_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    send, validate = IhcClient._send, ihc_client.validate_answer

    async def recording_send(self, session, journeys):
        events.append(f"send {journeys[0][0]['conversion_id']}")
        return await send(self, session, journeys)

    def recording_validate(body, sent):
        events.append(f"check {next(iter(sent))}")
        return validate(body, sent)

    monkeypatch.setattr(IhcClient, "_send", recording_send)
    monkeypatch.setattr(ihc_client, "validate_answer", recording_validate)
    settings = ClientSettings(max_journeys_per_request=1, concurrency=1)
    outcome = attribute_collecting(journeys_of(1, 2, 1), target(local_server), settings)

    assert outcome.requests == 3
    assert events == ["send c1", "send c2", "check c1", "send c3", "check c2", "check c3"]


def test_the_first_request_goes_out_before_the_later_journeys_are_taken(
    local_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    send = IhcClient._send

    async def recording_send(self, session, journeys):
        events.append(f"send {journeys[0][0]['conversion_id']}")
        return await send(self, session, journeys)

    def lazily(journeys: list[list[dict]]):
        for j in journeys:
            events.append(f"take {j[0]['conversion_id']}")
            yield j

    monkeypatch.setattr(IhcClient, "_send", recording_send)
    journeys = journeys_of(1, 2, 1, 3)
    settings = ClientSettings(max_journeys_per_request=1, concurrency=2)
    outcome = attribute_collecting(lazily(journeys), target(local_server), settings)

    assert_complete(outcome.attributions, journeys)
    assert outcome.requests == 4
    # c2 closes the first request; it goes out before c3 is even read
    assert events[:4] == ["take c1", "take c2", "send c1", "take c3"]


def test_each_answer_is_handed_over_when_checked_and_a_retried_journey_once(
    local_server: str, server_config: ServerConfig
) -> None:
    server_config.faults.append(Fault("partial", times=1, conversion_id="c2"))
    batches: list[list[str]] = []
    settings = ClientSettings(max_journeys_per_request=2, concurrency=1, backoff_seconds=0.01)

    outcome = ihc_client.attribute_journeys(
        journeys_of(1, 2, 1), target(local_server), settings, lambda b: batches.append([a.session_id for a in b])
    )

    assert outcome.requests == 2
    # one batch per answer: the first request's holds c1 only (c2 failed, 206), c2 comes with its retry
    assert sorted(batches) == [["c1-s1"], ["c2-s1", "c2-s2"], ["c3-s1"]]


def test_a_request_failing_for_good_stops_the_packing_of_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[str] = []

    async def refused(self, session, semaphore, journeys):
        raise IhcRejectedError(f"refused {journeys[0][0]['conversion_id']}")

    def lazily(journeys: list[list[dict]]):
        for j in journeys:
            taken.append(j[0]["conversion_id"])
            yield j

    monkeypatch.setattr(IhcClient, "_attribute_request", refused)
    settings = ClientSettings(max_journeys_per_request=1)
    with pytest.raises(IhcRejectedError, match="refused c1"):
        attribute_collecting(lazily(journeys_of(*[1] * 100)), target("http://127.0.0.1:9"), settings)
    assert len(taken) < 5


def test_wrong_key_fails_fast(local_server: str) -> None:
    client = IhcClient(target(local_server, key="not-the-key"), FAST, [].extend)
    with pytest.raises(IhcRejectedError, match="403") as caught:
        asyncio.run(client.attribute(journeys_of(2, 1)))
    assert client.attempts == 1
    assert "not-the-key" not in str(caught.value)


def test_client_limits_above_the_server_limits_are_rejected(local_server: str, server_config: ServerConfig) -> None:
    server_config.max_journeys = 2
    client = IhcClient(
        target(local_server), ClientSettings(max_journeys_per_request=5, backoff_seconds=0.01), [].extend
    )
    with pytest.raises(IhcRejectedError, match="400"):
        asyncio.run(client.attribute(journeys_of(1, 1, 1)))
    assert client.attempts == 1


# --- validate_answer -----------------------------------------------------------------------


def sent_map() -> dict[str, list[dict]]:
    return {"c1": journey("c1", 2), "c2": journey("c2", 1)}


def good_rows() -> list[dict]:
    return [
        {"conversion_id": "c1", "session_id": "c1-s1", "initializer": 1, "holder": 0, "closer": 0.4, "ihc": 0.4},
        {"conversion_id": "c1", "session_id": "c1-s2", "initializer": 0, "holder": 0, "closer": 0.6, "ihc": 0.6},
        {"conversion_id": "c2", "session_id": "c2-s1", "initializer": 1, "holder": 0, "closer": 1, "ihc": 1},
    ]


def test_validate_answer_accepts_a_good_answer() -> None:
    attributions, failed = validate_answer({"statusCode": 200, "value": good_rows()}, sent_map())
    assert failed == set()
    assert [(a.conversion_id, a.session_id, a.ihc) for a in attributions] == [
        ("c1", "c1-s1", 0.4),
        ("c1", "c1-s2", 0.6),
        ("c2", "c2-s1", 1.0),
    ]


def test_validate_answer_accepts_rounding_slack() -> None:
    rows = good_rows()
    rows[0]["ihc"] = 0.4001
    attributions, _ = validate_answer({"value": rows}, sent_map())
    assert len(attributions) == 3


def test_validate_answer_reports_partial_failures() -> None:
    rows = [r for r in good_rows() if r["conversion_id"] != "c2"]
    body = {"statusCode": 206, "value": rows, "partialFailureErrors": [{"conversion_id": "c2", "error": "x"}]}
    attributions, failed = validate_answer(body, sent_map())
    assert failed == {"c2"}
    assert {a.conversion_id for a in attributions} == {"c1"}


def mutated(change) -> dict:
    rows = good_rows()
    change(rows)
    return {"statusCode": 200, "value": rows}


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (mutated(lambda rows: rows.pop(1)), r"lacks 1 sent sessions.*c1-s2"),
        (
            mutated(
                lambda rows: rows.append(
                    {"conversion_id": "c1", "session_id": "c1-s9", "initializer": 0, "holder": 0, "closer": 0, "ihc": 0}
                )
            ),
            r"'c1-s9' of conversion 'c1', which was not sent",
        ),
        (
            mutated(lambda rows: rows.append(dict(rows[2], session_id="c1-s1"))),
            r"'c1-s1' of conversion 'c2', which was not sent",
        ),
        (mutated(lambda rows: rows.append(dict(rows[2]))), r"'c2-s1' of conversion 'c2' twice"),
        (mutated(lambda rows: rows[2].update(ihc=1.5)), r"'c2-s1' of conversion 'c2'.*outside \[0, 1\]"),
        (mutated(lambda rows: rows[2].update(closer=-0.2)), r"'c2-s1'.*outside \[0, 1\]"),
        (mutated(lambda rows: rows[2].update(ihc=float("nan"))), r"'c2-s1'.*outside \[0, 1\]"),
        (mutated(lambda rows: rows[1].update(ihc=0.3)), r"conversion 'c1' sums to 0.700000"),
        (mutated(lambda rows: rows[0].pop("ihc")), r"malformed row.*c1-s1"),
        (mutated(lambda rows: rows[1].update(holder="lots")), r"malformed row.*c1-s2"),
        (mutated(lambda rows: rows.append("c2-s1")), r"malformed row"),
        (mutated(lambda rows: rows.append({"conversion_id": "c2", "ihc": 1})), r"malformed row"),
        (mutated(lambda rows: rows[0].update(conversion_id=["c1"])), r"malformed row.*\['c1'\]"),
        ({"statusCode": 200}, r"no 'value' list"),
        ([], r"no 'value' list"),
        (
            {"value": good_rows(), "partialFailureErrors": [{"conversion_id": "c7"}]},
            r"unknown journey.*c7",
        ),
        (
            {"value": good_rows(), "partialFailureErrors": [{"conversion_id": ["c1"]}]},
            r"unknown journey.*\['c1'\]",
        ),
        ({"value": good_rows(), "partialFailureErrors": 5}, r"partialFailureErrors is not a list: 5"),
    ],
    ids=[
        "missing-session",
        "unsent-session",
        "session-under-wrong-conversion",
        "duplicate-row",
        "ihc-above-1",
        "negative-share",
        "nan-ihc",
        "sum-far-from-1",
        "row-without-ihc",
        "non-numeric-share",
        "row-not-an-object",
        "row-without-session",
        "unhashable-conversion-id",
        "no-value",
        "not-an-object",
        "unknown-partial-failure",
        "unhashable-partial-failure",
        "partial-failures-not-a-list",
    ],
)
def test_validate_answer_rejects_bad_answers(body: object, pattern: str) -> None:
    with pytest.raises(_RetryableError, match=pattern):
        validate_answer(body, sent_map())


# --- helpers: Retry-After, backoff, targets ------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("0.3", 0.3), ("2", 2.0), ("120", 120.0), ("-5", 0.0)])
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value) == pytest.approx(expected)


def test_parse_retry_after_http_date() -> None:
    future = datetime.now(UTC) + timedelta(seconds=30)
    assert parse_retry_after(format_datetime(future, usegmt=True)) == pytest.approx(30, abs=2)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize("value", ["Wed, 21 Oct 2015 07:28:00 -0000", "Wed, 21 Oct 2015 07:28:00"])
def test_parse_retry_after_http_date_without_zone_is_gmt(value: str) -> None:
    assert parse_retry_after(value) == 0.0
    future = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S")
    assert parse_retry_after(future) == pytest.approx(60, abs=2)


@pytest.mark.parametrize("value", [None, "", "soon", "Wed, 32 Oct 2015 07:28:00 GMT", "1 2 3"])
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


def test_backoff_delay_grows_and_is_bounded() -> None:
    settings = ClientSettings(backoff_seconds=0.5, max_backoff_seconds=4.0)
    for attempt in range(1, 40):
        ceiling = min(4.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(20):
            delay = backoff_delay(attempt, settings)
            assert ceiling * 0.5 <= delay <= ceiling <= settings.max_backoff_seconds
    assert max(backoff_delay(1, settings) for _ in range(50)) <= 0.5
    assert min(backoff_delay(10, settings) for _ in range(50)) >= 2.0


def test_api_target_repr_hides_the_key() -> None:
    secret = "sk-very-secret-123"
    api = ApiTarget(base_url="https://api.ihc-attribution.com/", api_key=secret, conv_type_id="conv1")
    assert secret not in repr(api)
    assert secret not in str(api)
    assert "conv1" in repr(api)
    assert api.url == "https://api.ihc-attribution.com/v1/compute_ihc"


def test_target_from_connection_host_with_scheme() -> None:
    api = target_from_connection(
        fields("ihc_api", "http", "https://api.ihc-attribution.com", None, None, "key-1", {"conv_type_id": "abc"})
    )
    assert api.base_url == "https://api.ihc-attribution.com"
    assert api.url == "https://api.ihc-attribution.com/v1/compute_ihc"
    assert api.api_key == "key-1"
    assert api.conv_type_id == "abc"
    assert api.redistribution_parameter is None


def test_target_from_connection_host_without_scheme_is_https_unless_schema_says_http() -> None:
    redistribution = {"closer": {"direction": "any_session", "receive_threshold": 0}}
    api = target_from_connection(
        fields(
            "ihc_api", "http", "127.0.0.1", None, 8765, "local-dev-key", {"redistribution_parameter": redistribution}
        )
    )
    assert api.url == "https://127.0.0.1:8765/v1/compute_ihc", "the key never goes out in clear by default"
    plain = target_from_connection(fields("ihc_api", "http", "127.0.0.1", "http", 8765, "k", {}))
    assert plain.url == "http://127.0.0.1:8765/v1/compute_ihc"
    assert api.conv_type_id == "default"
    assert api.redistribution_parameter == redistribution
    https = target_from_connection(fields("ihc_api", "generic", "api.ihc-attribution.com", None, None, "k", {}))
    assert https.base_url == "https://api.ihc-attribution.com"


@pytest.mark.parametrize("password", [None, ""])
def test_target_from_connection_without_password(password: str | None) -> None:
    with pytest.raises(SettingError, match="my_ihc_conn") as caught:
        target_from_connection(fields("my_ihc_conn", "http", "127.0.0.1", None, 8765, password, {}))
    assert "password" in str(caught.value)


def test_target_from_connection_without_host() -> None:
    with pytest.raises(SettingError, match="my_ihc_conn"):
        target_from_connection(fields("my_ihc_conn", "http", None, None, None, "key", {}))


@pytest.mark.parametrize("host", ["ftp://api.example.com", "https://", "file:///etc/passwd"])
def test_target_from_connection_refuses_a_base_url_that_is_not_http(host: str) -> None:
    with pytest.raises(SettingError, match=f"connection ihc_api has host '{host}'"):
        target_from_connection(fields("ihc_api", "http", host, None, None, "key", {}))


def test_target_from_connection_works_against_the_local_server(local_server: str) -> None:
    host_port = local_server.removeprefix("http://")
    host, port = host_port.split(":")
    api = target_from_connection(fields("ihc_api", "http", host, "http", int(port), LOCAL_API_KEY, {}))
    outcome = attribute_collecting(journeys_of(2), api, FAST)
    assert_complete(outcome.attributions, journeys_of(2))


# --- the wire format --------------------------------------------------------------------------


def api_journey(conv_id: str, n_sessions: int) -> list[dict[str, object]]:
    sessions = tuple(
        Session(f"{conv_id}-s{i}", f"user-{conv_id}", f"2023-09-01 10:{i:02d}:00", "Referral", 1, 0, 0)
        for i in range(n_sessions)
    )
    return journey_rows(Journey(conv_id, sessions))


def test_journey_rows_marks_only_the_last_session_and_passes_flags_through():
    journey = Journey(
        "c1",
        (
            Session("s1", "u1", "2023-09-01 10:00:00", "FB & IG Ads", 1, 0, 1),
            Session("s2", "u1", "2023-09-01 11:00:00", "Organic Traffic", 0, 1, 0),
            Session("s3", "u1", "2023-09-01 12:00:00", "Paid Search Brand", 1, 1, 0),
        ),
    )
    rows = journey_rows(journey)
    assert [r["conversion"] for r in rows] == [0, 0, 1]
    assert rows[0] == {
        "conversion_id": "c1",
        "session_id": "s1",
        "timestamp": "2023-09-01 10:00:00",
        "channel_label": "FB & IG Ads",
        "holder_engagement": 1,
        "closer_engagement": 0,
        "conversion": 0,
        "impression_interaction": 1,
    }
    assert [(r["holder_engagement"], r["closer_engagement"], r["impression_interaction"]) for r in rows] == [
        (1, 0, 1),
        (0, 1, 0),
        (1, 1, 0),
    ]
    assert [r["channel_label"] for r in rows] == ["FB & IG Ads", "Organic Traffic", "Paid Search Brand"]
    assert {r["conversion_id"] for r in rows} == {"c1"}


def test_journey_rows_single_session_is_the_conversion_session():
    rows = journey_rows(Journey("c1", (Session("s1", "u1", "2023-09-01 10:00:00", "Direct Traffic", 0, 0, 0),)))
    assert len(rows) == 1
    assert rows[0]["conversion"] == 1


# --- pack_requests -----------------------------------------------------------------------------


def lengths_of(requests):
    return [[len(j) for j in request] for request in requests]


def test_pack_requests_respects_max_journeys():
    journeys = [api_journey(f"c{i}", 1) for i in range(5)]
    requests = pack_requests(journeys, max_journeys=2, max_sessions=3000)
    assert [len(r) for r in requests] == [2, 2, 1]


def test_pack_requests_respects_max_sessions():
    journeys = [api_journey(f"c{i}", n) for i, n in enumerate([2, 2, 2, 3, 1])]
    requests = pack_requests(journeys, max_journeys=100, max_sessions=5)
    assert lengths_of(requests) == [[2, 2], [2, 3], [1]]


def test_pack_requests_fills_exactly_to_the_session_limit():
    journeys = [api_journey("a", 3), api_journey("b", 2), api_journey("c", 1)]
    requests = pack_requests(journeys, max_journeys=100, max_sessions=5)
    assert lengths_of(requests) == [[3, 2], [1]]


def test_pack_requests_journey_at_the_limit_gets_its_own_request():
    journeys = [api_journey("a", 1), api_journey("b", 4), api_journey("c", 1)]
    requests = pack_requests(journeys, max_journeys=100, max_sessions=4)
    assert lengths_of(requests) == [[1], [4], [1]]


@pytest.mark.parametrize(("max_journeys", "max_sessions"), [(1, 37), (3, 40), (4, 60), (100, 3000), (7, 37), (100, 50)])
def test_pack_requests_never_splits_keeps_order_and_limits(max_journeys, max_sessions):
    lengths = [((i * 7) % 11) + 1 for i in range(60)] + [37, 1, 36]
    journeys = [api_journey(f"c{i:03d}", n) for i, n in enumerate(lengths)]
    requests = pack_requests(journeys, max_journeys=max_journeys, max_sessions=max_sessions)

    flat = [journey for request in requests for journey in request]
    assert flat == journeys  # same journeys, same order, each whole
    for request in requests:
        assert 1 <= len(request) <= max_journeys
        assert sum(len(j) for j in request) <= max_sessions
        for rows in request:
            assert len({row["conversion_id"] for row in rows}) == 1
    session_ids = [row["session_id"] for request in requests for rows in request for row in rows]
    assert len(session_ids) == len(set(session_ids)) == sum(lengths)


def test_pack_requests_empty():
    assert pack_requests([], max_journeys=100, max_sessions=3000) == []


def test_partial_failure_stopped_by_the_budget_counts_the_attempts_made(
    local_server: str, server_config: ServerConfig
) -> None:
    server_config.faults.append(Fault("partial", times=-1, conversion_id="c2"))
    settings = ClientSettings(backoff_seconds=5, max_backoff_seconds=5, max_attempts=5, budget_seconds=1)
    with pytest.raises(IhcApiError, match=r"1 journeys still failed after 1 attempts: \['c2'\]; the next backoff"):
        attribute_collecting(journeys_of(2, 3, 1), target(local_server), settings)
    assert server_config.requests == 1
