from __future__ import annotations

import os
from pathlib import Path

import orjson

from include import settings
from tools import local_airflow
from tools.local_airflow import airflow_env, local_api_connection


def test_airflow_env_keeps_everything_inside_the_given_home(tmp_path: Path):
    env = airflow_env(tmp_path / "home", {"PYTHONPATH": "/elsewhere", "HOME": "/root"})
    assert env["AIRFLOW_HOME"] == str(tmp_path / "home")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'home' / 'airflow.db'}"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(settings.PROJECT_ROOT / "dags")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["PYTHONPATH"].split(os.pathsep) == [
        str(settings.PROJECT_ROOT),
        str(settings.PROJECT_ROOT / "dags"),
        "/elsewhere",
    ]


def test_default_airflow_home_is_inside_the_project(monkeypatch):
    monkeypatch.delenv("ATTRIBUTION_AIRFLOW_HOME", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", "/root/airflow")
    assert local_airflow.airflow_home() == settings.PROJECT_ROOT / ".airflow"


def test_local_api_connection_is_an_airflow_conn_json():
    env = local_api_connection("http://127.0.0.1:9999", "k3y", "shop")
    conn = orjson.loads(env["AIRFLOW_CONN_IHC_API"])
    assert conn == {
        "conn_type": "http",
        "host": "http://127.0.0.1:9999",
        "password": "k3y",
        "extra": {"conv_type_id": "shop"},
    }
