"""Customer journeys: the sessions of a converting user before the conversion.

Rules (DESIGN.md): a journey holds the user's sessions strictly before the conversion and not
older than the look-back window, in time order; the last one is the conversion session. A
journey longer than the per-request session limit keeps its most recent sessions.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from include.records import Conversion, Session

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
SAMPLE_IDS = 10


class BadRowError(ValueError):
    """An input row the pipeline cannot use; the message names the table and the id."""


@dataclass(frozen=True, slots=True)
class Journey:
    conversion_id: str
    sessions: tuple[Session, ...]

    def to_api_rows(self) -> list[dict[str, object]]:
        """The journey in the API's request shape; the last session is the conversion."""
        last = len(self.sessions) - 1
        return [
            {
                "conversion_id": self.conversion_id,
                "session_id": s.session_id,
                "timestamp": s.timestamp,
                "channel_label": s.channel_name,
                "holder_engagement": s.holder_engagement,
                "closer_engagement": s.closer_engagement,
                "conversion": int(i == last),
                "impression_interaction": s.impression_interaction,
            }
            for i, s in enumerate(self.sessions)
        ]


@dataclass
class JourneyStats:
    """What the journey builder saw; goes into the run summary."""

    conversions: int = 0
    journeys: int = 0
    sessions: int = 0
    without_sessions: int = 0
    without_sessions_ids: list[str] = field(default_factory=list)
    trimmed_journeys: int = 0
    trimmed_sessions: int = 0

    def record_unattributable(self, conv_id: str) -> None:
        self.without_sessions += 1
        if len(self.without_sessions_ids) < SAMPLE_IDS:
            self.without_sessions_ids.append(conv_id)


def parse_timestamp(value: str, table: str, row_id: str) -> datetime:
    """Only the zero-padded form: journeys are cut by comparing timestamps as text."""
    try:
        if not TIMESTAMP_PATTERN.fullmatch(value):
            raise ValueError(value)
        return datetime.strptime(value, TIMESTAMP_FORMAT)
    except (TypeError, ValueError):
        raise BadRowError(f"{table} row {row_id!r} has timestamp {value!r}, expected YYYY-MM-DD HH:MM:SS") from None


def journey_for(
    conversion: Conversion,
    user_sessions: list[Session],
    session_times: list[str],
    lookback_days: int,
) -> list[Session]:
    """Sessions in [conversion - look-back, conversion); both lists are sorted by time."""
    conv_time = parse_timestamp(conversion.timestamp, "conversions", conversion.conv_id)
    earliest = (conv_time - timedelta(days=lookback_days)).strftime(TIMESTAMP_FORMAT)
    lo = bisect.bisect_left(session_times, earliest)
    hi = bisect.bisect_left(session_times, conversion.timestamp)
    return user_sessions[lo:hi]


def _group_by_user(rows: Iterable[Session | Conversion]) -> Iterator[tuple[str, list]]:
    current: str | None = None
    group: list = []
    for row in rows:
        if row.user_id != current:
            if group:
                yield current, group
            current, group = row.user_id, []
        group.append(row)
    if group:
        yield current, group


def build_journeys(
    conversions: Iterable[Conversion],
    sessions: Iterable[Session],
    lookback_days: int,
    max_sessions: int,
    stats: JourneyStats,
) -> Iterator[Journey]:
    """Merge two streams sorted by (user_id, timestamp) into journeys, one user at a time.

    Memory holds one user's sessions, whatever the size of the tables behind the streams.
    """
    session_groups = _group_by_user(sessions)
    pending: tuple[str, list[Session]] | None = next(session_groups, None)
    for user_id, user_conversions in _group_by_user(conversions):
        while pending is not None and pending[0] < user_id:
            pending = next(session_groups, None)
        user_sessions = pending[1] if pending is not None and pending[0] == user_id else []
        for s in user_sessions:
            parse_timestamp(s.timestamp, "session_sources", s.session_id)
        times = [s.timestamp for s in user_sessions]
        for conversion in user_conversions:
            stats.conversions += 1
            selected = journey_for(conversion, user_sessions, times, lookback_days)
            if not selected:
                stats.record_unattributable(conversion.conv_id)
                continue
            if len(selected) > max_sessions:
                stats.trimmed_journeys += 1
                stats.trimmed_sessions += len(selected) - max_sessions
                selected = selected[-max_sessions:]
            stats.journeys += 1
            stats.sessions += len(selected)
            yield Journey(conversion.conv_id, tuple(selected))
    if stats.trimmed_journeys:
        log.warning(
            "%d journeys were longer than the %d-session request limit: kept their most recent "
            "sessions and dropped %d older ones",
            stats.trimmed_journeys,
            max_sessions,
            stats.trimmed_sessions,
        )
    if stats.without_sessions:
        log.info(
            "%d conversions have no session before them and cannot be attributed (first ids: %s)",
            stats.without_sessions,
            ", ".join(stats.without_sessions_ids),
        )
