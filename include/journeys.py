"""Customer journeys: the sessions of a converting user before the conversion.

Rules (README, "Journey rules"): a journey holds the user's sessions strictly before the conversion and not
older than the look-back window, in time order; the last one is the conversion session. A
journey longer than the per-request session limit keeps its most recent sessions.

Rows that cannot be placed in a journey are skipped, one by one, and counted by reason with
their first ids (README, "Bad input rows"); a run fails when the skipped share of either table
exceeds the configured limit, since that points to a broken extract rather than a few bad rows.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from include.errors import FinalError
from include.records import Conversion, Session

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
SAMPLE_IDS = 10


class BadRowError(FinalError, ValueError):
    """Input rows the pipeline cannot use; the message names the table, the reason and the ids."""


SESSION_TIMESTAMP = "session_sources: NULL or malformed event_date/event_time"
SESSION_CHANNEL = "session_sources: empty channel_name"
SESSION_FLAGS = "session_sources: engagement flag other than 0/1"
CONVERSION_USER = "conversions: NULL user_id"
CONVERSION_TIMESTAMP = "conversions: NULL or malformed conv_date/conv_time"
CONVERSION_REVENUE = "conversions: negative revenue"
CONVERSION_NULL_REVENUE = "conversions: NULL revenue (kept, counted as 0)"


@dataclass(frozen=True, slots=True)
class Journey:
    conversion_id: str
    sessions: tuple[Session, ...]
    # The conversion's UTC `YYYY-MM-DD HH:MM:SS`: what the journey was built for.
    timestamp: str = ""


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
    sessions_read: int = 0
    conversions_read: int = 0
    row_issues: dict[str, dict] = field(default_factory=dict)
    # Conversions dated outside the range attributed again, by reason (include.ledger).
    reattributed: dict[str, int] = field(default_factory=dict)

    def record_unattributable(self, conv_id: str) -> None:
        self.without_sessions += 1
        if len(self.without_sessions_ids) < SAMPLE_IDS:
            self.without_sessions_ids.append(conv_id)

    def record_issue(self, reason: str, row_id: object) -> None:
        issue = self.row_issues.setdefault(reason, {"count": 0, "ids": []})
        issue["count"] += 1
        if len(issue["ids"]) < SAMPLE_IDS:
            issue["ids"].append(str(row_id))

    def skipped(self, table: str) -> int:
        return sum(
            issue["count"]
            for reason, issue in self.row_issues.items()
            if reason.startswith(table) and "(kept" not in reason
        )

    def check_share(self, max_share: float) -> None:
        """Fail when too many rows of a table were skipped for the run to be trusted."""
        for table, read in (("session_sources", self.sessions_read), ("conversions", self.conversions_read)):
            skipped = self.skipped(table)
            if read and skipped / read > max_share:
                raise BadRowError(
                    f"{skipped} of {read} {table} rows are unusable (limit {max_share:.0%}): "
                    + "; ".join(
                        f"{reason}: {issue['count']} (e.g. {', '.join(issue['ids'][:5])})"
                        for reason, issue in self.row_issues.items()
                        if reason.startswith(table)
                    )
                )


def well_formed(timestamp: object) -> bool:
    """Only the zero-padded form of a real date and time: journeys compare timestamps as text."""
    if not isinstance(timestamp, str) or not TIMESTAMP_PATTERN.fullmatch(timestamp):
        return False
    try:
        datetime.strptime(timestamp, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def session_problem(session: Session) -> str | None:
    if not well_formed(session.timestamp):
        return SESSION_TIMESTAMP
    if not isinstance(session.channel_name, str) or not session.channel_name.strip():
        return SESSION_CHANNEL
    flags = (session.holder_engagement, session.closer_engagement, session.impression_interaction)
    if any(flag not in (0, 1) for flag in flags):
        return SESSION_FLAGS
    return None


def conversion_problem(conversion: Conversion) -> str | None:
    if conversion.user_id is None:
        return CONVERSION_USER
    if not well_formed(conversion.timestamp):
        return CONVERSION_TIMESTAMP
    if conversion.revenue is not None and conversion.revenue < 0:
        return CONVERSION_REVENUE
    return None


def usable_sessions(sessions: Iterable[Session], stats: JourneyStats) -> Iterator[Session]:
    for session in sessions:
        stats.sessions_read += 1
        problem = session_problem(session)
        if problem is None:
            yield session
        else:
            stats.record_issue(problem, session.session_id)


def usable_conversions(conversions: Iterable[Conversion], stats: JourneyStats) -> Iterator[Conversion]:
    for conversion in conversions:
        stats.conversions_read += 1
        problem = conversion_problem(conversion)
        if problem is not None:
            stats.record_issue(problem, conversion.conv_id)
            continue
        if conversion.revenue is None:
            stats.record_issue(CONVERSION_NULL_REVENUE, conversion.conv_id)
        yield conversion


def journey_for(
    conversion: Conversion,
    user_sessions: list[Session],
    session_times: list[str],
    lookback_days: int,
) -> list[Session]:
    """Sessions in [conversion - look-back, conversion); both lists are sorted by time."""
    conv_time = datetime.strptime(conversion.timestamp, TIMESTAMP_FORMAT)
    # isoformat pads the year to four digits where strftime("%Y") does not
    earliest = (conv_time - timedelta(days=lookback_days)).isoformat(sep=" ")
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
    select: Callable[[Journey], bool] | None = None,
) -> Iterator[Journey]:
    """Merge two streams sorted by (user_id, timestamp) into journeys, one user at a time.

    Memory holds one user's sessions, whatever the size of the tables behind the streams.
    Unusable rows are skipped and recorded in ``stats``. ``select`` sees every conversion's
    journey, empty ones included, and keeps it or leaves it out of the run (and of ``stats``).
    """
    session_groups = _group_by_user(usable_sessions(sessions, stats))
    pending: tuple[str, list[Session]] | None = next(session_groups, None)
    for user_id, user_conversions in _group_by_user(usable_conversions(conversions, stats)):
        while pending is not None and pending[0] < user_id:
            pending = next(session_groups, None)
        user_sessions = pending[1] if pending is not None and pending[0] == user_id else []
        times = [s.timestamp for s in user_sessions]
        for conversion in user_conversions:
            selected = journey_for(conversion, user_sessions, times, lookback_days)
            trimmed = max(0, len(selected) - max_sessions)
            journey = Journey(conversion.conv_id, tuple(selected[trimmed:]), conversion.timestamp)
            if select is not None and not select(journey):
                continue
            stats.conversions += 1
            if not selected:
                stats.record_unattributable(conversion.conv_id)
                continue
            if trimmed:
                stats.trimmed_journeys += 1
                stats.trimmed_sessions += trimmed
            stats.journeys += 1
            stats.sessions += len(journey.sessions)
            yield journey
    if stats.trimmed_journeys:
        log.warning(
            "%d journeys were longer than the %d-session request limit: kept their most recent "
            "sessions and dropped %d older ones",
            stats.trimmed_journeys,
            max_sessions,
            stats.trimmed_sessions,
        )
    for reason, issue in stats.row_issues.items():
        log.warning("%s: %d rows (first ids: %s)", reason, issue["count"], ", ".join(issue["ids"]))
    if stats.without_sessions:
        log.info(
            "%d conversions have no session before them and cannot be attributed (first ids: %s)",
            stats.without_sessions,
            ", ".join(stats.without_sessions_ids),
        )
