"""The Markov removal-effect model on paths stored in real warehouses: a hand-computed example,
an exact oracle of its own, and ChannelAttribution's markov_model as the reference."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta
from fractions import Fraction
from itertools import pairwise

import pytest

from include import attributions, markov, model_comparison, schema, warehouse
from include.ledger import LEDGER_COLUMNS
from include.markov import CONVERSION, NULL, START
from include.settings import DateRange, RunWindow
from tests.warehouse_rows import add_conversions, add_sessions

WINDOW = RunWindow(DateRange("2023-09-01", "2023-09-07"), 30)
DAY = "2023-09-02"
HALF_LIFE_DAYS = 7.0


def at(day: str, hour: int) -> str:
    return f"{day} {hour:02d}:00:00"


# The model of 09-02: converting c1 A > B, c2 A, c3 B > B (one state: B), then (conversion);
# browsing (day paths of users not converting on 09-02) u4 A, u5 B > A, then (null).
SESSIONS = [
    ("s1", "u1", at("2023-09-01", 9), "A"),
    ("s2", "u1", at(DAY, 9), "B"),
    ("s3", "u2", at(DAY, 9), "A"),
    ("s4", "u3", at(DAY, 9), "B"),
    ("s5", "u3", at(DAY, 10), "B"),
    ("s6", "u4", at(DAY, 9), "A"),
    ("s7", "u5", at(DAY, 9), "B"),
    ("s8", "u5", at(DAY, 10), " "),  # no channel: no journey would hold it
    ("s9", "u5", at(DAY, 11), "A"),
    # Not on any path of the model:
    ("s10", "u1", at("2023-09-05", 9), "B"),  # after the conversion date
    ("s11", "u4", at("2023-07-01", 9), "B"),  # before the look-back
    ("s12", None, at(DAY, 9), "B"),  # no user
    ("s13", "u6", at("2023-09-03", 9), "A"),  # after the conversion date
]
CONVERSIONS = [
    ("c1", "u1", at(DAY, 12), 100.0),
    ("c2", "u2", at(DAY, 12), 50.0),
    ("c3", "u3", at(DAY, 12), 10.0),
    ("c4", "u4", at("2023-08-20", 12), 30.0),  # another date: u4 browses on 09-02
]
JOURNEYS = [("c1", "s1", 0.5), ("c1", "s2", 0.5), ("c2", "s3", 1.0), ("c3", "s4", 0.5), ("c3", "s5", 0.5)]


def store_ledger(db, conversions) -> None:
    """conversion_journeys rows of the attributed conversions: (conv_id, 'YYYY-MM-DD HH:MM:SS')."""
    rows = [(c, ts, ts[:10], 1, "-") for c, ts in conversions]
    db.insert_many("conversion_journeys", LEDGER_COLUMNS, rows)


@pytest.fixture
def paths_db(db):
    schema.init_schema(db)
    add_sessions(db, SESSIONS)
    add_conversions(db, CONVERSIONS)
    db.insert_many("attribution_customer_journey", attributions.ATTRIBUTION_COLUMNS, JOURNEYS)
    store_ledger(db, [(c, ts) for c, _, ts, _ in CONVERSIONS[:3]])
    return db


def model_of(db, day: str = DAY, parts: int | None = None) -> Counter:
    days = markov.day_transitions(db, WINDOW.first_session_date, WINDOW.dates.end, parts=parts)
    converters = markov.converters_transitions(db, day, day, WINDOW.lookback_days).get(day, Counter())
    return markov.model_transitions(days, day, WINDOW.lookback_days, converters, markov.day_journeys(db, day))


def test_the_removal_effects_come_out_as_computed_by_hand(paths_db):
    """Transitions (self-transitions dropped): (start) -> A 3, (start) -> B 2; A -> B 1,
    A -> (conversion) 1, A -> (null) 2; B -> (conversion) 2, B -> A 1.

    With x_s = P(conversion | s): x_A = 1/4 + 1/4 x_B and x_B = 2/3 + 1/3 x_A, so x_A = 5/11 and
    x_B = 9/11, and P(conversion) = 3/5 x_A + 2/5 x_B = 3/5.
    Without A: x_B = 2/3, P = 2/5 * 2/3 = 4/15, RE_A = 1 - (4/15) / (3/5) = 5/9.
    Without B: x_A = 1/4, P = 3/5 * 1/4 = 3/20, RE_B = 1 - (3/20) / (3/5) = 3/4.
    """
    counts = model_of(paths_db)
    assert dict(counts) == {
        (START, "A"): 3,
        (START, "B"): 2,
        ("A", "B"): 1,
        ("A", CONVERSION): 1,
        ("A", NULL): 2,
        ("B", CONVERSION): 2,
        ("B", "A"): 1,
    }
    chain = markov.Chain.of(markov.as_transitions(counts))
    assert chain.conversion_probability() == pytest.approx(3 / 5, abs=1e-12)
    assert chain.removal_effects() == pytest.approx({"A": 5 / 9, "B": 3 / 4}, abs=1e-12)


def markov_rows(db) -> dict[tuple[str, str], tuple[float, float]]:
    rows = db.execute(
        "SELECT channel_name, date, credit, revenue FROM channel_model_comparison WHERE model = 'markov'"
    ).fetchall()
    return {(channel, day): (credit, revenue) for channel, day, credit, revenue in rows}


def test_each_conversion_splits_its_credit_over_its_own_channels_by_removal_effect(paths_db):
    """RE_A : RE_B = 5/9 : 3/4 = 20 : 27. c1 (A on 09-01, B on 09-02) gives A 20/47 and B 27/47;
    c2 (A) gives A 1; c3 (B, B) gives B 1, half to each session."""
    refreshed = markov.refresh(paths_db, WINDOW, [DAY])
    assert (refreshed.scored_days, refreshed.conversions) == ((DAY,), 3)
    stored = dict(((c, s), v) for c, s, v in paths_db.execute("SELECT * FROM attribution_markov"))
    assert stored == pytest.approx(
        {("c1", "s1"): 20 / 47, ("c1", "s2"): 27 / 47, ("c2", "s3"): 1.0, ("c3", "s4"): 0.5, ("c3", "s5"): 0.5},
        abs=1e-12,
    )
    model_comparison.rebuild_model_comparison(paths_db, "2023-08-02", "2023-09-07", HALF_LIFE_DAYS)
    expected = {
        ("A", "2023-09-01"): (20 / 47, 100 * 20 / 47),
        ("A", DAY): (1.0, 50.0),
        ("B", DAY): (27 / 47 + 1, 100 * 27 / 47 + 10),
    }
    rows = markov_rows(paths_db)
    assert rows.keys() == expected.keys()
    for key, value in expected.items():
        assert rows[key] == pytest.approx(value, abs=1e-9), key


def test_a_second_refresh_of_unchanged_data_scores_nothing_and_changes_nothing(paths_db):
    markov.refresh(paths_db, WINDOW, [DAY])
    before = sorted(paths_db.execute("SELECT * FROM attribution_markov").fetchall())
    again = markov.refresh(paths_db, WINDOW, [])
    assert (again.changed_days, again.scored_days) == ((), ())
    add_sessions(paths_db, [("s14", "u7", at("2023-08-25", 9), "B")])  # a late browsing day in 09-02's look-back
    late = markov.refresh(paths_db, RunWindow(DateRange("2023-08-25", "2023-08-25"), 30), [])
    assert (late.changed_days, late.scored_days) == (("2023-08-25",), (DAY,))
    assert sorted(paths_db.execute("SELECT * FROM attribution_markov").fetchall()) != before


def test_without_a_converting_path_the_model_gives_nothing(paths_db):
    paths_db.execute("DELETE FROM attribution_customer_journey")
    markov.refresh(paths_db, WINDOW, [DAY])
    assert paths_db.execute("SELECT COUNT(*) FROM attribution_markov").fetchone()[0] == 0
    model_comparison.rebuild_model_comparison(paths_db, "2023-08-02", "2023-09-07", HALF_LIFE_DAYS)
    assert markov_rows(paths_db) == {}
    assert markov.Chain.of([markov.Transition(START, "A", 2), markov.Transition("A", NULL, 2)]).removal_effects() == {}


# Random paths: channels converting more or less often, repeats (self-transitions) included.
CHANNELS = ("Direct", "Email", "Paid Search", "Social", "Organic")


def random_paths(rng: random.Random, count: int, weights: tuple[int, ...]) -> list[list[str]]:
    return [rng.choices(CHANNELS, weights, k=rng.choice((1, 1, 2, 2, 3, 4, 6, 9))) for _ in range(count)]


def store_paths(db, converting: list[list[str]], browsing: list[list[str]], rng: random.Random) -> list[float]:
    """Each converting path as a conversion dated 09-02 with its journey's sessions attributed,
    each non-converting path as the sessions of a user who never converts; a path's sessions an
    hour apart from 2023-09-01 00:00, so each is one day path. Returns the conversions' revenues."""
    schema.init_schema(db)
    sessions, conversions, journeys = [], [], []
    first = datetime(2023, 9, 1)
    for kind, paths in (("c", converting), ("n", browsing)):
        for i, path in enumerate(paths):
            user = f"{kind}u{i}"
            for k, channel in enumerate(path):
                session = f"{kind}s{i}_{k}"
                sessions.append((session, user, (first + timedelta(hours=k)).isoformat(" "), channel))
                if kind == "c":
                    journeys.append((f"c{i}", session, 1.0 / len(path)))
            if kind == "c":
                conversions.append((f"c{i}", user, "2023-09-02 12:00:00", round(rng.uniform(5, 200), 2)))
    add_sessions(db, sessions)
    add_conversions(db, conversions)
    db.insert_many("attribution_customer_journey", attributions.ATTRIBUTION_COLUMNS, journeys)
    store_ledger(db, [(c, ts) for c, _, ts, _ in conversions])
    return [revenue for *_, revenue in conversions]


