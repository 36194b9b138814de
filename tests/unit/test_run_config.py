"""The run configuration: read once, every Variable checked, the key kept out of XCom."""

from __future__ import annotations

import orjson
import pytest

from include import run_config, settings
from include.ihc_client import ApiTarget
from include.run_config import RunConfig
from include.settings import DateRange, SettingError

DATES = DateRange("2023-09-01", "2023-09-07")
API = ApiTarget("https://api.example", "secret-key-123", "purchase", {"closer": {"direction": "any_session"}})


def test_defaults_come_from_the_declared_variables() -> None:
    config = run_config.resolve(DATES, lambda name: None, API)
    assert config.window.lookback_days == settings.LOOKBACK_DAYS.default
    assert config.chunk_size == settings.CHUNK_SIZE.default
    assert config.max_bad_row_share == settings.MAX_BAD_ROW_SHARE.default
    assert config.client.max_sessions_per_request == settings.MAX_SESSIONS_PER_REQUEST.default
    assert config.client.max_journeys_per_request == settings.MAX_JOURNEYS_PER_REQUEST.default
    assert config.client.concurrency == settings.REQUEST_CONCURRENCY.default
    assert config.client.timeout_seconds == settings.REQUEST_TIMEOUT_SECONDS.default
    assert config.client.max_attempts == settings.MAX_ATTEMPTS.default
    assert config.client.backoff_seconds == settings.BACKOFF_SECONDS.default
    assert config.client.budget_seconds == settings.CHUNK_BUDGET_SECONDS.default


def test_every_variable_is_read_once() -> None:
    asked: list[str] = []
    run_config.resolve(DATES, lambda name: asked.append(name), API)
    assert sorted(asked) == sorted(v.name for v in settings.VARIABLES)


@pytest.mark.parametrize("variable", settings.VARIABLES, ids=lambda v: v.name)
def test_a_bad_variable_is_named(variable: settings.NumberVariable) -> None:
    with pytest.raises(SettingError, match=variable.name):
        run_config.resolve(DATES, lambda name: "many" if name == variable.name else None, API)


def test_the_xcom_form_round_trips_without_the_key() -> None:
    values = {settings.CHUNK_SIZE.name: "250", settings.MAX_SESSIONS_PER_REQUEST.name: "200"}
    config = run_config.resolve(DATES, values.get, API)
    form = config.to_xcom()
    assert "secret-key-123" not in orjson.dumps(form).decode()
    back = RunConfig.from_xcom(orjson.loads(orjson.dumps(form)))
    assert back.api.api_key == ""
    assert back.with_api_key("secret-key-123") == config
    assert (back.chunk_size, back.client.max_sessions_per_request) == (250, 200)


@pytest.mark.parametrize(("start", "lookback"), [("0001-01-01", "30"), ("0001-01-30", "30"), ("0001-02-01", "90")])
def test_a_look_back_before_year_one_is_refused_naming_the_param(start: str, lookback: str) -> None:
    with pytest.raises(SettingError, match=f"param start_date={start} with ihc_lookback_days={lookback}"):
        run_config.resolve(DateRange(start, "9999-12-31"), {settings.LOOKBACK_DAYS.name: lookback}.get, API)


def test_the_widest_computable_window_is_accepted() -> None:
    config = run_config.resolve(DateRange("0001-01-31", "9999-12-31"), {settings.LOOKBACK_DAYS.name: "30"}.get, API)
    assert config.window.first_session_date == "0001-01-01"
