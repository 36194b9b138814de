"""The training CSV for the IHC web app: read back with the csv module, from journeys and from a
run's chunk files, written whole or not at all."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.chunks import write_chunks
from include.journeys import Journey
from include.records import Session
from include.training_export import (
    HEADER,
    EmptyExportError,
    TrainingExport,
    write_training_csv,
    write_training_csv_from_chunks,
)


def journey(conv_id: str, *channels: str) -> Journey:
    return Journey(
        conv_id,
        tuple(
            Session(f"{conv_id}-s{i}", f"user-{conv_id}", f"2023-09-0{i + 1} 10:00:00", channel, 1, i % 2, 0)
            for i, channel in enumerate(channels)
        ),
    )


JOURNEYS = [
    journey("c1", "Direct Traffic"),
    journey("c2", "Paid Search, Brand", 'Say "hi" Ads', "Café Ads"),
    journey("c3", "Referral", "Newsletter & Email"),
]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == HEADER
        return list(reader)


def test_one_row_per_session_in_time_order_with_the_api_fields(tmp_path: Path) -> None:
    path = tmp_path / "training.csv"
    assert write_training_csv(iter(JOURNEYS), path) == TrainingExport(str(path), journeys=3, sessions=6)
    rows = read_rows(path)
    assert HEADER == (
        "conversion_id",
        "session_id",
        "timestamp",
        "channel_label",
        "holder_engagement",
        "closer_engagement",
        "conversion",
        "impression_interaction",
    )
    assert [(r["conversion_id"], r["session_id"]) for r in rows] == [
        (j.conversion_id, s.session_id) for j in JOURNEYS for s in j.sessions
    ]
    assert rows[2] == {
        "conversion_id": "c2",
        "session_id": "c2-s1",
        "timestamp": "2023-09-02 10:00:00",
        "channel_label": 'Say "hi" Ads',
        "holder_engagement": "1",
        "closer_engagement": "1",
        "conversion": "0",
        "impression_interaction": "0",
    }
    for conv_id in ("c1", "c2", "c3"):
        own = [r for r in rows if r["conversion_id"] == conv_id]
        assert [r["timestamp"] for r in own] == sorted(r["timestamp"] for r in own)
        assert [r["conversion"] for r in own] == ["0"] * (len(own) - 1) + ["1"]


def test_rfc_4180_quoting_and_utf_8(tmp_path: Path) -> None:
    path = tmp_path / "training.csv"
    write_training_csv(JOURNEYS, path)
    raw = path.read_bytes().decode("utf-8")
    assert raw.startswith(",".join(HEADER) + "\r\n")
    assert raw.count("\r\n") == 7 and "\n" not in raw.replace("\r\n", "")
    assert ',"Paid Search, Brand",' in raw  # quoted: one field, not two
    assert ',"Say ""hi"" Ads",' in raw  # quoted, its quotes doubled
    assert ",Café Ads," in raw and ",Newsletter & Email," in raw  # nothing to quote
    assert [r["channel_label"] for r in read_rows(path)][1:4] == ["Paid Search, Brand", 'Say "hi" Ads', "Café Ads"]


def test_a_run_s_chunk_files_give_the_same_bytes(tmp_path: Path) -> None:
    chunks = write_chunks(JOURNEYS, tmp_path / "run", chunk_size=2)
    assert len(chunks) == 2
    from_chunks = write_training_csv_from_chunks([tmp_path / "run" / c.file for c in chunks], tmp_path / "a.csv")
    from_journeys = write_training_csv(JOURNEYS, tmp_path / "b.csv")
    assert (from_chunks.journeys, from_chunks.sessions) == (from_journeys.journeys, from_journeys.sessions)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_failure_mid_write_leaves_no_partial_file_and_keeps_the_earlier_one(tmp_path: Path) -> None:
    def failing() -> Iterator[Journey]:
        yield from JOURNEYS[:2]
        raise RuntimeError("warehouse gone")

    path = tmp_path / "out" / "training.csv"
    with pytest.raises(RuntimeError, match="warehouse gone"):
        write_training_csv(failing(), path)
    assert list((tmp_path / "out").iterdir()) == []

    write_training_csv(JOURNEYS[:1], path)
    earlier = path.read_bytes()
    with pytest.raises(RuntimeError, match="warehouse gone"):
        write_training_csv(failing(), path)
    assert path.read_bytes() == earlier
    assert list((tmp_path / "out").iterdir()) == [path]


def test_no_journeys_write_nothing(tmp_path: Path) -> None:
    path = tmp_path / "training.csv"
    with pytest.raises(EmptyExportError, match="no journeys"):
        write_training_csv([], path)
    with pytest.raises(EmptyExportError):
        write_training_csv_from_chunks([], path)
    assert list(tmp_path.iterdir()) == []