def collapsed(path: list[str], end: str) -> list[str]:
    return [START, *(c for k, c in enumerate(path) if k == 0 or path[k - 1] != c), end]


def oracle_effects(converting: list[list[str]], browsing: list[list[str]]) -> dict[str, Fraction]:
    """RE_c in exact fractions, computed another way: RE_c = P(conversion and c visited) /
    P(conversion), with P(conversion and c visited) = h_c * x_c (h_c: the probability of reaching
    c from (start) before an end; x_c: of converting from c), each from its own linear system over
    the transition probabilities counted path by path here, solved by Gauss-Jordan elimination."""
    counts = Counter()
    for paths, end in ((converting, CONVERSION), (browsing, NULL)):
        for path in paths:
            states = collapsed(path, end)
            counts.update(pairwise(states))
    leaving = Counter()
    for (a, _), n in counts.items():
        leaving[a] += n
    step = {(a, b): Fraction(n, leaving[a]) for (a, b), n in counts.items()}
    transient = sorted(leaving)

    def hitting(values: dict[str, int]) -> dict[str, Fraction]:
        """For each state, the expected value of the first of ``values``' states reached (the
        ends count 0 unless named)."""
        unknown = [s for s in transient if s not in values]
        rows = []
        for s in unknown:
            row = [Fraction(int(s == t)) - step.get((s, t), 0) for t in unknown]
            rhs = sum((step.get((s, t), 0) * v for t, v in values.items()), Fraction(0))
            rows.append([*row, rhs])
        for col in range(len(unknown)):
            pivot = next(r for r in range(col, len(rows)) if rows[r][col] != 0)
            rows[col], rows[pivot] = rows[pivot], rows[col]
            rows[col] = [v / rows[col][col] for v in rows[col]]
            for r in range(len(rows)):
                if r != col and rows[r][col] != 0:
                    rows[r] = [v - rows[r][col] * w for v, w in zip(rows[r], rows[col], strict=True)]
        return {**{s: rows[i][-1] for i, s in enumerate(unknown)}, **{s: Fraction(v) for s, v in values.items()}}

    converts = hitting({CONVERSION: 1})
    return {c: hitting({c: 1})[START] * converts[c] / converts[START] for c in transient if c != START}


