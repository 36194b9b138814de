"""The benchmark's own machinery on a tiny data set: every stage runs and is reported."""

from __future__ import annotations

from pathlib import Path

from include.chunks import write_chunks
from include.ihc_client import RequestLimits, journey_rows, pack_requests
from include.journeys import Journey
from include.records import Session
from tools import bench
from tools.sample_data import SampleSpec


def test_bench_measures_every_stage_and_writes_the_table(tmp_path: Path):
    measures = bench.bench_dataset("tiny", SampleSpec(seed=7, scale=0.02), tmp_path, with_dag=False)

    stages = [m.stage for m in measures]
    assert stages == [
        "generate (not a pipeline stage)",
        "init_db",
        "journeys",
        "train",
        "api",
        "write",
        "report",
        "export",
    ]
    by_stage = {m.stage: m for m in measures}
    assert by_stage["journeys"].detail["journeys"] > 0
    assert by_stage["train"].detail["journeys"] == by_stage["journeys"].detail["journeys"]
    assert 0 < by_stage["train"].detail["train_s"] < by_stage["train"].seconds
    assert (tmp_path / "tiny" / "engine" / "default.json").is_file()
    assert by_stage["api"].detail["engine_cpu_ms_per_request"] > 0
    assert by_stage["write"].detail["rows"] > 0 and by_stage["write"].detail["rows_per_s"] > 0
    assert by_stage["api"].detail["efficiency"] > 0
    at_200 = by_stage["api"].detail["requests_at_200_sessions"]
    assert at_200 == by_stage["api"].detail["whole_range_packing_at_200"] > 0
    assert all(0 < m.peak_rss_mb < 1000 for m in measures[1:])

    out = tmp_path / "results.md"
    bench.write_results({"tiny": measures}, tmp_path, out)
    text = out.read_text()
    assert "## tiny: " in text and "| journeys |" in text and "cores" in text


def test_peak_rss_is_read_from_this_process():
    assert 1 < bench.peak_rss_mb() < 2000


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
