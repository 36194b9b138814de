"""The synthetic warehouse: deterministic, scalable, and shaped like the published facts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tools.sample_data import CHANNELS, SampleSpec, generate

TABLES = ("conversions", "session_sources", "session_costs")


def dump(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall() for table in TABLES}


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """Databases at scale 0.05: seed 7 twice, seed 8 once; and seed 7 at scale 0.1."""
    root = tmp_path_factory.mktemp("sample")
    paths = {
        "a": root / "a.db",
        "a_again": root / "a_again.db",
        "other_seed": root / "other.db",
        "double": root / "double.db",
    }
    specs = {
        "a": SampleSpec(seed=7, scale=0.05),
        "a_again": SampleSpec(seed=7, scale=0.05),
        "other_seed": SampleSpec(seed=8, scale=0.05),
        "double": SampleSpec(seed=7, scale=0.1),
    }
    counts = {name: generate(paths[name], spec) for name, spec in specs.items()}
    return {"paths": paths, "counts": counts, "root": root}


def test_same_seed_gives_the_same_rows(small):
    first, second = dump(small["paths"]["a"]), dump(small["paths"]["a_again"])
    assert first == second
    assert all(first[table] for table in TABLES)


def test_another_seed_gives_other_rows(small):
    first, other = dump(small["paths"]["a"]), dump(small["paths"]["other_seed"])
    # compare content, not only the ids (which carry the seed)
    assert [row[4] for row in first["conversions"]] != [row[4] for row in other["conversions"]]
    assert sorted(row[2:] for row in first["session_sources"]) != sorted(row[2:] for row in other["session_sources"])


def test_scale_multiplies_the_row_counts(small):
    a, double = small["paths"]["a"], small["paths"]["double"]
    assert small["counts"]["a"] == {"conversions": 100, "session_sources": round(450_616 * 0.05)}
    assert small["counts"]["double"] == {"conversions": 200, "session_sources": round(450_616 * 0.1)}
    assert count(a, "conversions") == 100
    assert count(double, "conversions") == 200
    assert count(a, "session_sources") == round(450_616 * 0.05)
    assert count(double, "session_sources") == round(450_616 * 0.1)
    assert count(a, "session_costs") == count(a, "session_sources")


def test_generate_replaces_the_file_and_leaves_no_temp_file(small, tmp_path):
    path = tmp_path / "db" / "challenge.db"
    path.parent.mkdir()
    path.write_bytes(b"not a database")
    counts = generate(path, SampleSpec(seed=1, scale=0.01))
    assert count(path, "conversions") == counts["conversions"] == 20
    assert [p.name for p in path.parent.iterdir()] == ["challenge.db"]


# --- the 1x sample (session-wide template, read only) -------------------------------------------


@pytest.fixture(scope="module")
def template(sample_db_template: Path):
    conn = sqlite3.connect(f"file:{sample_db_template}?mode=ro", uri=True)
    yield conn
    conn.close()


def one(conn: sqlite3.Connection, sql: str):
    return conn.execute(sql).fetchone()


def test_template_row_counts(template):
    assert one(template, "SELECT COUNT(*) FROM conversions")[0] == 2_000
    assert one(template, "SELECT COUNT(*) FROM session_sources")[0] == 450_616
    assert one(template, "SELECT COUNT(*) FROM session_costs")[0] == 450_616


def test_template_has_the_16_channels(template):
    channels = {row[0] for row in template.execute("SELECT DISTINCT channel_name FROM session_sources")}
    assert len(channels) == 16
    assert channels == set(CHANNELS)
    assert {"Performance Max", "FB & IG Ads", "Untracked Conversions", "YouTube Ads"} <= channels


def test_template_dates(template):
    assert one(template, "SELECT MIN(event_date), MAX(event_date) FROM session_sources") == ("2023-08-29", "2023-09-07")
    assert one(template, "SELECT COUNT(DISTINCT event_date) FROM session_sources")[0] == 10
    assert one(template, "SELECT MIN(conv_date), MAX(conv_date) FROM conversions") == ("2023-09-01", "2023-09-07")
    assert one(template, "SELECT COUNT(DISTINCT conv_date) FROM conversions")[0] == 7


def test_template_costs_and_revenue(template):
    assert one(template, "SELECT COUNT(*) FROM session_costs WHERE cost IS NULL")[0] > 0
    assert one(template, "SELECT COUNT(*) FROM session_costs WHERE cost < 0")[0] == 0
    average_revenue = one(template, "SELECT AVG(revenue) FROM conversions")[0]
    assert 50 <= average_revenue <= 66
    total_cost = one(template, "SELECT SUM(COALESCE(cost, 0)) FROM session_costs")[0]
    assert 250_000 <= total_cost <= 340_000


def test_template_paid_channels_carry_the_cost(template):
    by_channel = dict(
        template.execute(
            """SELECT s.channel_name, SUM(COALESCE(k.cost, 0)) FROM session_sources s
               JOIN session_costs k USING (session_id) GROUP BY s.channel_name"""
        ).fetchall()
    )
    top_two = sorted(by_channel, key=by_channel.get, reverse=True)[:2]
    assert set(top_two) == {"Performance Max", "FB & IG Ads"}
    assert by_channel["Organic Traffic"] == 0
    assert by_channel["Direct Traffic"] == 0


def test_template_timestamps_are_well_formed(template):
    bad = one(
        template,
        """SELECT COUNT(*) FROM session_sources
           WHERE event_date NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'
              OR event_time NOT GLOB '[0-9][0-9]:[0-9][0-9]:[0-9][0-9]'""",
    )[0]
    assert bad == 0
