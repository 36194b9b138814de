"""Paths to conversion: the channel sequences of a range's journeys, the most frequent first.

A path is the journey's channels in time order, with a channel repeated in a row shown once with
its count ("Direct ×3"), as analysts read paths. Only the most frequent ones are kept; the rest
are summed, so the result stays small whatever the range.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from include.report import channel_named
from include.settings import DateRange
from include.warehouse import Warehouse

TOP_PATHS = 15

JOURNEY_CHANNELS = f"""
    SELECT a.conv_id, {channel_named("s.channel_name")}, COALESCE(c.revenue, 0)
    FROM conversions c
    JOIN attribution_customer_journey a ON a.conv_id = c.conv_id
    JOIN session_sources s ON s.session_id = a.session_id
    WHERE c.conv_date BETWEEN :start AND :end
    ORDER BY a.conv_id{{bytewise}}, s.event_date{{bytewise}}, s.event_time{{bytewise}}, s.session_id{{bytewise}}"""


@dataclass(frozen=True)
class ChannelPath:
    steps: tuple[str, ...]
    conversions: int
    revenue: float

    @property
    def label(self) -> str:
        return " → ".join(self.steps)


@dataclass(frozen=True)
class PathSummary:
    """The top paths, and what the others add up to."""

    top: list[ChannelPath] = field(default_factory=list)
    other_paths: int = 0
    other_conversions: int = 0
    other_revenue: float = 0.0


def collapse(channels: Iterable[str]) -> tuple[str, ...]:
    """Consecutive repeats as one step with a count: (A, A, B) -> ("A ×2", "B")."""
    steps = []
    for channel, run in itertools.groupby(channels):
        count = sum(1 for _ in run)
        steps.append(channel if count == 1 else f"{channel} ×{count}")
    return tuple(steps)


def journey_paths(rows: Iterable[tuple[str, str, float]]) -> Iterator[tuple[tuple[str, ...], float]]:
    """(conv_id, channel, revenue) rows sorted by conversion and time -> (path, revenue)."""
    for _, group in itertools.groupby(rows, key=lambda row: row[0]):
        journey = list(group)
        yield collapse(channel for _, channel, _ in journey), float(journey[0][2])


def summarise(paths: Iterable[tuple[tuple[str, ...], float]], limit: int = TOP_PATHS) -> PathSummary:
    conversions: Counter[tuple[str, ...]] = Counter()
    revenue: Counter[tuple[str, ...]] = Counter()
    for path, value in paths:
        conversions[path] += 1
        revenue[path] += value
    ranked = sorted(conversions, key=lambda p: (-conversions[p], -revenue[p], p))
    top = [ChannelPath(p, conversions[p], revenue[p]) for p in ranked[:limit]]
    rest = ranked[limit:]
    return PathSummary(top, len(rest), sum(conversions[p] for p in rest), sum(revenue[p] for p in rest))


def top_paths(db: Warehouse, dates: DateRange, limit: int = TOP_PATHS) -> PathSummary:
    """The most frequent paths of the attributed conversions dated in ``dates``."""
    rows = db.stream(JOURNEY_CHANNELS, {"start": dates.start, "end": dates.end})
    return summarise(journey_paths(rows), limit)