def filled_with_random_paths(db) -> tuple[list[list[str]], list[list[str]], list[float]]:
    rng = random.Random(20160101)
    converting = random_paths(rng, 150, (1, 4, 3, 1, 2))
    browsing = random_paths(rng, 300, (4, 1, 2, 3, 1))
    return converting, browsing, store_paths(db, converting, browsing, rng)


@pytest.fixture
def random_paths_db(db):
    return db, *filled_with_random_paths(db)


def test_the_credits_equal_an_exact_oracle_and_add_up_to_the_conversions(random_paths_db):
    db, converting, browsing, _ = random_paths_db
    effects = oracle_effects(converting, browsing)
    assert set(effects) == set(CHANNELS)
    markov.refresh(db, WINDOW, [DAY])
    stored = Counter()
    for conv_id, session_id, credit in db.execute("SELECT * FROM attribution_markov"):
        path = converting[int(conv_id[1:])]
        stored[conv_id, path[int(session_id.split("_")[1])]] += credit
    for i, path in enumerate(converting):
        total = sum(effects[c] for c in set(path))
        for channel in set(path):
            assert stored[f"c{i}", channel] == pytest.approx(float(effects[channel] / total), abs=1e-9), (i, channel)
    assert sum(stored.values()) == pytest.approx(len(converting), abs=1e-9)
    model_comparison.rebuild_model_comparison(db, "2023-08-02", "2023-09-07", HALF_LIFE_DAYS)
    rows = markov_rows(db).values()
    assert sum(credit for credit, _ in rows) == pytest.approx(len(converting), abs=1e-9)


