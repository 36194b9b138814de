"""The offline IHC engine against ihc-model.md: test vector, sums, restart, weights, redistribution."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from include.ihc_engine import (
    PHASES,
    ModelParameters,
    RedistributionRule,
    Touchpoint,
    attribute_journey,
    phase_shares,
    redistribute,
    round_to_one,
)

START = datetime(2023, 9, 1, 8, 0, 0)


def make_journey(
    hours: list[float],
    holder: list[int] | None = None,
    closer: list[int] | None = None,
    labels: list[str] | None = None,
) -> list[Touchpoint]:
    """Touchpoints at ``START + hours[i]``; the last one is the conversion session."""
    n = len(hours)
    holder = holder if holder is not None else [1] * n
    closer = closer if closer is not None else [1] * n
    labels = labels if labels is not None else [f"channel-{i}" for i in range(n)]
    return [
        Touchpoint(
            session_id=f"s{i + 1}",
            timestamp=START + timedelta(hours=h),
            channel_label=labels[i],
            holder_engagement=holder[i],
            closer_engagement=closer[i],
            conversion=int(i == n - 1),
        )
        for i, h in enumerate(hours)
    ]


def column(shares: list, phase: str) -> list[float]:
    return [getattr(s, phase) for s in shares]


def is_four_decimals(value: float) -> bool:
    return abs(value - round(value, 4)) < 1e-12


# --- the published test vector -------------------------------------------------------------

VECTOR_TIMESTAMPS = [
    "2020-06-19 17:42:27",
    "2020-06-20 22:50:01",
    "2020-06-22 16:52:39",
    "2020-06-24 21:52:33",
    "2020-06-26 20:07:43",
    "2020-06-27 16:31:47",
]
VECTOR_HOLDER = [0, 1, 1, 1, 1, 1]
VECTOR_CLOSER = [0, 0, 0, 1, 1, 1]

PUBLISHED_DEFAULT = {
    "initializer": [0.602416, 0.051321, 0.092951, 0.125001, 0.105781, 0.02253],
    "holder": [0, 0.372524, 0.344383, 0.203612, 0.079481, 0],
    "closer": [0, 0, 0, 0.2515, 0.35232, 0.39618],
}
PUBLISHED_SECOND = {
    "initializer": [0.82974, 0, 0.03194, 0.08513, 0.05319, 0],
    "closer": [0, 0, 0, 0.197082, 0.364954, 0.437964],
}
SECOND_PARAMETERS = ModelParameters(initializer_start=1.5, initializer_end=8, closer_start=0, closer_end=5)


def vector_journey() -> list[Touchpoint]:
    return [
        Touchpoint(f"s{i + 1}", datetime.fromisoformat(ts), "ch", h, c, int(i == 5))
        for i, (ts, h, c) in enumerate(zip(VECTOR_TIMESTAMPS, VECTOR_HOLDER, VECTOR_CLOSER, strict=True))
    ]


def test_default_parameters_are_the_published_ones() -> None:
    params = ModelParameters()
    assert (params.initializer_start, params.initializer_end) == (0.54, 8.38)
    assert (params.closer_start, params.closer_end) == (0.0, 7.53)
    assert params.weights == pytest.approx((1 / 3, 1 / 3, 1 / 3))


@pytest.mark.parametrize(
    ("params", "published"),
    [(ModelParameters(), PUBLISHED_DEFAULT), (SECOND_PARAMETERS, PUBLISHED_SECOND)],
    ids=["I-0.54..8.38-C-0..7.53", "I-1.5..8-C-0..5"],
)
def test_phase_shares_reproduce_the_published_vector(params: ModelParameters, published: dict) -> None:
    shares = phase_shares(vector_journey(), params)
    assert len(shares) == 6
    for p, phase in enumerate(PHASES):
        if phase not in published:
            continue
        got = [row[p] for row in shares]
        for i, (value, expected) in enumerate(zip(got, published[phase], strict=True)):
            assert value == pytest.approx(expected, abs=1e-5), f"{phase} of session {i + 1}"


@pytest.mark.parametrize(
    ("params", "published"),
    [(ModelParameters(), PUBLISHED_DEFAULT), (SECOND_PARAMETERS, PUBLISHED_SECOND)],
    ids=["I-0.54..8.38-C-0..7.53", "I-1.5..8-C-0..5"],
)
def test_attribute_journey_reproduces_the_published_vector(params: ModelParameters, published: dict) -> None:
    result = attribute_journey(vector_journey(), params)
    assert [s.session_id for s in result] == [f"s{i}" for i in range(1, 7)]
    for phase, expected_values in published.items():
        for i, (value, expected) in enumerate(zip(column(result, phase), expected_values, strict=True)):
            assert value == pytest.approx(expected, abs=1e-4), f"{phase} of session {i + 1}"
    if "holder" in published:
        # all three phases have mass and the weights are equal: ihc is the mean of the phases
        for i, s in enumerate(result):
            # 4-decimal rounding plus the rounding rest (0.0001) put on the largest value
            expected_ihc = sum(published[p][i] for p in PHASES) / 3
            assert s.ihc == pytest.approx(expected_ihc, abs=2e-4), f"ihc of session {i + 1}"
    for phase in (*PHASES, "ihc"):
        assert sum(column(result, phase)) == pytest.approx(1, abs=1e-9)


# --- single sessions, sums -----------------------------------------------------------------


@pytest.mark.parametrize(("holder", "closer"), [(0, 0), (1, 1), (1, 0)])
def test_single_session_journey(holder: int, closer: int) -> None:
    [only] = attribute_journey(make_journey([0], [holder], [closer]), ModelParameters())
    assert (only.initializer, only.holder, only.closer, only.ihc) == (1, 0, 1, 1)


@pytest.mark.parametrize(
    "hours",
    [
        [0, 1],
        [0, 0, 0],
        [0, 2, 30, 31, 100],
        [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
        [0, 48, 96, 144, 192, 240],
    ],
)
def test_each_phase_with_mass_and_ihc_sum_to_exactly_one(hours: list[float]) -> None:
    result = attribute_journey(make_journey(hours), ModelParameters())
    for phase in (*PHASES, "ihc"):
        values = column(result, phase)
        if any(values):
            assert sum(values) == pytest.approx(1, abs=1e-9), phase
            assert all(is_four_decimals(v) for v in values), (phase, values)


def test_round_to_one_puts_the_rest_on_the_largest_value() -> None:
    assert round_to_one([1 / 3, 1 / 3, 1 / 3]) == [pytest.approx(0.3334), 0.3333, 0.3333]
    assert sum(round_to_one([1 / 3, 1 / 3, 1 / 3])) == pytest.approx(1, abs=1e-12)
    assert round_to_one([1 / 6, 1 / 6, 2 / 3]) == [0.1667, 0.1667, pytest.approx(0.6666)]
    assert round_to_one([0.0, 0.0]) == [0.0, 0.0]


def test_random_journeys_sum_to_one_after_rounding() -> None:
    rng = random.Random(20230901)
    labels = ["Paid Search Brand", "FB & IG Ads", "Direct Traffic", "Newsletter & Email"]
    for case in range(300):
        n = rng.randint(1, 15)
        hours = [0.0]
        for _ in range(n - 1):
            hours.append(hours[-1] + rng.choice([0.0, rng.uniform(0, 5), rng.uniform(0, 72), rng.uniform(0, 400)]))
        i_start = rng.uniform(0, 3)
        c_start = rng.uniform(0, 2)
        params = ModelParameters(
            initializer_start=i_start,
            initializer_end=i_start + rng.uniform(0.1, 10),
            closer_start=c_start,
            closer_end=c_start + rng.uniform(0.1, 10),
            weights=(rng.uniform(0.05, 1), rng.uniform(0.05, 1), rng.uniform(0.05, 1)),
        )
        redistribution = None
        if rng.random() < 0.3:
            redistribution = {
                rng.choice(PHASES): RedistributionRule(
                    direction=rng.choice(RedistributionRule.DIRECTIONS),
                    receive_threshold=rng.choice([0.0, 0.05, 0.3]),
                    channel_labels=frozenset(rng.sample(labels, rng.randint(1, 2))),
                )
            }
        journey = make_journey(
            hours,
            holder=[rng.randint(0, 1) for _ in range(n)],
            closer=[rng.randint(0, 1) for _ in range(n)],
            labels=[rng.choice(labels) for _ in range(n)],
        )
        result = attribute_journey(journey, params, redistribution)
        assert [s.session_id for s in result] == [tp.session_id for tp in journey], case
        # the first session after the restart always initializes, the conversion always closes
        assert any(column(result, "initializer")), case
        assert any(column(result, "closer")), case
        for phase in (*PHASES, "ihc"):
            values = column(result, phase)
            assert all(0 <= v <= 1 for v in values), (case, phase, values)
            assert all(is_four_decimals(v) for v in values), (case, phase, values)
            if phase == "ihc" or any(values):
                assert sum(values) == pytest.approx(1, abs=1e-9), (case, phase, values)


# --- restart, weights ----------------------------------------------------------------------


def test_session_after_a_long_pause_zeroes_earlier_sessions() -> None:
    # 10 days > initializer_end 8.38: the third session re-initialises the journey
    hours = [0, 3, 240, 245, 250]
    result = attribute_journey(make_journey(hours), ModelParameters())
    for s in result[:2]:
        assert (s.initializer, s.holder, s.closer, s.ihc) == (0, 0, 0, 0), s
    assert result[2].initializer == max(column(result, "initializer"))
    assert all(s.ihc > 0 for s in result[2:])
    for phase in (*PHASES, "ihc"):
        assert sum(column(result, phase)[2:]) == pytest.approx(1, abs=1e-9)


def test_restart_uses_the_last_long_pause() -> None:
    hours = [0, 240, 241, 480, 482]
    shares = phase_shares(make_journey(hours), ModelParameters())
    assert all(value == 0 for row in shares[:3] for value in row)
    assert shares[3][0] > 0 and shares[4][2] > 0


def test_without_a_long_pause_nothing_is_zeroed() -> None:
    result = attribute_journey(make_journey([0, 3, 100, 105]), ModelParameters())
    assert all(s.ihc > 0 for s in result)


def test_phase_without_mass_renormalises_the_weights() -> None:
    weights = (0.32, 0.37, 0.30)
    params = ModelParameters(weights=weights)
    journey = make_journey([0, 30, 60, 70], holder=[0, 0, 0, 0])
    raw = phase_shares(journey, params)
    assert all(row[1] == 0 for row in raw)
    result = attribute_journey(journey, params)
    assert column(result, "holder") == [0, 0, 0, 0]
    for s, row in zip(result, raw, strict=True):
        expected = (weights[0] * row[0] + weights[2] * row[2]) / (weights[0] + weights[2])
        assert s.ihc == pytest.approx(expected, abs=1e-4)
    assert sum(column(result, "ihc")) == pytest.approx(1, abs=1e-9)


def test_phase_weights_apply_when_all_phases_have_mass() -> None:
    weights = (0.5, 0.3, 0.2)
    params = ModelParameters(weights=weights)
    journey = make_journey([0, 30, 60, 70])
    raw = phase_shares(journey, params)
    assert all(sum(row[p] for row in raw) == pytest.approx(1) for p in range(3))
    result = attribute_journey(journey, params)
    for s, row in zip(result, raw, strict=True):
        assert s.ihc == pytest.approx(sum(w * v for w, v in zip(weights, row, strict=True)), abs=1e-4)


# --- redistribution ------------------------------------------------------------------------

SHARES = [0.1, 0.2, 0.3, 0.4]
LABELS = ["a", "Paid", "b", "c"]


def rule(direction: str, threshold: float = 0.0, labels: tuple[str, ...] = ("Paid",)) -> RedistributionRule:
    return RedistributionRule(direction=direction, receive_threshold=threshold, channel_labels=frozenset(labels))


def test_redistribution_to_earlier_sessions() -> None:
    assert redistribute(SHARES, LABELS, rule("earlier_sessions_only")) == pytest.approx([0.3, 0, 0.3, 0.4])


def test_redistribution_to_later_sessions_is_proportional() -> None:
    result = redistribute(SHARES, LABELS, rule("later_sessions_only"))
    assert result == pytest.approx([0.1, 0, 0.3 + 0.2 * 3 / 7, 0.4 + 0.2 * 4 / 7])
    assert sum(result) == pytest.approx(1)


def test_redistribution_respects_the_receive_threshold() -> None:
    # 0.1 is not above the threshold 0.25: only the two larger sessions receive
    result = redistribute(SHARES, LABELS, rule("any_session", threshold=0.25))
    assert result == pytest.approx([0.1, 0, 0.3 + 0.2 * 3 / 7, 0.4 + 0.2 * 4 / 7])
    everyone = redistribute(SHARES, LABELS, rule("any_session"))
    assert everyone == pytest.approx([0.1 + 0.2 * 1 / 8, 0, 0.3 + 0.2 * 3 / 8, 0.4 + 0.2 * 4 / 8])


def test_listed_channels_do_not_receive() -> None:
    result = redistribute(SHARES, ["a", "Paid", "Paid", "c"], rule("any_session"))
    assert result == pytest.approx([0.1 + 0.5 * 0.2, 0, 0, 0.4 + 0.5 * 0.8])


def test_giver_without_receiver_keeps_its_share() -> None:
    assert redistribute(SHARES, ["Paid", "a", "b", "c"], rule("earlier_sessions_only")) == SHARES
    assert redistribute(SHARES, ["a", "b", "c", "Paid"], rule("later_sessions_only")) == SHARES
    assert redistribute(SHARES, LABELS, rule("any_session", threshold=0.9)) == SHARES


def test_redistribution_in_attribute_journey_recomputes_ihc() -> None:
    labels = ["Organic", "Display", "Organic", "Search"]
    journey = make_journey([0, 20, 40, 50], closer=[0, 1, 1, 1], labels=labels)
    params = ModelParameters()
    plain = attribute_journey(journey, params)
    moved = attribute_journey(journey, params, {"closer": rule("earlier_sessions_only", labels=("Search",))})
    assert moved[3].closer == 0
    assert plain[3].closer > 0
    assert moved[0].closer == plain[0].closer == 0  # no closer share: not above the threshold 0
    raw = phase_shares(journey, params)
    closer = [row[2] for row in raw]
    pool = closer[1] + closer[2]
    for i in (1, 2):
        assert moved[i].closer == pytest.approx(closer[i] + closer[3] * closer[i] / pool, abs=1e-4)
    assert [s.initializer for s in moved] == [s.initializer for s in plain]
    assert moved[3].ihc < plain[3].ihc
    assert sum(column(moved, "closer")) == pytest.approx(1, abs=1e-9)
    assert sum(column(moved, "ihc")) == pytest.approx(1, abs=1e-9)


@pytest.mark.parametrize("direction", ["earlier", "both", "", "EARLIER_SESSIONS_ONLY"])
def test_invalid_redistribution_direction_raises(direction: str) -> None:
    with pytest.raises(ValueError, match="direction"):
        RedistributionRule(direction=direction, receive_threshold=0.1)


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_invalid_receive_threshold_raises(threshold: float) -> None:
    with pytest.raises(ValueError, match="receive_threshold"):
        RedistributionRule(direction="any_session", receive_threshold=threshold)
