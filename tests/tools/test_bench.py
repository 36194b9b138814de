"""The benchmark's own machinery on a tiny data set: every stage runs and is reported."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from include import settings, warehouse
from include.chunks import write_chunks
from include.ihc_client import RequestLimits, journey_rows
from include.journeys import Journey
from include.records import Session
from tests.api_rows import pack_requests
from tools import bench
from tools.sample_data import SampleSpec

TINY = SampleSpec(seed=7, scale=0.02)
STAGES = ["init_db", "journeys", "train", "api", "transport", bench.RAW_TRANSPORT, "write", "report", "floor", "export"]


def test_bench_measures_every_stage_and_writes_the_table(tmp_path: Path):
    measures = bench.bench_dataset("tiny", TINY, tmp_path, False, ["sqlite"])["sqlite"]

    stages = [m.stage for m in measures]
    assert stages == ["generate (not a pipeline stage)", *STAGES]
    by_stage = {m.stage: m for m in measures}
    assert by_stage["journeys"].detail["journeys"] > 0
    assert by_stage["train"].detail["journeys"] == by_stage["journeys"].detail["journeys"]
    assert 0 < by_stage["train"].detail["train_s"] < by_stage["train"].seconds
    assert (tmp_path / "tiny" / "engine" / "default.json").is_file()
    assert by_stage["api"].detail["engine_cpu_ms_per_request"] > 0
    assert by_stage["write"].detail["rows"] > 0 and by_stage["write"].detail["rows_per_s"] > 0
    assert by_stage["api"].detail["efficiency"] > 0
    for floor in ("transport", bench.RAW_TRANSPORT):
        assert by_stage[floor].detail["requests"] == by_stage["api"].detail["requests"]
        assert by_stage[floor].detail["efficiency"] > 0
    efficiencies = by_stage["api"].detail["efficiency_runs"]
    assert len(efficiencies) == bench.API_RUNS
    assert by_stage["api"].detail["efficiency"] == pytest.approx(sorted(efficiencies)[bench.API_RUNS // 2], abs=1e-3)
    at_200 = by_stage["api"].detail["requests_at_200_sessions"]
    assert at_200 == by_stage["api"].detail["whole_range_packing_at_200"] > 0
    assert by_stage["api"].detail["chunks_at_200_sessions"] >= 1
    assert 0 < by_stage["report"].detail["report_s"] < by_stage["report"].seconds
    report = by_stage["report"].detail
    assert min(report["markov_s"], report["roles_s"], report["reporting_s"]) > 0
    assert report["reporting_s"] + report["roles_s"] + report["models_s"] < by_stage["report"].seconds
    assert all(0 < report[f"{part}_mb"] <= by_stage["report"].peak_rss_mb for part in ("reporting", "roles", "markov"))
    assert 0 < by_stage["floor"].detail["floor_s"] < by_stage["floor"].seconds
    assert by_stage["floor"].detail["floor_rows"] > 0
    assert all(0 < m.peak_rss_mb < 1000 for m in measures[1:])

    out = tmp_path / "results.md"
    bench.write_results({"tiny": {"sqlite": measures}}, tmp_path, out)
    text = out.read_text()
    assert "## tiny: " in text and "### SQLite" in text and "| journeys |" in text and "cores" in text
    assert "| tiny | SQLite |" in text and "| report / floor |" in text and "| API step / floor |" in text
    assert "| (roles + Markov) / channel_reporting |" in text and "| peak RSS of a Markov reader process |" in text


def test_bench_runs_every_stage_on_a_postgresql_copy_and_drops_it(tmp_path: Path, postgres_server_url: str):
    runs = bench.bench_dataset("tiny", TINY, tmp_path, False, ["sqlite", "postgres"], postgres_server_url)

    assert [m.stage for m in runs["postgres"]] == ["load (not a pipeline stage)", *STAGES]
    sqlite, postgres = ({m.stage: m.detail for m in runs[db]} for db in ("sqlite", "postgres"))
    assert postgres["report"]["report_rows"] == sqlite["report"]["report_rows"] > 0
    assert postgres["floor"]["floor_rows"] == sqlite["floor"]["floor_rows"]
    assert postgres["write"]["rows"] == sqlite["write"]["rows"]
    with warehouse.postgres_target(postgres_server_url, "check").open() as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = 'bench_tiny'").fetchone() is None

    out = tmp_path / "results.md"
    bench.write_results({"tiny": runs}, tmp_path, out)
    postgres_parts = next(
        line for line in out.read_text().splitlines() if line.startswith("| tiny | PostgreSQL |") and "MB" in line
    )
    assert postgres_parts.endswith("| none (read in the server) |")


@pytest.fixture
def open_work_folder() -> Iterator[Path]:
    """A work folder the server's own user can reach (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="ihc-bench-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.postgres
def test_the_bench_server_runs_on_localhost_in_the_work_folder_and_is_removed(open_work_folder: Path):
    with bench.bench_postgres(None, open_work_folder) as url:
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        with warehouse.postgres_target(url, "bench").open() as db:
            assert db.execute("SHOW work_mem").fetchone()[0] == bench.POSTGRES_SETTINGS["work_mem"]
        assert len(list(open_work_folder.glob("postgres-*"))) == 1
    assert list(open_work_folder.glob("postgres-*")) == []


def fresh_process_megabytes(probe: str) -> list[float]:
    """The numbers a probe prints, run in a fresh process as each bench stage is: the suite's own
    process may have grown large."""
    out = subprocess.run(
        [sys.executable, "-c", f"from tools import bench; {probe}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=settings.PROJECT_ROOT,
    )
    return [float(word) for word in out.stdout.split()]


def test_peak_rss_is_this_processs_own_high_water_mark():
    before, after = fresh_process_megabytes(
        "before = bench.peak_rss_mb(); block = b'x' * (300 * 2**20); print(before, bench.peak_rss_mb())"
    )
    assert 1 < before < 500
    assert after - before >= 299


def test_a_reset_peak_rss_forgets_what_was_freed_before():
    high, after = fresh_process_megabytes(
        "block = b'x' * (300 * 2**20); del block; high = bench.peak_rss_mb(); "
        "bench.reset_peak_rss(); print(high, bench.peak_rss_mb())"
    )
    assert high - after >= 250


def test_requests_at_counts_chunk_by_chunk_against_one_packing_of_all(tmp_path: Path):
    journeys = [
        Journey(
            f"c{i}",
            tuple(
                Session(f"c{i}-s{k}", f"u{i}", f"2023-09-01 10:{k:02d}:00", "Referral", 1, 0, 0)
                for k in range(1 + i % 5)
            ),
        )
        for i in range(300)
    ]
    aligned = write_chunks(iter(journeys), tmp_path / "aligned", 40, RequestLimits(100, 20))
    plain = write_chunks(iter(journeys), tmp_path / "plain", 40)
    assert len(aligned) > 3

    chunked, whole = bench.requests_at(20, 100, [tmp_path / "aligned" / c.file for c in aligned])
    assert chunked == whole == len(pack_requests([journey_rows(j) for j in journeys], 100, 20))
    plain_chunked, plain_whole = bench.requests_at(20, 100, [tmp_path / "plain" / c.file for c in plain])
    assert plain_whole == whole
    assert plain_chunked > whole, "chunks cut anywhere need more requests"
