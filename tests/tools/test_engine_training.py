"""Training the offline engine from a warehouse's journeys: known parameters come back, both
dialects give the same file, a range without multi-session journeys writes nothing."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from include import schema, settings, warehouse
from include.journeys import Journey
from include.records import Session
from include.settings import DateRange
from tools import engine_parameters, engine_training
from tools.engine_training import Samples, TrainingError, journey_samples, percentile, trained_parameters

WINDOW = DateRange("2023-09-01", "2023-09-07")
MEAN_GAP_HOURS = 10.0
JOURNEYS = 4000


def session(sid: str, at: str) -> Session:
    return Session(sid, "u1", at, "Direct", 1, 1, 0)


def test_journey_samples_are_the_gaps_and_times_to_conversion_in_hours() -> None:
    journeys = [
        Journey("c1", (session("a", "2023-09-01 08:00:00"),)),
        Journey(
            "c2",
            (
                session("b", "2023-09-01 08:00:00"),
                session("c", "2023-09-01 09:30:00"),
                session("d", "2023-09-02 09:30:00"),
            ),
        ),
    ]
    samples = journey_samples(journeys)
    assert (samples.journeys, samples.multi_session_journeys) == (2, 1)
    assert samples.gaps == [1.5, 24.0]
    assert samples.tocs == [25.5, 24.0]


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0
    assert percentile([0.0, 10.0], 55) == pytest.approx(5.5)
    assert percentile([7.0], 90) == 7.0


def test_trained_parameters_follow_the_rule() -> None:
    gaps = [float(h) for h in range(1, 101)]  # 1 .. 100 h
    params = trained_parameters(Samples(journeys=100, multi_session_journeys=100, gaps=gaps, tocs=gaps))
    assert params.initializer_start_hours == pytest.approx(55.45)
    assert params.initializer_end_hours == pytest.approx(90.1)
    assert len(params.toc_quantiles_hours) == engine_training.QUANTILE_STEPS + 1
    assert params.toc_quantiles_hours[0] == 1.0 and params.toc_quantiles_hours[-1] == 100.0
    assert params.toc_share(50.5) == pytest.approx(0.5, abs=0.001)
    assert params.closer_levels == (0.08, 0.70)
    assert params.weights == (0.323, 0.374, 0.303)
    assert (params.holder_power, params.holder_divisor) == (2.5, 4.0)


# --- a warehouse whose journeys come from a known distribution ----------------------------


def generated_rows(seed: int = 7) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Conversions with 2-session journeys whose gap (= the first session's time to conversion)
    is exponential with mean MEAN_GAP_HOURS; some single-session journeys and some without
    sessions, which carry no gap; sessions after a conversion, which are not in its journey."""
    rng = random.Random(seed)
    sessions, conversions, costs = [], [], []
    first = datetime(2023, 9, 1)
    for n in range(JOURNEYS):
        user = f"u{n:05d}"
        converted = first + timedelta(seconds=rng.randrange(7 * 86_400))
        conversions.append((f"c{n:05d}", user, converted.strftime("%Y-%m-%d"), converted.strftime("%H:%M:%S"), 50.0))
        kind = rng.random()
        last = converted - timedelta(seconds=60)
        times = []
        if kind < 0.8:
            gap = rng.expovariate(1 / MEAN_GAP_HOURS)
            times = [last - timedelta(seconds=round(gap * 3600)), last]
        elif kind < 0.95:
            times = [last]
        times.append(converted + timedelta(hours=2))
        for i, at in enumerate(times):
            sid = f"s{n:05d}-{i}"
            sessions.append((sid, user, at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S"), "Direct", 1, 1, 0))
            costs.append((sid, 0.1))
    return sessions, conversions, costs


def fill(db: warehouse.Warehouse) -> None:
    sessions, conversions, costs = generated_rows()
    schema.create_input_tables(db)
    with db.transaction():
        db.insert_many("session_sources", schema.INPUT_COLUMNS["session_sources"], sessions)
        db.insert_many("conversions", schema.INPUT_COLUMNS["conversions"], conversions)
        db.insert_many("session_costs", schema.INPUT_COLUMNS["session_costs"], costs)


@pytest.fixture(scope="module")
def generated_sqlite(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("training") / "generated.db"
    with warehouse.connect_sqlite(path, create=True) as db:
        fill(db)
    return path


def exponential_quantile(p: float) -> float:
    return -MEAN_GAP_HOURS * math.log(1 - p)


def tolerance(p: float, n: int) -> float:
    """Four standard errors of the p-quantile of n exponential samples."""
    density = (1 - p) / MEAN_GAP_HOURS
    return 4 * math.sqrt(p * (1 - p) / n) / density


def test_training_recovers_the_chosen_bounds_and_distribution(generated_sqlite: Path) -> None:
    trained = engine_training.train(warehouse.sqlite_target(generated_sqlite), WINDOW, "purchase", 30)
    on, params = trained.trained_on, trained.parameters
    n = on.gaps
    assert on.conversions == JOURNEYS
    assert 0.78 * JOURNEYS < on.multi_session_journeys == n == on.toc_values < 0.82 * JOURNEYS
    assert 0.93 * JOURNEYS < on.journeys < 0.97 * JOURNEYS
    assert params.initializer_start_hours == pytest.approx(exponential_quantile(0.55), abs=tolerance(0.55, n))
    assert params.initializer_end_hours == pytest.approx(exponential_quantile(0.90), abs=tolerance(0.90, n))
    for p in (0.08, 0.25, 0.5, 0.7, 0.9):
        assert params.toc_share(exponential_quantile(p)) == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / n))


def test_sqlite_and_postgresql_warehouses_give_the_same_file(generated_sqlite: Path, postgres_url: str, tmp_path):
    target = warehouse.postgres_target(postgres_url, "test")
    with target.open() as db:
        fill(db)
    files = []
    for name, source in (("sqlite", warehouse.sqlite_target(generated_sqlite)), ("postgres", target)):
        trained = engine_training.train(source, WINDOW, "purchase", 30)
        document = orjson.loads(engine_parameters.write(tmp_path / name, trained).read_bytes())
        assert document["trained_on"].pop("warehouse") == source.label
        files.append(document)
    assert files[0] == files[1]
    assert len(files[0]["closer"]["toc_quantiles_hours"]) == engine_training.QUANTILE_STEPS + 1


def test_a_range_without_multi_session_journeys_fails_naming_it_and_writes_nothing(generated_sqlite, tmp_path):
    target = warehouse.sqlite_target(generated_sqlite)
    with pytest.raises(TrainingError, match=r"from 2023-10-01 to 2023-10-31.*no journey of more than one session"):
        engine_training.train(target, DateRange("2023-10-01", "2023-10-31"), "purchase", 30)
    done = train_cli("--warehouse", str(generated_sqlite), "--start", "2023-10-01", "--end", "2023-10-31", out=tmp_path)
    assert done.returncode == 1
    assert "2023-10-01 to 2023-10-31" in done.stderr and "nothing was written" in done.stderr
    assert list(tmp_path.iterdir()) == []


def train_cli(*args: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, engine_parameters.ENGINE_DIR_ENV: str(out)}
    return subprocess.run(
        [sys.executable, "-m", "tools.engine_training", *args],
        cwd=settings.PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_writes_the_file_named_for_the_conversion_type_and_prints_the_values(generated_sqlite, tmp_path):
    done = train_cli("--warehouse", f"sqlite:///{generated_sqlite}", "--conv-type", "purchase", out=tmp_path)
    assert done.returncode == 0, done.stderr
    trained = engine_parameters.read(tmp_path / "purchase.json")
    assert f"initializer bounds        {trained.parameters.initializer_start_hours:.2f} h" in done.stdout
    assert str(tmp_path / "purchase.json") in done.stdout
    assert (trained.trained_on.start, trained.trained_on.end) == (settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)


def test_the_command_reads_a_postgresql_url_and_keeps_its_password_out(postgres_url: str, tmp_path):
    with warehouse.postgres_target(postgres_url, "test").open() as db:
        fill(db)
    parts = urlsplit(postgres_url)
    # the test server trusts local connections: the password is accepted and ignored
    url = parts._replace(netloc=f"{parts.username}:s3cret-pw@{parts.hostname}:{parts.port}").geturl()
    done = train_cli("--warehouse", url, "--conv-type", "pg", out=tmp_path)
    assert done.returncode == 0, done.stderr
    trained = engine_parameters.read(tmp_path / "pg.json")
    assert trained.trained_on.multi_session_journeys > 0
    assert (
        trained.trained_on.warehouse
        == f"PostgreSQL postgresql://{parts.username}@{parts.hostname}:{parts.port}{parts.path}"
    )
    assert "s3cret-pw" not in (tmp_path / "pg.json").read_text() + done.stdout + done.stderr


def test_a_missing_warehouse_fails_naming_it(tmp_path):
    done = train_cli("--warehouse", str(tmp_path / "nope.db"), out=tmp_path / "engine")
    assert done.returncode == 1
    assert f"warehouse database {tmp_path / 'nope.db'} does not exist" in done.stderr
    assert not (tmp_path / "engine").exists()


def test_a_malformed_date_flag_is_named_as_the_flag(generated_sqlite, tmp_path):
    done = train_cli("--warehouse", str(generated_sqlite), "--start", "2023-09-31", out=tmp_path / "engine")
    assert done.returncode == 1
    assert "--start='2023-09-31' is not a date of the form YYYY-MM-DD" in done.stderr
    assert not (tmp_path / "engine").exists()


@pytest.fixture
def sample_data_dir(sample_db_template: Path, tmp_path: Path, monkeypatch) -> Path:
    """A data folder holding a copy of the sample, as ATTRIBUTION_DATA_DIR; its database path."""
    data = tmp_path / "data"
    data.mkdir()
    db = data / "challenge.db"
    db.write_bytes(sample_db_template.read_bytes())
    monkeypatch.setenv("ATTRIBUTION_DATA_DIR", str(data))
    return db


def test_ensure_default_reuses_a_file_newer_than_the_warehouse_and_retrains_an_older_one(
    sample_data_dir: Path, tmp_path: Path
):
    db = sample_data_dir
    first = engine_training.ensure_default(tmp_path / "engine")
    path = Path(first.path)
    assert path == tmp_path / "engine" / "default.json"
    assert first.trained_on.warehouse == f"SQLite {db}"
    os.utime(path, (1, 1))  # older than the warehouse: trained again
    engine_training.ensure_default(tmp_path / "engine")
    assert path.stat().st_mtime > 1
    stamp = path.stat().st_mtime + 10
    os.utime(path, (stamp, stamp))  # newer than the warehouse: reused as it is
    assert engine_training.ensure_default(tmp_path / "engine") == first
    assert path.stat().st_mtime == stamp


def test_ensure_default_keeps_a_default_file_the_user_trained_on_something_else(sample_data_dir: Path, tmp_path: Path):
    db = sample_data_dir
    window = DateRange("2023-09-03", "2023-09-05")
    own = engine_training.train_and_write(warehouse.sqlite_target(db), window, "default", 30, tmp_path / "engine")
    os.utime(own.path, (1, 1))  # older than the warehouse, but not the sample's training
    assert engine_training.ensure_default(tmp_path / "engine") == own
    assert (own.trained_on.start, own.trained_on.end) == ("2023-09-03", "2023-09-05")


def test_sqlite_urls_follow_the_sqlalchemy_form(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert engine_training.warehouse_target("sqlite:///data/x.db").label == "SQLite data/x.db"
    assert engine_training.warehouse_target("sqlite:////abs/x.db").label == "SQLite /abs/x.db"
    assert engine_training.warehouse_target("plain/x.db").label == "SQLite plain/x.db"
