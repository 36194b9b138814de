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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from include import settings
from tools.local_airflow import airflow_env

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

from include import warehouse  # noqa: E402
from tools import engine_parameters, engine_training, postgres_load, postgres_server  # noqa: E402
from tools.engine_parameters import ParameterFile  # noqa: E402
from tools.local_server import ServerConfig, ServerThread  # noqa: E402
from tools.sample_data import SampleSpec, generate  # noqa: E402

# The PostgreSQL server CI started (python3 -m tools.postgres_server start DIR), if any.
POSTGRES_URL_ENV = "ATTRIBUTION_TEST_POSTGRES_URL"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a PostgreSQL server, so the fast lane can leave them out."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if "postgres_server_url" in getattr(item, "fixturenames", ()) or "postgresql" in (
            callspec.id if callspec else ""
        ):
            item.add_marker(pytest.mark.postgres)


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


@pytest.fixture(scope="session")
def trained_engine(sample_db_template: Path, test_root: Path) -> ParameterFile:
    """The default conversion type trained on (a copy of) the sample, as the demo does it."""
    db = test_root / "engine" / "challenge.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sample_db_template, db)
    window = settings.DateRange(settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)
    trained = engine_training.train(
        warehouse.sqlite_target(db), window, settings.DEFAULT_CONV_TYPE_ID, int(settings.LOOKBACK_DAYS.default)
    )
    return engine_parameters.read(engine_parameters.write(test_root / "engine", trained))


@pytest.fixture
def server_config(trained_engine: ParameterFile) -> ServerConfig:
    return ServerConfig(parameters={trained_engine.conv_type_id: trained_engine})


@pytest.fixture
def local_server(server_config: ServerConfig):
    """The local IHC server on a free 127.0.0.1 port; yields its base URL; stops afterwards."""
    with ServerThread(server_config) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """The PostgreSQL server CI started, or a throw-away one on 127.0.0.1 for this session."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="ihc-pg-"))
    try:
        url = postgres_server.start(folder)
    except FileNotFoundError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"{exc} or set {POSTGRES_URL_ENV}")
    yield url
    postgres_server.stop(folder)


def _database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def postgres_admin(postgres_server_url: str) -> Iterator[warehouse.Warehouse]:
    with warehouse.postgres_target(postgres_server_url, "admin").open() as admin:
        yield admin


@pytest.fixture
def postgres_url(postgres_admin: warehouse.Warehouse, postgres_server_url: str) -> Iterator[str]:
    """A new empty database, dropped after the test."""
    name = f"ihc_test_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f"CREATE DATABASE {name}")
    yield _database_url(postgres_server_url, name)
    postgres_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def airflow_metadata_url(postgres_admin: warehouse.Warehouse, postgres_server_url: str) -> Iterator[str]:
    """An empty database for an Airflow metadata DB (what ATTRIBUTION_AIRFLOW_DB names): Airflow
    refuses to create backfills on SQLite under concurrent writes."""
    name = f"airflow_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f"CREATE DATABASE {name}")
    yield _database_url(postgres_server_url, name)
    postgres_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def sample_postgres_template(postgres_admin: warehouse.Warehouse, postgres_server_url: str, sample_db_template: Path):
    """A database holding the 1x sample's input tables, copied once per session."""
    name = f"ihc_sample_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f"CREATE DATABASE {name}")
    dest = warehouse.postgres_target(_database_url(postgres_server_url, name), name)
    with warehouse.connect_sqlite(sample_db_template) as source, dest.open() as target:
        postgres_load.copy_inputs(source, target)
    yield name
    postgres_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def sample_postgres(postgres_admin: warehouse.Warehouse, postgres_server_url: str, sample_postgres_template: str):
    """A fresh copy of the sample database on the PostgreSQL server; its URL."""
    name = f"ihc_test_{uuid.uuid4().hex[:12]}"
    postgres_admin.execute(f"CREATE DATABASE {name} TEMPLATE {sample_postgres_template}")
    yield _database_url(postgres_server_url, name)
    postgres_admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
