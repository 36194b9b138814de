"""The local IHC server over real HTTP: auth, validation, limits, answers, and fault injection."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from include.ihc_client import ENGINE_PARAMETERS_HEADER
from include.settings import LOCAL_API_KEY
from tests.api_rows import journey as api_journey
from tools import local_server as local_server_module
from tools.local_server import Fault, ServerConfig

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ROW_KEYS = {"conversion_id", "session_id", "initializer", "holder", "closer", "ihc"}


def journey(conversion_id: str, sessions: int, start: str = "2023-09-01 08:00:00") -> list[dict]:
    return api_journey(conversion_id, sessions, start, step_hours=1)


def post(
    base_url: str,
    body: object,
    *,
    key: str | None = LOCAL_API_KEY,
    conv_type_id: str | None = "default",
    raw: bytes | None = None,
) -> tuple[int, dict[str, str], dict]:
    """POST to compute_ihc; returns HTTP status, headers and the decoded JSON body."""
    url = base_url + "/v1/compute_ihc" + (f"?conv_type_id={conv_type_id}" if conv_type_id is not None else "")
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-api-key"] = key
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


def body_of(*journeys: list[dict]) -> dict:
    return {"customer_journeys": [row for j in journeys for row in j]}


def ihc_sums(value: list[dict]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for row in value:
        sums[row["conversion_id"]] = sums.get(row["conversion_id"], 0.0) + row["ihc"]
    return sums


# --- auth and validation -------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "", "wrong-key", LOCAL_API_KEY + "x"])
def test_missing_or_wrong_key_is_forbidden(local_server: str, server_config: ServerConfig, key: str | None) -> None:
    status, _, body = post(local_server, body_of(journey("c1", 2)), key=key)
    assert status == 403
    assert body["statusCode"] == 403


def test_server_uses_the_configured_key(local_server: str, server_config: ServerConfig) -> None:
    server_config.api_key = "another-key"
    assert post(local_server, body_of(journey("c1", 1)))[0] == 403
    assert post(local_server, body_of(journey("c1", 1)), key="another-key")[0] == 200


def test_missing_conv_type_id_is_rejected(local_server: str) -> None:
    status, _, body = post(local_server, body_of(journey("c1", 2)), conv_type_id=None)
    assert status == 400
    assert body["statusCode"] == 400
    assert "conv_type_id" in body["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe"])
def test_invalid_json_is_rejected(local_server: str, raw: bytes) -> None:
    status, _, body = post(local_server, None, raw=raw)
    assert status == 400
    assert body["statusCode"] == 400


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"customer_journeys": []},
        {"customer_journeys": "c1"},
        {"customer_journeys": [{"conversion_id": "c1"}]},
        {"customer_journeys": [dict(journey("c1", 1)[0], holder_engagement="1")]},
    ],
    ids=["not-an-object", "empty", "not-a-list", "missing-fields", "wrong-type"],
)
def test_malformed_request_is_rejected(local_server: str, body: object) -> None:
    status, _, answer = post(local_server, body)
    assert status == 400
    assert answer["statusCode"] == 400


def test_too_many_journeys_is_rejected(local_server: str, server_config: ServerConfig) -> None:
    server_config.max_journeys = 2
    assert post(local_server, body_of(journey("c1", 1), journey("c2", 1)))[0] == 200
    status, _, body = post(local_server, body_of(journey("c1", 1), journey("c2", 1), journey("c3", 1)))
    assert status == 400
    assert body["statusCode"] == 400
    assert "3 journeys" in body["message"]


def test_too_many_sessions_is_rejected(local_server: str, server_config: ServerConfig) -> None:
    server_config.max_sessions = 4
    assert post(local_server, body_of(journey("c1", 2), journey("c2", 2)))[0] == 200
    status, _, body = post(local_server, body_of(journey("c1", 2), journey("c2", 3)))
    assert status == 400
    assert body["statusCode"] == 400
    assert "5 sessions" in body["message"]


@pytest.mark.parametrize(
    "timestamp",
    ["yesterday", "2023-13-01 10:00:00", "2023-09-01 25:00:00", "2023-09-01T10:00:00", "2023-09-01 10:00:00 +4"],
)
def test_unparsable_timestamp_is_not_acceptable(local_server: str, timestamp: str) -> None:
    rows = journey("c1", 3)
    rows[1]["timestamp"] = timestamp
    status, _, body = post(local_server, body_of(journey("c0", 1), rows))
    assert status == 406
    assert body["statusCode"] == 406
    assert "c1" in body["message"]


def test_unknown_conversion_type_is_a_client_error_naming_it_and_the_known_ones(local_server: str) -> None:
    status, _, body = post(local_server, body_of(journey("c1", 2)), conv_type_id="purchase")
    assert status == 400
    assert body["statusCode"] == 400
    assert "conv_type_id 'purchase' has no trained engine parameters" in body["message"]
    assert "known conversion types: default" in body["message"]


def test_timestamps_with_a_utc_offset_score_like_their_utc_time(local_server: str) -> None:
    plain = journey("c1", 3, start="2023-09-01 08:00:00")
    offset = [dict(row) for row in plain]
    offset[0]["timestamp"] = "2023-09-01 12:00:00 +0400"  # 08:00 UTC
    offset[1]["timestamp"] = "2023-09-01 04:00:00 -0500"  # 09:00 UTC
    offset[2]["timestamp"] = "2023-09-01 10:00:00 +00:00"
    status, _, answer = post(local_server, body_of(offset))
    assert status == 200
    assert answer["value"] == post(local_server, body_of(plain))[2]["value"]
    shifted = [dict(row) for row in plain]
    shifted[0]["timestamp"] = "2023-09-01 08:00:00 +0400"  # 04:00 UTC: a longer first gap
    assert post(local_server, body_of(shifted))[2]["value"] != answer["value"]


def test_answers_name_the_engine_parameter_file(local_server: str, trained_engine) -> None:
    status, headers, _ = post(local_server, body_of(journey("c1", 2)))
    assert status == 200
    assert headers[ENGINE_PARAMETERS_HEADER] == trained_engine.path


def test_invalid_redistribution_direction_is_rejected(local_server: str) -> None:
    body = body_of(journey("c1", 2))
    body["redistribution_parameter"] = {
        "closer": {"direction": "sideways", "receive_threshold": 0, "redistribution_channel_labels": ["x"]}
    }
    status, _, answer = post(local_server, body)
    assert status == 400
    assert "redistribution" in answer["message"]


# --- valid answers -------------------------------------------------------------------------


def test_valid_request_returns_one_row_per_session(local_server: str, server_config: ServerConfig) -> None:
    journeys = [journey("c1", 1), journey("c2", 4), journey("c3", 2, start="2023-09-03 23:59:59")]
    status, _, body = post(local_server, body_of(*journeys))
    assert status == 200
    assert body["statusCode"] == 200
    assert body["partialFailureErrors"] == []
    sent = sorted((r["conversion_id"], r["session_id"]) for j in journeys for r in j)
    got = sorted((r["conversion_id"], r["session_id"]) for r in body["value"])
    assert got == sent
    for row in body["value"]:
        assert set(row) == ROW_KEYS
        for phase in ("initializer", "holder", "closer", "ihc"):
            assert 0 <= row[phase] <= 1
            assert row[phase] == round(row[phase], 4)
    sums = ihc_sums(body["value"])
    assert set(sums) == {"c1", "c2", "c3"}
    for total in sums.values():
        assert total == pytest.approx(1, abs=1e-9)
    single = next(r for r in body["value"] if r["conversion_id"] == "c1")
    assert (single["initializer"], single["holder"], single["closer"], single["ihc"]) == (1, 0, 1, 1)
    assert server_config.requests == 1
    assert server_config.faults_fired == 0


def test_sessions_sent_out_of_order_are_sorted_by_time(local_server: str) -> None:
    rows = journey("c1", 3)
    status, _, body = post(local_server, body_of(list(reversed(rows))))
    assert status == 200
    ordered = post(local_server, body_of(rows))[2]["value"]
    by_session = {r["session_id"]: r for r in body["value"]}
    assert all(by_session[r["session_id"]] == r for r in ordered)


def test_redistribution_moves_the_share_of_a_listed_channel(local_server: str) -> None:
    # channels FB & IG Ads, Direct Traffic, Paid Search Brand, FB & IG Ads; closer-eligible: s2, s4
    rows = journey("c1", 4)
    plain = {r["session_id"]: r for r in post(local_server, body_of(rows))[2]["value"]}
    assert plain["c1-s2"]["closer"] > 0 and plain["c1-s4"]["closer"] > 0
    body = body_of(rows)
    body["redistribution_parameter"] = {
        "closer": {
            "direction": "earlier_sessions_only",
            "receive_threshold": 0,
            "redistribution_channel_labels": ["FB & IG Ads"],
        }
    }
    status, _, answer = post(local_server, body)
    assert status == 200
    moved = {r["session_id"]: r for r in answer["value"]}
    assert moved["c1-s4"]["closer"] == 0
    assert moved["c1-s2"]["closer"] == 1
    assert moved["c1-s4"]["ihc"] < plain["c1-s4"]["ihc"]
    assert sum(r["ihc"] for r in moved.values()) == pytest.approx(1, abs=1e-9)


# --- fault injection -----------------------------------------------------------------------


def test_fault_429_sends_retry_after(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("429", retry_after=2.5))
    status, headers, body = post(local_server, body_of(journey("c1", 2)))
    assert status == 429
    assert body["statusCode"] == 429
    assert headers["Retry-After"] == "2.5"
    assert post(local_server, body_of(journey("c1", 2)))[0] == 200


def test_fault_500_returns_500(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("500"))
    status, _, body = post(local_server, body_of(journey("c1", 2)))
    assert status == 500
    assert body["statusCode"] == 500
    assert server_config.faults_fired == 1


def test_fault_partial_returns_206_without_the_failed_journey(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("partial", conversion_id="c2"))
    status, _, body = post(local_server, body_of(journey("c1", 2), journey("c2", 3), journey("c3", 1)))
    assert status == 206
    assert body["statusCode"] == 206
    assert [e["conversion_id"] for e in body["partialFailureErrors"]] == ["c2"]
    assert {r["conversion_id"] for r in body["value"]} == {"c1", "c3"}
    assert len(body["value"]) == 3
    assert all(total == pytest.approx(1, abs=1e-9) for total in ihc_sums(body["value"]).values())


def test_fault_partial_without_conversion_fails_one_journey(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("partial"))
    status, _, body = post(local_server, body_of(journey("c1", 2), journey("c2", 1)))
    assert status == 206
    [error] = body["partialFailureErrors"]
    assert error["conversion_id"] in {"c1", "c2"}
    assert error["conversion_id"] not in {r["conversion_id"] for r in body["value"]}
    assert len({r["conversion_id"] for r in body["value"]}) == 1


def test_fault_with_conversion_id_only_hits_that_journey(local_server: str, server_config: ServerConfig) -> None:
    fault = Fault("500", conversion_id="c2")
    server_config.faults.append(fault)
    assert post(local_server, body_of(journey("c1", 2), journey("c3", 1)))[0] == 200
    assert fault.times == 1
    assert server_config.faults_fired == 0
    assert post(local_server, body_of(journey("c1", 2), journey("c2", 1)))[0] == 500
    assert fault.times == 0
    assert post(local_server, body_of(journey("c2", 1)))[0] == 200
    assert server_config.requests == 3


def test_fault_times_counts_down(local_server: str, server_config: ServerConfig) -> None:
    fault = Fault("500", times=2)
    server_config.faults.append(fault)
    statuses = [post(local_server, body_of(journey("c1", 1)))[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert fault.times == 0
    assert server_config.faults_fired == 2
    assert server_config.requests == 3


def test_fault_with_times_minus_one_never_runs_out(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("500", times=-1))
    assert [post(local_server, body_of(journey("c1", 1)))[0] for _ in range(4)] == [500] * 4
    assert server_config.faults_fired == 4


def test_faults_fire_in_order(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.extend([Fault("429", retry_after=1), Fault("500")])
    statuses = [post(local_server, body_of(journey("c1", 1)))[0] for _ in range(3)]
    assert statuses == [429, 500, 200]


def test_slow_fault_delays_the_answer(local_server: str, server_config: ServerConfig) -> None:
    server_config.faults.append(Fault("slow", delay_seconds=0.3))
    started = time.monotonic()
    status, _, body = post(local_server, body_of(journey("c1", 2)))
    assert time.monotonic() - started >= 0.3
    assert status == 200
    assert len(body["value"]) == 2


def test_rejected_requests_do_not_use_up_faults(local_server: str, server_config: ServerConfig) -> None:
    fault = Fault("500")
    server_config.faults.append(fault)
    assert post(local_server, body_of(journey("c1", 1)), key="wrong")[0] == 403
    assert post(local_server, {"customer_journeys": []})[0] == 400
    assert fault.times == 1
    assert post(local_server, body_of(journey("c1", 1)))[0] == 500


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="fault kind"):
        Fault("503")


def test_help_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.local_server", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--fault" in result.stdout
    assert "--max-sessions" in result.stdout


def test_the_server_process_hands_the_gil_to_its_event_loop_within_a_millisecond(
    trained_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[object] = []
    monkeypatch.setattr(local_server_module.web, "run_app", lambda app, **kwargs: served.append(app))
    monkeypatch.setattr(sys, "setswitchinterval", lambda seconds: served.append(seconds))

    local_server_module.main(["--engine-dir", str(Path(trained_engine.path).parent)])

    assert served[0] == local_server_module.SWITCH_INTERVAL_SECONDS <= 0.001
    assert len(served) == 2


def test_faults_can_be_replaced_on_a_running_server(local_server, server_config):
    def control(method: str, body: bytes | None = None, key: str = LOCAL_API_KEY) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"{local_server}/local/faults", data=body, method=method, headers={"x-api-key": key}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert control("PUT", b'[{"kind": "500", "times": 2, "conversion_id": "c9"}]')[0] == 200
    assert server_config.faults == [Fault("500", times=2, conversion_id="c9")]
    assert control("GET") == (200, {"requests": 0, "faults_fired": 0, "engine_cpu_seconds": 0.0})
    assert control("PUT", b'[{"kind": "nope"}]')[0] == 400
    assert control("PUT", b"[]", key="wrong")[0] == 403
    assert control("PUT", b"[]")[0] == 200
    assert server_config.faults == []


def test_keys_are_compared_in_constant_time(local_server, monkeypatch):
    import hmac

    import tools.local_server as server_module

    compared = []
    original = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(server_module.hmac, "compare_digest", spy)
    request = urllib.request.Request(
        f"{local_server}/v1/compute_ihc?conv_type_id=default", data=b"{}", method="POST", headers={"x-api-key": "guess"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403
    assert compared == [(b"guess", LOCAL_API_KEY.encode())]


def test_latency_is_the_time_from_arrival_to_answer_and_includes_the_engine_work() -> None:
    # a request that arrived at t = 10 with 0.3 s latency leaves at 10.3, whatever the engine took
    assert local_server_module.latency_left(10.0, 10.2, 0.3) == pytest.approx(0.1)
    assert local_server_module.latency_left(10.0, 10.0, 0.3) == pytest.approx(0.3)
    assert local_server_module.latency_left(10.0, 10.5, 0.3) == 0.0


def test_parsing_and_scoring_run_off_the_event_loop(local_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the loop stays free to take other requests as they arrive, so their latency starts then
    threads: list[str] = []
    parse, score = local_server_module.parse_request, local_server_module.score

    def recording_parse(raw, config):
        threads.append(threading.current_thread().name)
        return parse(raw, config)

    def recording_score(parsed, failed, parameters):
        threads.append(threading.current_thread().name)
        return score(parsed, failed, parameters)

    monkeypatch.setattr(local_server_module, "parse_request", recording_parse)
    monkeypatch.setattr(local_server_module, "score", recording_score)
    status, _, answer = post(local_server, body_of(journey("c1", 3)))

    assert status == 200 and len(answer["value"]) == 3
    assert len(threads) == 2
    assert "local-ihc-server" not in threads


def test_an_answer_is_held_for_the_latency(local_server: str, server_config: ServerConfig) -> None:
    server_config.latency_seconds = 0.3
    started = time.monotonic()
    status, _, _ = post(local_server, body_of(journey("c1", 3)))
    assert status == 200
    assert time.monotonic() - started >= 0.3