def test_the_counts_of_ranges_of_users_read_apart_add_up_to_the_counts_read_at_once(random_paths_db):
    """Each range's part reads on a connection of its own (SQLite: a process of its own); a user
    cut in two, or counted twice, would change the counts."""
    db = random_paths_db[0]
    if db.dialect is warehouse.POSTGRES:
        db.execute("ANALYZE session_sources")  # the ranges are cut at its statistics' histogram
    ranges = markov.user_ranges(db, 3, min_sessions_per_part=1)
    assert len(ranges) == 3, ranges
    assert ranges[0].low is None and ranges[-1].high is None
    assert all(a.high == b.low for a, b in pairwise(ranges))
    args = (db, WINDOW.first_session_date, WINDOW.dates.end)
    at_once = markov.day_transitions(*args, parts=1)
    assert markov.day_transitions(*args, parts=3, min_sessions_per_part=1) == at_once
    assert sum(n for (a, _), n in at_once["2023-09-01"].items() if a == START) == 450


def test_a_warehouse_too_small_to_split_is_read_at_once(random_paths_db):
    db = random_paths_db[0]
    assert markov.user_ranges(db, 8) == [markov.UserRange()]
    assert markov.user_ranges(db, 1, min_sessions_per_part=1) == [markov.UserRange()]


def test_the_models_shares_match_channel_attributions_markov_model(tmp_path):
    """The reference estimates by simulation (seeded: the same every run), so within 2 %."""
    import pandas as pd
    from ChannelAttribution import markov_model

    with warehouse.connect_sqlite(tmp_path / "w.db", create=True) as db:
        schema.create_input_tables(db)
        converting, browsing, _ = filled_with_random_paths(db)
        chain = markov.Chain.of(markov.as_transitions(model_of(db)))
    credits = {c: share * len(converting) for c, share in markov.shares(chain.removal_effects()).items()}
    conversions = Counter(" > ".join(p) for p in converting)
    nulls = Counter(" > ".join(p) for p in browsing)
    keys = sorted(conversions.keys() | nulls.keys())
    data = pd.DataFrame({"path": keys, "conv": [conversions[k] for k in keys], "null": [nulls[k] for k in keys]})
    reference = markov_model(
        data, "path", "conv", var_null="null", nsim_start=1e6, max_step=500, conv_par=0.01, verbose=False, flg_pro=False
    )
    assert credits == pytest.approx(
        dict(zip(reference["channel_name"], reference["total_conversions"], strict=True)), rel=0.02
    )


@pytest.mark.parametrize(
    ("users", "search"),
    [(markov.UserRange(), "(user_id>?)"), (markov.UserRange("u1", "u5"), "(user_id>? AND user_id<?)")],
    ids=["all users", "a range of users"],
)
def test_sqlite_reads_the_day_paths_from_the_covering_index_without_sorting_or_storing_them(tmp_path, users, search):
    """Tens of millions of background sessions: a plan that sorts them for the window, stores
    them, or reads the table, costs minutes where the index order costs seconds; a range of users
    is read from its part of the index alone."""
    db = warehouse.connect_sqlite(tmp_path / "w.db", create=True)
    schema.create_input_tables(db)
    schema.init_schema(db)
    params = {"first": "2023-08-02", "last": "2023-09-07", **users.params()}
    query = markov.DAY_TRANSITIONS.replace("{users}", users.condition("user_id"))
    steps = [step for *_, step in db.execute("EXPLAIN QUERY PLAN " + query, params)]
    db.close()
    assert f"SEARCH session_sources USING COVERING INDEX idx_session_sources_path {search}" in steps, steps
    assert "MATERIALIZE steps" not in steps, steps
    assert not any("TEMP B-TREE FOR ORDER BY" in step for step in steps), steps
