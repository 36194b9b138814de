"""Shared fixtures. Airflow's environment is set here, before anything imports Airflow.

AIRFLOW_HOME, the metadata DB and the pipeline's data folder live in a throw-away temp dir,
never in the user's home or the project's own data/.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from include import settings
from include.local_airflow import airflow_env

_ROOT = Path(tempfile.mkdtemp(prefix="ihc-tests-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
os.environ.update(airflow_env(_ROOT / "airflow"))
os.environ.update(
    {
        "ATTRIBUTION_DATA_DIR": str(_ROOT / "data"),
        "ATTRIBUTION_RETRY_DELAY_SECONDS": "1",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    }
)

# Airflow puts the DAGs folder on sys.path of the processes it starts; do the same in-process.
sys.path.insert(0, str(settings.PROJECT_ROOT / "dags"))

from include.local_server import ServerConfig, ServerThread  # noqa: E402
from include.sample_data import SampleSpec, generate  # noqa: E402


@pytest.fixture(scope="session")
def test_root() -> Path:
    return _ROOT


@pytest.fixture(scope="session")
def sample_db_template(test_root: Path) -> Path:
    """The 1x sample database, generated once per session; copy it before writing to it."""
    path = test_root / "template" / "challenge.db"
    generate(path, SampleSpec(seed=42))
    return path


@pytest.fixture
def sample_db(sample_db_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "challenge.db"
    shutil.copyfile(sample_db_template, path)
    return path


@pytest.fixture
def server_config() -> ServerConfig:
    return ServerConfig()


@pytest.fixture
def local_server(server_config: ServerConfig):
    """The local IHC server on a free 127.0.0.1 port; yields its base URL; stops afterwards."""
    with ServerThread(server_config) as url:
        yield url
