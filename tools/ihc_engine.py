"""Offline IHC (Initializer-Holder-Closer) engine: scores journeys with trained parameters.

An offline re-implementation of the IHC model as the current service computes it, not the
commercial service itself: continuous hours, a linear initializer membership with a restart at
long gaps, a closer membership on the distribution of times-to-conversion, a share-based holder
and weighted phases. The parameters come from journeys (``tools.engine_training``); the
formulas and the training rule are in ``docs/ihc-model.md``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

PHASES = ("initializer", "holder", "closer")
DECIMALS = 4
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class EngineParameters:
    """Everything scoring needs for one conversion type.

    ``toc_quantiles_hours`` is the distribution of times-to-conversion as quantiles at evenly
    spaced levels 0, 1/m, ..., 1 (m + 1 values, non-decreasing); ``closer_levels`` are on that
    distribution's scale, not in hours.
    """

    initializer_start_hours: float
    initializer_end_hours: float
    toc_quantiles_hours: tuple[float, ...]
    closer_levels: tuple[float, float]
    weights: tuple[float, float, float]
    holder_power: float
    holder_divisor: float

    def toc_share(self, hours: float) -> float:
        """F(t): the share of training times-to-conversion at or below ``hours``."""
        q = self.toc_quantiles_hours
        if hours < q[0]:
            return 0.0
        if hours >= q[-1]:
            return 1.0
        j = bisect.bisect_right(q, hours) - 1
        return (j + (hours - q[j]) / (q[j + 1] - q[j])) / (len(q) - 1)


@dataclass(frozen=True)
class Touchpoint:
    """One session of a journey; ``timestamp`` is timezone-aware or naive UTC, never mixed."""

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


def clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def ramp(x: float, start: float, end: float) -> float:
    """0 below ``start``, 1 from ``end`` on, linear between (a step at ``end`` if they meet)."""
    if end <= start:
        return 1.0 if x >= end else 0.0
    return clip01((x - start) / (end - start))


def _normalise(values: list[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values] if total > 0 else [0.0] * len(values)


def initializer_memberships(hours: Sequence[float], params: EngineParameters) -> list[float]:
    """1 for the first session; then by the gap to the previous session."""
    return [1.0] + [
        ramp(later - earlier, params.initializer_start_hours, params.initializer_end_hours)
        for earlier, later in pairwise(hours)
    ]


def closer_memberships(journey: Sequence[Touchpoint], hours: Sequence[float], params: EngineParameters) -> list[float]:
    """0 for sessions without closer engagement; 1 for the conversion session; else falling
    linearly on the time-to-conversion distribution's scale between the two closer levels."""
    last = len(journey) - 1
    low, high = params.closer_levels
    return [
        1.0
        if i == last
        else (1 - ramp(params.toc_share(hours[last] - hours[i]), low, high) if tp.closer_engagement == 1 else 0.0)
        for i, tp in enumerate(journey)
    ]


def holder_raw(a: float, b: float, power: float, divisor: float) -> float:
    """Large when a session is neither initializer (a = 1 - I0) nor closer (b = 1 - C)."""
    return (math.sqrt(a * b) ** power + (abs(a - b) / divisor) ** power) ** (1 / power)


def phase_shares(journey: Sequence[Touchpoint], params: EngineParameters) -> list[list[float]]:
    """Unrounded [initializer, holder, closer] shares per session (time order); a phase
    without mass in this journey is all zeros."""
    if len(journey) == 1:
        return [[1.0, 0.0, 1.0]]
    origin = journey[0].timestamp
    hours = [(tp.timestamp - origin).total_seconds() / SECONDS_PER_HOUR for tp in journey]
    mu_i = initializer_memberships(hours, params)
    restart = max(i for i, mu in enumerate(mu_i) if mu == 1.0)
    active = [i >= restart for i in range(len(journey))]
    initializer = _normalise([mu if on else 0.0 for mu, on in zip(mu_i, active, strict=True)])
    closer = _normalise(
        [mu if on else 0.0 for mu, on in zip(closer_memberships(journey, hours, params), active, strict=True)]
    )
    # The holder sees the initializer shares as if there were no restart.
    without_restart = _normalise(mu_i)
    holder = _normalise(
        [
            holder_raw(1 - i0, 1 - c, params.holder_power, params.holder_divisor)
            if on and tp.holder_engagement == 1
            else 0.0
            for tp, i0, c, on in zip(journey, without_restart, closer, active, strict=True)
        ]
    )
    return [list(row) for row in zip(initializer, holder, closer, strict=True)]


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
    params: EngineParameters,
    redistribution: dict[str, RedistributionRule] | None = None,
) -> list[SessionShares]:
    """IHC shares of one journey (time order); Σ ihc = 1 and each phase with mass sums to 1.

    ihc weighs the phases that have mass in this journey, with their weights renormalised.
    A lone session is its journey's initializer and closer and gets all of its ihc, with or
    without redistribution (nobody to give to): answered without the arithmetic, as most
    journeys are one session and the local server scores them while requests wait.
    """
    if len(journey) == 1:
        return [SessionShares(journey[0].session_id, 1.0, 0.0, 1.0, 1.0)]
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
