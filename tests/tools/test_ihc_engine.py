"""The offline IHC engine, rule by rule, on journeys computed by hand (docs/ihc-model.md)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tools.ihc_engine import (
    PHASES,
    EngineParameters,
    RedistributionRule,
    Touchpoint,
    attribute_journey,
    phase_shares,
    redistribute,
    round_to_one,
)

START = datetime(2023, 9, 1, 8, 0, 0)
WEIGHTS = (0.323, 0.374, 0.303)
# Initializer bounds 2 h .. 26 h; times-to-conversion uniform on 0 .. 100 h, so F(t) = t / 100;
# closer levels 0.08 .. 0.70 on F's scale, i.e. 8 h .. 70 h here.
PARAMS = EngineParameters(
    initializer_start_hours=2.0,
    initializer_end_hours=26.0,
    toc_quantiles_hours=tuple(float(h) for h in range(101)),
    closer_levels=(0.08, 0.70),
    weights=WEIGHTS,
    holder_power=2.5,
    holder_divisor=4.0,
)


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


# --- the time-to-conversion distribution ---------------------------------------------------


def test_toc_share_interpolates_the_quantile_table() -> None:
    assert PARAMS.toc_share(0) == 0.0
    assert PARAMS.toc_share(30) == pytest.approx(0.30)
    assert PARAMS.toc_share(30.5) == pytest.approx(0.305)
    assert PARAMS.toc_share(100) == 1.0
    assert PARAMS.toc_share(250) == 1.0
    assert PARAMS.toc_share(-1) == 0.0


def test_toc_share_of_a_tied_value_is_the_share_at_or_below_it() -> None:
    # a quarter of the values are exactly 5 h: F(5) counts all of them
    tied = replace(PARAMS, toc_quantiles_hours=(1.0, 5.0, 5.0, 9.0, 13.0))
    assert tied.toc_share(5.0) == pytest.approx(0.5)
    assert tied.toc_share(4.99) < 0.25
    assert tied.toc_share(7.0) == pytest.approx(0.625)


# --- single session, hand-computed journeys ------------------------------------------------


@pytest.mark.parametrize(("holder", "closer"), [(0, 0), (1, 1), (1, 0), (0, 1)])
def test_single_session_journey(holder: int, closer: int) -> None:
    [only] = attribute_journey(make_journey([0], [holder], [closer]), PARAMS)
    assert (only.initializer, only.holder, only.closer, only.ihc) == (1, 0, 1, 1)


@pytest.mark.parametrize("direction", RedistributionRule.DIRECTIONS)
def test_single_session_journey_keeps_everything_under_redistribution(direction: str) -> None:
    rules = {phase: RedistributionRule(direction, 0.0, frozenset({"channel-0"})) for phase in PHASES}
    [only] = attribute_journey(make_journey([0]), PARAMS, rules)
    assert (only.session_id, only.initializer, only.holder, only.closer, only.ihc) == ("s1", 1, 0, 1, 1)


def test_three_session_journey_computed_by_hand() -> None:
    # gaps 6 h and 24 h: muI = 1, (6-2)/24 = 1/6, (24-2)/24 = 11/12 -> I = 12/25, 2/25, 11/25
    # toc of s1 30 h: F = 0.30, muC = 1 - (0.30-0.08)/0.62 = 20/31; s2 has closer_engagement 0;
    # s3 converts: C = 20/51, 0, 31/51.
    # holder raw_i = (sqrt(a b)^2.5 + (|a-b|/4)^2.5)^(1/2.5), a = 1 - I_i, b = 1 - C_i
    # -> 0.28247, 0.48187, 0.23565; ihc = 0.323 I + 0.374 H + 0.303 C.
    result = attribute_journey(make_journey([0, 6, 30], closer=[1, 0, 1]), PARAMS)
    assert column(result, "initializer") == [0.48, 0.08, 0.44]
    assert column(result, "closer") == [0.3922, 0, 0.6078]
    # 0.2825 + 0.4819 + 0.2357 = 1.0001: the rest comes off the largest
    assert column(result, "holder") == [0.2825, 0.4818, 0.2357]
    assert column(result, "ihc") == [0.3795, 0.2061, 0.4144]


def test_restart_at_a_long_gap_zeroes_everything_before_it() -> None:
    # initializer bounds 2 .. 10 h: the gap of 19 h restarts the journey at the third session
    params = replace(PARAMS, initializer_end_hours=10.0)
    result = attribute_journey(make_journey([0, 1, 20, 21]), params)
    for s in result[:2]:
        assert (s.initializer, s.holder, s.closer, s.ihc) == (0, 0, 0, 0), s
    assert column(result, "initializer") == [0, 0, 1, 0]
    assert column(result, "closer") == [0, 0, 0.5, 0.5]
    # the holder takes the initializer shares without the restart (1/2, 0, 1/2, 0) as its input
    assert column(result, "holder") == [0, 0, 0.4129, 0.5871]
    assert column(result, "ihc") == [0, 0, 0.6289, 0.3711]


def test_restart_uses_the_last_long_gap() -> None:
    params = replace(PARAMS, initializer_end_hours=10.0)
    shares = phase_shares(make_journey([0, 40, 41, 80, 81]), params)
    assert all(value == 0 for row in shares[:3] for value in row)
    assert shares[3][0] == 1.0 and shares[4][2] > 0


def test_without_a_long_gap_nothing_is_zeroed() -> None:
    result = attribute_journey(make_journey([0, 3, 20, 25]), PARAMS)
    assert all(s.ihc > 0 for s in result)


def test_session_without_closer_engagement_gets_no_closer_share() -> None:
    # s2 is 1 h before the conversion session (muC would be 1), but has closer_engagement 0
    result = attribute_journey(make_journey([0, 5, 6], closer=[1, 0, 1]), PARAMS)
    assert result[1].closer == 0
    assert result[0].closer > 0 and result[2].closer > 0


def test_the_conversion_session_closes_whatever_its_engagement() -> None:
    result = attribute_journey(make_journey([0, 1], closer=[0, 0]), PARAMS)
    assert column(result, "closer") == [0, 1]


def test_closer_membership_falls_on_the_distribution_scale() -> None:
    # tocs of 90 h, 39 h and 5 h: F = 0.9 (past 0.70: 0), 0.39 (halfway: 0.5), 0.05 (below 0.08: 1)
    no_restart = replace(PARAMS, initializer_end_hours=100.0)
    shares = phase_shares(make_journey([0, 51, 85, 90]), no_restart)
    closer = [row[2] for row in shares]
    assert closer == pytest.approx([0, 0.5 / 2.5, 1 / 2.5, 1 / 2.5])


@pytest.mark.parametrize(
    ("closer", "expected"),
    [([0, 1], (0.5, 0.5)), ([1, 1], (0.1496, 0.8504))],
    ids=["first-not-closer-eligible", "first-closer-eligible"],
)
def test_two_session_holder(closer: list[int], expected: tuple[float, float]) -> None:
    # gap 1 h: under the initializer start, and F(1 h) = 0.01 is under the first closer level.
    # not eligible: I0 = (1, 0), C = (0, 1): raw = 1/4 each.
    # eligible: C = (1/2, 1/2): raw = 0.125 and (0.5^1.25 + 0.125^2.5)^0.4 = 0.7108.
    result = attribute_journey(make_journey([0, 1], closer=closer), PARAMS)
    assert tuple(column(result, "holder")) == expected


def test_holder_needs_holder_engagement() -> None:
    result = attribute_journey(make_journey([0, 1, 2], holder=[1, 0, 1]), PARAMS)
    assert result[1].holder == 0
    assert result[0].holder > 0 and result[2].holder > 0


def test_without_holder_mass_the_other_weights_are_renormalised() -> None:
    journey = make_journey([0, 6, 30], holder=[0, 0, 0], closer=[1, 0, 1])
    result = attribute_journey(journey, PARAMS)
    assert column(result, "holder") == [0, 0, 0]
    w_i, _, w_c = WEIGHTS
    initializer, closer = [12 / 25, 2 / 25, 11 / 25], [20 / 51, 0, 31 / 51]
    for s, i, c in zip(result, initializer, closer, strict=True):
        assert s.ihc == pytest.approx((w_i * i + w_c * c) / (w_i + w_c), abs=1e-4)
    assert sum(column(result, "ihc")) == pytest.approx(1, abs=1e-12)


def test_offset_timestamps_score_like_their_utc_time() -> None:
    plain = make_journey([0, 6, 30], closer=[1, 0, 1])
    aware = [replace(tp, timestamp=tp.timestamp.replace(tzinfo=UTC)) for tp in plain]
    assert attribute_journey(aware, PARAMS) == attribute_journey(plain, PARAMS)


# --- sums and rounding ---------------------------------------------------------------------


def test_round_to_one_puts_the_rest_on_the_largest_value() -> None:
    assert round_to_one([1 / 3, 1 / 3, 1 / 3]) == [pytest.approx(0.3334), 0.3333, 0.3333]
    assert sum(round_to_one([1 / 3, 1 / 3, 1 / 3])) == pytest.approx(1, abs=1e-12)
    assert round_to_one([1 / 6, 1 / 6, 2 / 3]) == [0.1667, 0.1667, pytest.approx(0.6666)]
    assert round_to_one([0.0, 0.0]) == [0.0, 0.0]


def test_every_phase_and_ihc_sum_to_one_on_random_journeys() -> None:
    rng = random.Random(20230901)
    labels = ["Paid Search Brand", "FB & IG Ads", "Direct Traffic", "Newsletter & Email"]
    for case in range(400):
        n = rng.randint(1, 15)
        hours = [0.0]
        for _ in range(n - 1):
            hours.append(hours[-1] + rng.choice([0.0, rng.uniform(0, 5), rng.uniform(0, 72), rng.uniform(0, 400)]))
        start = rng.uniform(0, 10)
        tocs = sorted(rng.uniform(0, 200) for _ in range(rng.randint(2, 50)))
        low = rng.uniform(0, 0.5)
        params = EngineParameters(
            initializer_start_hours=start,
            initializer_end_hours=start + rng.choice([0.0, rng.uniform(0.1, 100)]),
            toc_quantiles_hours=tuple(tocs),
            closer_levels=(low, rng.uniform(low + 0.01, 1)),
            weights=(rng.uniform(0.05, 1), rng.uniform(0.05, 1), rng.uniform(0.05, 1)),
            holder_power=rng.uniform(1, 4),
            holder_divisor=rng.uniform(1, 8),
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
        assert any(column(result, "initializer")) and any(column(result, "closer")), case
        for phase in (*PHASES, "ihc"):
            values = column(result, phase)
            assert all(0 <= v <= 1 for v in values), (case, phase, values)
            assert all(is_four_decimals(v) for v in values), (case, phase, values)
            if phase == "ihc" or any(values):
                assert sum(values) == pytest.approx(1, abs=1e-9), (case, phase, values)


def test_phase_weights_apply_when_all_phases_have_mass() -> None:
    weights = (0.5, 0.3, 0.2)
    params = replace(PARAMS, weights=weights)
    journey = make_journey([0, 6, 30], closer=[1, 0, 1])
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
    plain = attribute_journey(journey, PARAMS)
    moved = attribute_journey(journey, PARAMS, {"closer": rule("earlier_sessions_only", labels=("Search",))})
    assert moved[3].closer == 0
    assert plain[3].closer > 0
    assert moved[0].closer == plain[0].closer == 0  # no closer share: not above the threshold 0
    closer = [row[2] for row in phase_shares(journey, PARAMS)]
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
