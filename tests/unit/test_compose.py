"""docker-compose.yml and .env, read as files and as Docker Compose resolves them (its ``config``
needs no Docker engine, and none runs here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from include import settings

ROOT = settings.PROJECT_ROOT
# make test and make test-fast take it out of the sdist pinned in requirements-compose.txt.
COMPOSE = Path(sys.executable).with_name("docker-compose")
# env_file entries with path and required came in Compose 2.24.
NEEDED_COMPOSE = (2, 24)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def env_file() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (ROOT / ".env").read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs if not key.lstrip().startswith("#")}


def compose_run(project: Path, *args: str) -> str:
    """Docker Compose in ``project``, with none of this shell's variables in its substitutions."""
    assert COMPOSE.is_file(), f"{COMPOSE} is missing: make test-fast installs it"
    env = {"PATH": os.environ["PATH"], "HOME": str(project)}
    return subprocess.run(
        [str(COMPOSE), *args], cwd=project, env=env, capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the compose file and .env, so a test's .env.local never meets a real one."""
    for name in ("docker-compose.yml", ".env"):
        shutil.copyfile(ROOT / name, tmp_path / name)
    return tmp_path


def resolved(project: Path) -> dict:
    """Every service, the workers profile's too, as ``docker compose up`` would create it."""
    return json.loads(compose_run(project, "--profile", "workers", "config", "--format", "json"))


def airflow_services(config: dict) -> dict[str, dict]:
    return {name: service for name, service in config["services"].items() if name not in ("postgres", "redis")}


def common_env(compose: dict) -> dict:
    return compose["x-airflow-common"]["environment"]


def default_services(compose: dict) -> set[str]:
    """What ``docker compose up`` starts: the services outside every profile."""
    return {name for name, service in compose["services"].items() if not service.get("profiles")}


def test_local_executor_with_postgres_and_no_celery_by_default(compose):
    services = default_services(compose)
    assert {
        "postgres",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    } <= services
    assert not services & {"redis", "airflow-worker", "flower"}
    env = common_env(compose)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert "8080:8080" in compose["services"]["airflow-apiserver"]["ports"]


def test_init_creates_login_pool_variables_and_connections(compose):
    init = compose["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_USERNAME"] == "airflow"
    assert init["environment"]["_AIRFLOW_WWW_USER_PASSWORD"] == "airflow"
    assert f"pools set {settings.API_POOL}" in script
    for variable in settings.VARIABLES:  # every declared Variable, with its declared default, if not set
        described = f'--description "{variable.ui_description}"'
        assert (
            f"variables get {variable.name} >/dev/null 2>&1 || airflow variables set {described} {variable.name} "
            in script
        )
        set_default = re.search(rf"variables set {re.escape(described)} {variable.name} (\S+)", script)
        assert float(set_default.group(1)) == variable.default, variable.name
    assert len(re.findall(r"variables set --description \"[^\"]*\" ihc_", script)) == len(settings.VARIABLES)
    assert "connections add ihc_api" in script and "connections add ihc_warehouse" in script


def test_local_ihc_server_is_the_default_api_target_and_trains_before_it_serves(compose):
    server = compose["services"]["ihc-local-api"]
    script = "\n".join(server["command"])
    assert script.index("tools.engine_training --ensure-default") < script.index("tools.local_server")
    assert "set -e" in script, "a failed training stops the service instead of serving without parameters"
    # the sample database the training reads is written by airflow-init
    assert server["depends_on"] == {"airflow-init": {"condition": "service_completed_successfully"}}
    assert "http://ihc-local-api:8765" in "\n".join(compose["services"]["airflow-init"]["command"])


def test_project_folders_are_mounted(compose):
    volumes = compose["x-airflow-common"]["volumes"]
    for folder in ("dags", "include", "tools", "plugins", "data", "logs"):
        assert f"./{folder}:/opt/airflow/{folder}" in volumes


def test_date_range_and_image_come_from_env_file(compose, env_file):
    env = common_env(compose)
    assert env["ATTRIBUTION_START_DATE"].startswith("${ATTRIBUTION_START_DATE")
    assert env["ATTRIBUTION_END_DATE"].startswith("${ATTRIBUTION_END_DATE")
    assert "${AIRFLOW_IMAGE_NAME" in compose["x-airflow-common"]["build"]["args"]["AIRFLOW_IMAGE_NAME"]
    assert {"ATTRIBUTION_START_DATE", "ATTRIBUTION_END_DATE", "AIRFLOW_IMAGE_NAME"} <= set(env_file)
    assert env_file["ATTRIBUTION_START_DATE"] == settings.SAMPLE_START_DATE


def test_fernet_key_in_env_local_reaches_every_airflow_service(project):
    key = Fernet.generate_key().decode()
    (project / ".env.local").write_text(f"AIRFLOW__CORE__FERNET_KEY={key}\n")
    services = airflow_services(resolved(project))
    assert set(services) == {
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "ihc-local-api",
    }
    assert {name: service["environment"]["AIRFLOW__CORE__FERNET_KEY"] for name, service in services.items()} == {
        name: key for name in services
    }


def test_without_env_local_every_service_has_the_same_empty_key(project):
    """Empty, not unset: unset, each container would write its own airflow.cfg with its own key."""
    services = airflow_services(resolved(project))
    assert {service["environment"]["AIRFLOW__CORE__FERNET_KEY"] for service in services.values()} == {""}


def test_needed_compose_version_is_stated_and_the_tests_compose_has_it(project):
    stated = "Compose {}.{} or newer".format(*NEEDED_COMPOSE)
    assert stated in (ROOT / "docker-compose.yml").read_text().split("\n\n", 1)[0]
    assert stated in (ROOT / "README.md").read_text()
    version = compose_run(project, "version", "--short").strip()
    assert tuple(int(part) for part in version.split(".")[:2]) >= NEEDED_COMPOSE, version
    env_files = yaml.safe_load((project / "docker-compose.yml").read_text())["x-airflow-common"]["env_file"]
    assert env_files == [{"path": ".env"}, {"path": ".env.local", "required": False}]


def test_env_file_in_git_holds_no_secret(env_file):
    assert "IHC_API_KEY" not in env_file
    assert env_file["AIRFLOW__CORE__FERNET_KEY"] == ""
    secret_like = [k for k, v in env_file.items() if re.search(r"KEY|SECRET|PASSWORD|TOKEN", k) and v]
    assert secret_like == ["IHC_LOCAL_API_KEY"]
    assert env_file["IHC_LOCAL_API_KEY"] == settings.LOCAL_API_KEY


def test_warehouse_connection_can_be_the_compose_postgres(compose, env_file):
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    url = common_env(compose)["IHC_WAREHOUSE_POSTGRES_URL"]
    assert url.startswith("postgresql://") and "@postgres:5432/" in url, "the compose's postgres service"
    assert env_file["IHC_WAREHOUSE"] == "sqlite"
    assert '"$${IHC_WAREHOUSE:-sqlite}" = postgres' in script
    postgres_branch = script.split("= postgres ]; then", 1)[1].split("else", 1)[0]
    assert "tools.postgres_load" in postgres_branch
    assert 'connections add ihc_warehouse --conn-uri "$${IHC_WAREHOUSE_POSTGRES_URL}"' in postgres_branch
    assert "providers-postgres" in (ROOT / "requirements.txt").read_text()


def test_workers_profile_adds_redis_and_celery_workers_only(compose):
    workers = {name for name, service in compose["services"].items() if service.get("profiles")}
    assert workers == {"redis", "airflow-worker"}
    assert all(compose["services"][name]["profiles"] == ["workers"] for name in workers)
    worker = compose["services"]["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert worker["deploy"]["replicas"] == "${WORKER_REPLICAS:-2}"
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    env = common_env(compose)
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:airflow@postgres/")
    assert env["ATTRIBUTION_WORK_DIR"] == "${ATTRIBUTION_WORK_DIR:-}", "run folders on s3:// for workers apart"
    header = (ROOT / "docker-compose.yml").read_text().split("\n\n", 1)[0]
    assert "AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile workers up" in header
    requirements = (ROOT / "requirements.txt").read_text()
    assert "apache-airflow-providers-celery" in requirements and "apache-airflow-providers-amazon" in requirements
