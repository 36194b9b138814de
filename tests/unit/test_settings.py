"""Settings: date params, Airflow Variables and environment overrides."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from include import settings
from include.settings import DateRange, FloatVariable, IntVariable, SettingError, resolve_date_range

# --- date range ---------------------------------------------------------------------------------


def test_resolve_date_range():
    assert resolve_date_range("2023-09-01", "2023-09-07") == DateRange("2023-09-01", "2023-09-07")
    assert resolve_date_range(" 2023-09-01 ", "2023-09-01") == DateRange("2023-09-01", "2023-09-01")
    assert resolve_date_range(date(2023, 9, 1), date(2023, 9, 2)) == DateRange("2023-09-01", "2023-09-02")


@pytest.mark.parametrize("bad", ["2023-13-01", "2023-09-31", "yesterday", "", None, "01.09.2023"])
def test_malformed_start_date_names_start_date(bad):
    with pytest.raises(SettingError) as info:
        resolve_date_range(bad, "2023-09-07")
    message = str(info.value)
    assert "start_date" in message
    assert "end_date" not in message
    assert repr(bad) in message


@pytest.mark.parametrize("bad", ["2023-09-0x", "2023/09/07", "", None])
def test_malformed_end_date_names_end_date(bad):
    with pytest.raises(SettingError) as info:
        resolve_date_range("2023-09-01", bad)
    message = str(info.value)
    assert "end_date" in message
    assert "start_date" not in message


def test_end_before_start_names_both_params():
    with pytest.raises(SettingError) as info:
        resolve_date_range("2023-09-07", "2023-09-01")
    message = str(info.value)
    assert "end_date=2023-09-01" in message
    assert "start_date=2023-09-07" in message


def test_setting_error_is_a_value_error():
    assert issubclass(SettingError, ValueError)


# --- Variables ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, ""])
def test_int_variable_default_on_missing(raw):
    assert IntVariable("ihc_chunk_size", 400).parse(raw) == 400


@pytest.mark.parametrize(("raw", "expected"), [("12", 12), (" 7 ", 7), (5, 5), ("1", 1)])
def test_int_variable_parses(raw, expected):
    assert IntVariable("ihc_chunk_size", 400).parse(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "1.5", "12 journeys", " "])
def test_int_variable_not_an_integer_names_the_variable(raw):
    with pytest.raises(SettingError) as info:
        IntVariable("ihc_chunk_size", 400).parse(raw)
    assert "ihc_chunk_size" in str(info.value)
    assert "not an integer" in str(info.value)


@pytest.mark.parametrize("raw", ["0", "-3"])
def test_int_variable_below_minimum_names_the_variable(raw):
    with pytest.raises(SettingError) as info:
        IntVariable("ihc_max_journeys_per_request", 100).parse(raw)
    assert "ihc_max_journeys_per_request" in str(info.value)
    assert "outside the allowed range: an integer of at least 1" in str(info.value)


@pytest.mark.parametrize(("variable", "raw"), [(settings.MAX_BAD_ROW_SHARE, "5"), (settings.CHUNK_SIZE, "1000001")])
def test_a_variable_above_its_maximum_names_it_and_its_bounds(variable, raw):
    with pytest.raises(SettingError) as info:
        variable.parse(raw)
    assert str(info.value) == f"Variable {variable.name}={raw!r} is outside the allowed range: {variable.bounds}"
    assert variable.bounds in variable.ui_description


def test_lookback_days_must_be_at_least_one_day():
    assert settings.LOOKBACK_DAYS.parse("1") == 1
    assert settings.LOOKBACK_DAYS.parse(None) == 30
    for raw in ("0", "-1"):
        with pytest.raises(SettingError, match="ihc_lookback_days"):
            settings.LOOKBACK_DAYS.parse(raw)


@pytest.mark.parametrize("raw", [None, ""])
def test_float_variable_default_on_missing(raw):
    assert FloatVariable("ihc_backoff_seconds", 0.5).parse(raw) == 0.5


@pytest.mark.parametrize(("raw", "expected"), [("2.5", 2.5), (" 3 ", 3.0), (0.25, 0.25), ("0", 0.0)])
def test_float_variable_parses(raw, expected):
    assert FloatVariable("ihc_backoff_seconds", 0.5).parse(raw) == expected


@pytest.mark.parametrize("raw", ["fast", "1,5", "nan", "inf", "-inf"])
def test_float_variable_not_a_number_names_the_variable(raw):
    with pytest.raises(SettingError) as info:
        FloatVariable("ihc_backoff_seconds", 0.5).parse(raw)
    assert "ihc_backoff_seconds" in str(info.value)


def test_float_variable_below_minimum_names_the_variable():
    with pytest.raises(SettingError) as info:
        settings.REQUEST_TIMEOUT_SECONDS.parse("0")
    assert "ihc_request_timeout_seconds" in str(info.value)
    with pytest.raises(SettingError, match="ihc_backoff_seconds"):
        settings.BACKOFF_SECONDS.parse("-0.1")


def test_design_defaults():
    assert settings.MAX_JOURNEYS_PER_REQUEST.parse(None) == 100
    assert settings.MAX_SESSIONS_PER_REQUEST.parse(None) == 3000
    assert settings.LOOKBACK_DAYS.parse(None) == 30
    names = [v.name for v in settings.VARIABLES]
    assert len(names) == len(set(names))
    for variable in settings.VARIABLES:
        assert variable.parse(None) == variable.default
        assert variable.parse(str(variable.default)) == variable.default


# --- environment --------------------------------------------------------------------------------


def test_default_dates_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_START_DATE", "2024-01-01")
    monkeypatch.setenv("ATTRIBUTION_END_DATE", "2024-01-31")
    assert settings.default_start_date() == "2024-01-01"
    assert settings.default_end_date() == "2024-01-31"


@pytest.mark.parametrize("value", [None, ""])
def test_default_dates_fall_back_to_the_sample_range(monkeypatch, value):
    for name in ("ATTRIBUTION_START_DATE", "ATTRIBUTION_END_DATE"):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert settings.default_start_date() == settings.SAMPLE_START_DATE == "2023-09-01"
    assert settings.default_end_date() == settings.SAMPLE_END_DATE == "2023-09-07"


@pytest.mark.parametrize("value", ["2023-09-31", "2023/09/01", "next monday"])
def test_a_malformed_default_date_names_its_variable(monkeypatch, value):
    monkeypatch.setenv("ATTRIBUTION_START_DATE", value)
    with pytest.raises(settings.SettingError, match=f"env ATTRIBUTION_START_DATE='{value}' is not a date"):
        settings.default_start_date()


def test_data_dir_override_moves_everything_below_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTRIBUTION_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("ATTRIBUTION_WORK_DIR", raising=False)
    monkeypatch.delenv("ATTRIBUTION_OUTPUT_DIR", raising=False)
    assert settings.data_dir() == tmp_path / "d"
    assert settings.default_warehouse_path() == tmp_path / "d" / "challenge.db"
    assert settings.work_base() == str(tmp_path / "d" / "runs")
    assert settings.output_dir() == tmp_path / "d" / "output"


def test_work_and_output_dir_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("ATTRIBUTION_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("ATTRIBUTION_WORK_DIR", str(tmp_path / "w"))
    monkeypatch.setenv("ATTRIBUTION_OUTPUT_DIR", str(tmp_path / "o"))
    assert settings.work_base() == str(tmp_path / "w")
    assert settings.output_dir() == tmp_path / "o"
    assert settings.data_dir() == tmp_path / "d"


def test_directories_default_to_the_project_data_folder(monkeypatch):
    for name in ("ATTRIBUTION_DATA_DIR", "ATTRIBUTION_WORK_DIR", "ATTRIBUTION_OUTPUT_DIR"):
        monkeypatch.delenv(name, raising=False)
    root = Path(settings.PROJECT_ROOT)
    assert (root / "include" / "settings.py").is_file()
    assert settings.data_dir() == root / "data"
    assert settings.work_base() == str(root / "data" / "runs")
    assert settings.output_dir() == root / "data" / "output"


def test_retry_delay_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATTRIBUTION_RETRY_DELAY_SECONDS", "12.5")
    assert settings.retry_delay_seconds() == 12.5
    monkeypatch.setenv("ATTRIBUTION_RETRY_DELAY_SECONDS", "soon")
    with pytest.raises(SettingError, match="ATTRIBUTION_RETRY_DELAY_SECONDS"):
        settings.retry_delay_seconds()


def test_directories_of_another_environment(monkeypatch, tmp_path):
    """What a process started with that environment (a Celery worker of the local stack) gets."""
    monkeypatch.setenv("ATTRIBUTION_WORK_DIR", str(tmp_path / "mine"))
    other = {"ATTRIBUTION_DATA_DIR": str(tmp_path / "d")}
    assert settings.work_base(other) == str(tmp_path / "d" / "runs")
    assert settings.output_dir(other) == tmp_path / "d" / "output"
    assert settings.work_base({**other, "ATTRIBUTION_WORK_DIR": "s3://b/runs"}) == "s3://b/runs"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("soon", "is not a number"),
        ("inf", "must be a finite number"),
        ("nan", "must be a finite number"),
        ("-1", "must be a finite number of 0 or more"),
    ],
)
def test_a_duration_from_the_environment_names_its_variable(monkeypatch, value, why):
    monkeypatch.setenv("ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS", value)
    with pytest.raises(settings.SettingError, match=f"env ATTRIBUTION_WAREHOUSE_LOCK_TIMEOUT_SECONDS='{value}' {why}"):
        settings.warehouse_lock_timeout_seconds()
