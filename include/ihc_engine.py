"""Offline re-implementation of the published IHC (Initializer-Holder-Closer) model.

This is not the trained commercial service: the membership functions and phase weights are
settings per conversion type instead of parameters learnt from the data. It follows the
structure documented in ``ihc-model.md`` and reproduces the published legacy test vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

PHASES = ("initializer", "holder", "closer")
DECIMALS = 4


@dataclass(frozen=True)
class ModelParameters:
    """Linear membership bounds in days, and phase weights, for one conversion type."""

    initializer_start: float = 0.54
    initializer_end: float = 8.38
    closer_start: float = 0.0
    closer_end: float = 7.53
    weights: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)


@dataclass(frozen=True)
class Touchpoint:
    session_id: str
    timestamp: datetime
    channel_label: str
    holder_engagement: int
    closer_engagement: int
    conversion: int


@dataclass(frozen=True)
class RedistributionRule:
    """Channels that give away their share of one phase, and who may receive it."""

    direction: str
    receive_threshold: float
    channel_labels: frozenset[str] = field(default_factory=frozenset)

    DIRECTIONS = ("earlier_sessions_only", "later_sessions_only", "any_session")

    def __post_init__(self) -> None:
        if self.direction not in self.DIRECTIONS:
            raise ValueError(f"redistribution direction must be one of {self.DIRECTIONS}")
        if not 0 <= self.receive_threshold <= 1:
            raise ValueError("redistribution receive_threshold must be within [0, 1]")


@dataclass(frozen=True)
class SessionShares:
    session_id: str
    initializer: float
    holder: float
    closer: float
    ihc: float


def membership(x: float, start: float, end: float) -> float:
    if end == start:
        return 1.0 if x >= end else 0.0
    return min(1.0, max(0.0, (x - start) / (end - start)))


def _whole_hours_in_days(earlier: datetime, later: datetime) -> float:
    return ((later - earlier).total_seconds() // 3600) / 24


def _harmonic_mean(values: Sequence[float]) -> float:
    if any(v <= 0 for v in values):
        return 0.0
    return len(values) / sum(1 / v for v in values)


def _normalise(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values] if total > 0 else [0.0] * len(values)


def phase_shares(journey: Sequence[Touchpoint], params: ModelParameters) -> list[list[float]]:
    """Unrounded, normalised [initializer, holder, closer] shares per session (time order)."""
    conversion_time = journey[-1].timestamp
    last = len(journey) - 1
    mu_i = [1.0] + [
        round(
            membership(
                _whole_hours_in_days(prev.timestamp, cur.timestamp),
                params.initializer_start,
                params.initializer_end,
            ),
            DECIMALS,
        )
        for prev, cur in pairwise(journey)
    ]
    mu_c = [
        1.0
        if i == last
        else round(
            1
            - membership(
                _whole_hours_in_days(tp.timestamp, conversion_time),
                params.closer_start,
                params.closer_end,
            ),
            DECIMALS,
        )
        for i, tp in enumerate(journey)
    ]
    restart = max(i for i, mu in enumerate(mu_i) if mu == 1.0)
    raw_i, raw_h, raw_c = [], [], []
    for i, tp in enumerate(journey):
        closer_eligible = tp.closer_engagement == 1 or i == last
        if i < restart:
            raw_i.append(0.0)
            raw_h.append(0.0)
            raw_c.append(0.0)
            continue
        raw_i.append(mu_i[i])
        raw_c.append(mu_c[i] if closer_eligible else 0.0)
        terms = [1 - mu_i[i]] + ([1 - mu_c[i]] if closer_eligible else [])
        raw_h.append(_harmonic_mean(terms) if tp.holder_engagement == 1 else 0.0)
    return [list(row) for row in zip(_normalise(raw_i), _normalise(raw_h), _normalise(raw_c), strict=True)]


def redistribute(shares: list[float], labels: Sequence[str], rule: RedistributionRule) -> list[float]:
    """Move listed channels' shares to eligible receivers, in proportion to their own share."""
    result = list(shares)
    for giver, label in enumerate(labels):
        if label not in rule.channel_labels or shares[giver] == 0:
            continue
        if rule.direction == "earlier_sessions_only":
            candidates = range(giver)
        elif rule.direction == "later_sessions_only":
            candidates = range(giver + 1, len(shares))
        else:
            candidates = (j for j in range(len(shares)) if j != giver)
        receivers = [
            j for j in candidates if labels[j] not in rule.channel_labels and shares[j] > rule.receive_threshold
        ]
        pool = sum(shares[j] for j in receivers)
        if pool <= 0:
            continue
        result[giver] -= shares[giver]
        for j in receivers:
            result[j] += shares[giver] * shares[j] / pool
    return result


def round_to_one(values: list[float]) -> list[float]:
    """Round to 4 decimals, putting the rounding rest on the largest value (sum stays 1)."""
    rounded = [round(v, DECIMALS) for v in values]
    if sum(values) <= 0:
        return rounded
    largest = max(range(len(values)), key=values.__getitem__)
    rounded[largest] = round(rounded[largest] + 1 - sum(rounded), DECIMALS)
    return rounded


def attribute_journey(
    journey: Sequence[Touchpoint],
    params: ModelParameters,
    redistribution: dict[str, RedistributionRule] | None = None,
) -> list[SessionShares]:
    """IHC shares of one journey; Σ ihc = 1 and each phase with mass sums to 1."""
    per_session = phase_shares(journey, params)
    columns = [[row[p] for row in per_session] for p in range(3)]
    labels = [tp.channel_label for tp in journey]
    for p, phase in enumerate(PHASES):
        rule = (redistribution or {}).get(phase)
        if rule is not None:
            columns[p] = redistribute(columns[p], labels, rule)
    present = [p for p in range(3) if sum(columns[p]) > 0]
    weight_sum = sum(params.weights[p] for p in present)
    ihc = [sum(params.weights[p] * columns[p][i] for p in present) / weight_sum for i in range(len(journey))]
    rounded = [round_to_one(col) for col in columns]
    ihc_rounded = round_to_one(ihc)
    return [
        SessionShares(tp.session_id, rounded[0][i], rounded[1][i], rounded[2][i], ihc_rounded[i])
        for i, tp in enumerate(journey)
    ]
