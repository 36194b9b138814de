"""The client against hostile answers of the local server: each gives a clear error in the log,
bounded retries, and nothing kept from a bad answer."""

from __future__ import annotations

import logging

import pytest

from include.ihc_client import ApiTarget, ClientSettings, IhcApiError
from include.settings import LOCAL_API_KEY
from tests.api_rows import attribute_collecting, journey
from tools.local_server import Fault, ServerConfig

SETTINGS = ClientSettings(backoff_seconds=0.01, max_backoff_seconds=0.05, max_attempts=3, timeout_seconds=5)
JOURNEYS = [journey("c1", 3), journey("c2", 2), journey("c3", 1)]

HOSTILE = {
    "malformed_json": "not JSON",
    "body_500": "statusCode 500 in the body",
    "html": "HTTP 502",
    "reset": "connection problem",
    "drop_session": "lacks 1 sent sessions",
    "extra_session": "'never-sent' of conversion 'c1', which was not sent",
    "ihc_out_of_range": "outside [0, 1]",
    "sum_off": "sums to 0.500000, not 1",
}


def attribute(url: str, settings: ClientSettings = SETTINGS):
    return attribute_collecting(JOURNEYS, ApiTarget(url, LOCAL_API_KEY, "default"), settings)


@pytest.mark.parametrize(("kind", "reason"), HOSTILE.items())
def test_one_hostile_answer_is_logged_and_retried(kind, reason, local_server, server_config: ServerConfig, caplog):
    server_config.faults.append(Fault(kind, times=1))

    with caplog.at_level(logging.WARNING, logger="include.ihc_client"):
        outcome = attribute(local_server)

    assert outcome.attempts == 2
    assert sorted((a.conversion_id, a.session_id) for a in outcome.attributions) == sorted(
        (row["conversion_id"], row["session_id"]) for j in JOURNEYS for row in j
    )
    assert reason in caplog.text
    assert "attempt 1" in caplog.text


@pytest.mark.parametrize(("kind", "reason"), HOSTILE.items())
def test_a_persistently_hostile_api_fails_with_the_reason_after_bounded_attempts(
    kind, reason, local_server, server_config: ServerConfig
):
    server_config.faults.append(Fault(kind, times=-1))

    with pytest.raises(IhcApiError) as raised:
        attribute(local_server)

    assert f"failed after {SETTINGS.max_attempts} attempts" in str(raised.value)
    assert reason in str(raised.value)
    assert server_config.faults_fired == SETTINGS.max_attempts


def test_html_error_page_with_status_200_is_not_taken_for_an_answer(local_server, server_config):
    server_config.faults.append(Fault("html", times=-1, status=200))
    with pytest.raises(IhcApiError, match="HTTP 200 with a body that is not JSON: <html>"):
        attribute(local_server)


def test_429_without_retry_after_backs_off_and_succeeds(local_server, server_config, caplog):
    server_config.faults.append(Fault("429", times=2, retry_after=None))
    with caplog.at_level(logging.WARNING, logger="include.ihc_client"):
        outcome = attribute(local_server)
    assert outcome.attempts == 3
    assert caplog.text.count("HTTP 429 Too Many Requests") == 2


def test_retry_after_beyond_the_budget_fails_at_once(local_server, server_config):
    server_config.faults.append(Fault("429", times=-1, retry_after=3600))
    settings = ClientSettings(backoff_seconds=0.01, max_attempts=5, budget_seconds=60)

    with pytest.raises(
        IhcApiError, match=r"asks to wait 3600 s \(HTTP 429 Too Many Requests\), more than the \d+ s left"
    ):
        attribute(local_server, settings)

    assert server_config.faults_fired == 1
