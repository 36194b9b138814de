"""The Markov model: first-order removal-effect attribution (Anderl et al. 2016; what
ChannelAttribution's ``markov_model`` estimates with order 1), one model per conversion date, so
that a conversion's credit is a function of the data, whichever run scored it.

The model of conversion date D is fitted on the paths of D's look-back [D - look-back, D]:

- converting: each stored conversion dated D, the sessions of its journey (its rows of
  attribution_customer_journey) in time order, then (conversion);
- browsing: each user's sessions of one day within the look-back, in time order, then (null),
  the users with a conversion dated D left out; made of the same sessions as the journeys,
  those with a channel (a journey never holds one without, so such a state could only lose).

A browsing path never crosses midnight, so its transitions belong to one session date: they are
counted once per date and kept in markov_day_transitions. A run counts the dates it reads
(LAG over each user's day, then GROUP BY: the warehouse returns at most (channels + 2)² counts
per date, never a path), and the model of D adds up the stored days of its look-back: a daily run
counts one new day's worth of change, and any grouping of runs gives every date the same model.
As ChannelAttribution does, a channel repeated in a row is one state: dropping the
self-transitions leaves every absorption probability as it is.

P(conversion) is the probability that the chain from (start) ends in (conversion). Removing
channel c sends every transition into c to (null); its removal effect is
RE_c = 1 - P(conversion | c removed) / P(conversion). Each conversion's credit of 1 is split over
the channels of its own journey in proportion to their effects, and a channel's part evenly over
its sessions in the journey: stored per session in attribution_markov, like the IHC shares.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from include.report import channel_named
from include.settings import RunWindow, shifted_day
from include.warehouse import Warehouse

log = logging.getLogger(__name__)

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"

Moves = Counter  # (from_state, to_state) -> count


def _transitions_by(key: str, steps: str) -> str:
    """The transition counts per ``key`` of the day paths whose steps ``steps`` selects as
    (key, previous, channel_name): a path's last step has no successor, so a state's transitions
    to (null) are its steps minus the steps it precedes. One GROUP BY over the raw channel names,
    named as the report names them afterwards, on the few groups."""
    return f"""
    WITH steps AS NOT MATERIALIZED ({steps}),
    pairs AS (
        SELECT {key}, previous, channel_name, COUNT(*) AS n
        FROM steps
        GROUP BY {key}, previous, channel_name),
    named AS (
        SELECT {key}, {channel_named("previous")} AS previous, {channel_named("channel_name")} AS channel, n
        FROM pairs),
    moves AS (
        SELECT {key}, previous AS from_state, channel AS to_state, n FROM named
        UNION ALL
        SELECT {key}, channel, '{NULL}', n FROM named
        UNION ALL
        SELECT {key}, previous, '{NULL}', -n FROM named WHERE previous <> '{START}')
    SELECT {key}, from_state, to_state, SUM(n)
    FROM moves
    WHERE from_state <> to_state
    GROUP BY {key}, from_state, to_state
    HAVING SUM(n) <> 0"""


# Every user's day paths, counted per session date. The window's sessions are tens of millions
# with background traffic: they are read in path order from the covering index
# idx_session_sources_path (user, date, time, session: SQLite is told to, it would take the date
# index and sort), so neither database sorts or stores them. A NULL user_id is no user, left out.
# {users} keeps one part's users (UserRange.condition).
# One window partition per user, not per user and day: SQLite starts each partition afresh, and
# at 100x background the days' partitions took 72 s where the users' take 51 s; a step whose
# previous session is of another day starts its day's path.
DAY_TRANSITIONS = _transitions_by(
    "event_date",
    f"""
        SELECT event_date,
               CASE WHEN LAG(event_date) OVER by_user = event_date THEN LAG(channel_name) OVER by_user
                    ELSE '{START}' END AS previous,
               channel_name
        FROM session_sources{{sessions_by_user}}
        WHERE event_date BETWEEN :first AND :last AND user_id IS NOT NULL AND TRIM(channel_name) <> ''{{users}}
        WINDOW by_user AS (PARTITION BY user_id ORDER BY event_date, event_time, session_id{{bytewise}})""",
)

# The day paths in each conversion date's look-back of the users converting on it, counted per
# conversion date, for the dates [:reach_start, :reach_end] at once: the users are a few thousand,
# sought by user in the same index (u.first_date is the conversion date, as the dialect's
# look-back arithmetic names it).
CONVERTERS_TRANSITIONS = _transitions_by(
    "day",
    f"""
        SELECT u.first_date AS day,
               LAG(s.channel_name, 1, '{START}') OVER (
                   PARTITION BY u.first_date, s.user_id, s.event_date
                   ORDER BY s.event_time, s.session_id{{bytewise}}) AS previous,
               s.channel_name
        FROM (SELECT DISTINCT conv_date AS first_date, user_id
              FROM conversions
              WHERE conv_date BETWEEN :reach_start AND :reach_end AND user_id IS NOT NULL
                AND {{conv_date_is_a_day}}) u
        JOIN session_sources s{{sessions_by_user}}
          ON s.user_id = u.user_id AND s.event_date BETWEEN {{lookback_start}} AND u.first_date
        WHERE TRIM(s.channel_name) <> ''""",
)

STORED_DAYS = """
    SELECT date, from_state, to_state, n FROM markov_day_transitions WHERE date BETWEEN :first AND :last"""

DELETE_DAY = "DELETE FROM markov_day_transitions WHERE date = :day"

DAY_COLUMNS = ("date", "from_state", "to_state", "n")

# The conversion dates of stored journeys with sessions: the dates that have a model to fit.
DATES_WITH_JOURNEYS = """
    SELECT DISTINCT conv_date FROM conversion_journeys
    WHERE sessions > 0 AND conv_date BETWEEN :first AND :last"""

# Each stored journey of a conversion date, session by session in the order it was sent.
DAY_JOURNEYS = f"""
    SELECT a.conv_id, a.session_id, {channel_named("s.channel_name")}, s.event_date
    FROM conversion_journeys j
    JOIN attribution_customer_journey a ON a.conv_id = j.conv_id
    JOIN session_sources s ON s.session_id = a.session_id
    WHERE j.conv_date = :day
    ORDER BY a.conv_id{{bytewise}}, s.event_date{{bytewise}}, s.event_time{{bytewise}}, s.session_id{{bytewise}}"""

DELETE_DAY_CREDITS = """
    DELETE FROM attribution_markov
    WHERE conv_id IN (SELECT conv_id FROM conversion_journeys WHERE conv_date = :day)"""

CREDIT_COLUMNS = ("conv_id", "session_id", "credit")

# A part of fewer sessions is read faster in one go than its process or connection starts.
MIN_SESSIONS_PER_PART = 100_000


@dataclass(frozen=True)
class UserRange:
    """The users from ``low`` (included) to ``high`` (excluded) in the warehouse's order; None is
    no bound. A user's paths never cross users, so the parts' transition counts add up."""

    low: Any = None
    high: Any = None

    def condition(self, column: str) -> str:
        low = f" AND {column} >= :users_from" if self.low is not None else ""
        return low + (f" AND {column} < :users_to" if self.high is not None else "")

    def params(self) -> dict[str, Any]:
        return {"users_from": self.low, "users_to": self.high}


def user_ranges(db: Warehouse, parts: int, min_sessions_per_part: int = MIN_SESSIONS_PER_PART) -> list[UserRange]:
    """Up to ``parts`` ranges of about as many sessions each, cut at sampled users; one range (all
    users) when session_sources is too small to be worth splitting."""
    parts = min(parts, int(db.execute(db.dialect.sessions_estimate).fetchone()[0]) // max(1, min_sessions_per_part))
    if parts < 2:
        return [UserRange()]
    sample = [row[0] for row in db.execute(db.dialect.user_sample)]
    cuts = list(dict.fromkeys(sample[len(sample) * i // parts] for i in range(1, parts))) if sample else []
    bounds = [None, *cuts, None]
    return [UserRange(low, high) for low, high in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class Chain:
    """The transition probabilities between the transient states ((start) and the channels) and
    each one's probability of stepping straight to (conversion)."""

    channels: tuple[str, ...]
    moves: Mapping[str, Mapping[str, float]]
    converts: Mapping[str, float]

    @classmethod
    def of(cls, counts: Iterable[Transition]) -> Chain:
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for t in counts:
            out[t.from_state][t.to_state] = out[t.from_state].get(t.to_state, 0) + t.count
        moves: dict[str, dict[str, float]] = {}
        converts: dict[str, float] = {}
        for state, targets in out.items():
            total = sum(targets.values())
            moves[state] = {to: n / total for to, n in targets.items() if to not in (CONVERSION, NULL)}
            converts[state] = targets.get(CONVERSION, 0) / total
        channels = tuple(sorted(set(out) - {START}))
        return cls(channels, moves, converts)

    def conversion_probability(self, removed: str | None = None) -> float:
        """P(the chain from (start) ends in (conversion)), with ``removed`` leading to (null)."""
        states = [START, *(c for c in self.channels if c != removed)]
        index = {state: i for i, state in enumerate(states)}
        # x = Q x + r over the transient states, as (I - Q) x = r.
        matrix = [[0.0] * len(states) for _ in states]
        for i, state in enumerate(states):
            matrix[i][i] += 1.0
            for to, p in self.moves.get(state, {}).items():
                if to in index:
                    matrix[i][index[to]] -= p
        return _solve(matrix, [self.converts.get(state, 0.0) for state in states])[0]

    def removal_effects(self) -> dict[str, float]:
        """RE_c per channel; empty when no path converts."""
        base = self.conversion_probability()
        if base <= 0.0:
            return {}
        # Removing a state can only lower P(conversion): a negative effect is rounding.
        return {c: max(0.0, 1.0 - self.conversion_probability(removed=c) / base) for c in self.channels}


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting: (I - Q) of an absorbing chain is non-singular,
    and the system has one row per channel, so this is all the linear algebra needed."""
    n = len(rhs)
    a = [[*row, b] for row, b in zip(matrix, rhs, strict=True)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            if factor:
                for k in range(col, n + 1):
                    a[r][k] -= factor * a[col][k]
    x = [0.0] * n
    for r in reversed(range(n)):
        x[r] = (a[r][n] - sum(a[r][k] * x[k] for k in range(r + 1, n))) / a[r][r]
    return x


def shares(effects: Mapping[str, float]) -> dict[str, float]:
    """Each channel's share of the conversions, RE_c / Σ RE (empty when nothing converts)."""
    total = sum(effects.values())
    return {c: re / total for c, re in effects.items()} if total > 0 else {}


def day_transitions(
    db: Warehouse,
    first: str,
    last: str,
    *,
    parts: int | None = None,
    min_sessions_per_part: int = MIN_SESSIONS_PER_PART,
) -> dict[str, Moves]:
    """Every user's day paths on the session dates [first, last], their transitions per date:
    counted in ``parts`` ranges of users at once (the machine's cores by default), then added up."""
    ranges = user_ranges(db, parts or os.cpu_count() or 1, min_sessions_per_part)
    if len(ranges) > 1:
        log.info("counting the Markov transitions in %d ranges of users at once", len(ranges))
    queries = [
        (DAY_TRANSITIONS.replace("{users}", r.condition("user_id")), {"first": first, "last": last, **r.params()})
        for r in ranges
    ]
    days: dict[str, Moves] = defaultdict(Counter)
    for rows in db.read_each(queries):
        for day, from_state, to_state, n in rows:
            days[day][from_state, to_state] += int(n)
    return {day: Counter({k: n for k, n in moves.items() if n}) for day, moves in days.items()}


def converters_transitions(db: Warehouse, first_day: str, last_day: str, lookback_days: int) -> dict[str, Moves]:
    """For each conversion date in [first_day, last_day], the day paths in its look-back of the
    users converting on it: left out of the browsing paths of its model."""
    params = {"reach_start": first_day, "reach_end": last_day, "lookback_days": lookback_days}
    days: dict[str, Moves] = defaultdict(Counter)
    for day, from_state, to_state, n in db.execute(CONVERTERS_TRANSITIONS, params):
        days[day][from_state, to_state] += int(n)
    return dict(days)


def path_transitions(paths: Iterable[list[str]], end: str) -> Moves:
    """The transitions of whole paths of channels, a channel repeated in a row one state."""
    moves: Moves = Counter()
    for path in paths:
        states = [START, *(c for k, c in enumerate(path) if k == 0 or path[k - 1] != c), end]
        moves.update(itertools.pairwise(states))
    return moves


@dataclass(frozen=True)
class Transition:
    """How often the paths step from one state to the next."""

    from_state: str
    to_state: str
    count: int


def as_transitions(moves: Mapping[tuple[str, str], int]) -> list[Transition]:
    return [Transition(a, b, n) for (a, b), n in sorted(moves.items()) if n]


# A journey's sessions as (session_id, channel, session date), in time order.
JourneySessions = list[tuple[str, str, str]]


def conversion_credits(
    journeys: Iterable[tuple[str, JourneySessions]], effects: Mapping[str, float]
) -> list[tuple[str, str, float]]:
    """(conv_id, session_id, credit): each conversion's 1 split over its journey's channels in
    proportion to their removal effects (evenly if none of them has one), a channel's part
    evenly over its sessions in the journey."""
    rows = []
    for conv_id, sessions in journeys:
        touches = Counter(channel for _, channel, _ in sessions)
        weights = {c: effects.get(c, 0.0) for c in touches}
        total = sum(weights.values())
        if total <= 0.0:
            weights, total = dict.fromkeys(touches, 1.0), float(len(touches))
        rows.extend((conv_id, session, weights[channel] / total / touches[channel]) for session, channel, _ in sessions)
    return rows


def _journeys(rows: Iterable[tuple[str, str, str, str]]) -> Iterator[tuple[str, JourneySessions]]:
    for conv_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield conv_id, [(session, channel, day) for _, session, channel, day in group]


@dataclass(frozen=True)
class MarkovRefresh:
    """What a run changed: the session dates whose browsing transitions it counted anew, the
    conversion dates it scored again, and the session dates of their journeys (where the
    comparison's Markov rows change)."""

    changed_days: tuple[str, ...] = ()
    scored_days: tuple[str, ...] = ()
    conversions: int = 0
    first_session_date: str | None = None
    last_session_date: str | None = None


def _stored_days(db: Warehouse, first: str, last: str) -> dict[str, Moves]:
    days: dict[str, Moves] = defaultdict(Counter)
    for day, from_state, to_state, n in db.execute(STORED_DAYS, {"first": first, "last": last}):
        days[day][from_state, to_state] += int(n)
    return dict(days)


def _dates_seeing(db: Warehouse, changed: list[str], lookback_days: int) -> set[str]:
    """The conversion dates with stored journeys whose look-back holds a changed session date."""
    if not changed:
        return set()
    params = {"first": changed[0], "last": shifted_day(changed[-1], lookback_days)}
    dates = {row[0] for row in db.execute(DATES_WITH_JOURNEYS, params)}
    return {d for d in dates if any(shifted_day(d, -lookback_days) <= c <= d for c in changed)}


def day_journeys(db: Warehouse, day: str) -> list[tuple[str, JourneySessions]]:
    """The stored journeys of the conversions dated ``day``, each as (conv_id, its sessions)."""
    return list(_journeys(db.execute(DAY_JOURNEYS, {"day": day})))


def model_transitions(
    days: Mapping[str, Moves],
    day: str,
    lookback_days: int,
    converters: Moves,
    journeys: Iterable[tuple[str, JourneySessions]],
) -> Moves:
    """The transitions of the model of conversion date ``day``: the day paths of its look-back
    (``days``), less those of the users converting on it (``converters``), and its journeys."""
    first = shifted_day(day, -lookback_days)
    total: Moves = Counter()
    for d, moves in days.items():
        if first <= d <= day:
            total.update(moves)
    total.subtract(converters)
    total.update(path_transitions(([c for _, c, _ in sessions] for _, sessions in journeys), CONVERSION))
    return Counter({k: n for k, n in total.items() if n > 0})


def refresh(
    db: Warehouse,
    window: RunWindow,
    conversion_dates: Iterable[str],
    *,
    parts: int | None = None,
    min_sessions_per_part: int = MIN_SESSIONS_PER_PART,
) -> MarkovRefresh:
    """Count the browsing transitions of the dates the run reads, store the days that changed, and
    score again every conversion date in ``conversion_dates`` (those whose journeys the run
    replaced) or whose look-back holds a changed day.

    The counting, the step's long read, comes before the write transaction. The scoring reads
    inside it, after this run's days are stored: a run going at the same time (a backfill's other
    days) commits its days and journeys before or after, never in between, so whichever run
    scores a date last sees every day and journey committed, and each date ends with one model."""
    first, last, lookback = window.first_session_date, window.dates.end, window.lookback_days
    counted = day_transitions(db, first, last, parts=parts, min_sessions_per_part=min_sessions_per_part)
    stored = _stored_days(db, first, last)
    empty: Moves = Counter()
    changed = sorted(d for d in counted.keys() | stored.keys() if counted.get(d, empty) != stored.get(d, empty))
    conversions = 0
    session_dates: list[str] = []
    with db.transaction():
        for day in changed:
            db.execute(DELETE_DAY, {"day": day})
            db.insert_many(
                "markov_day_transitions", DAY_COLUMNS, [(day, a, b, n) for (a, b), n in counted.get(day, {}).items()]
            )
        scored_days = sorted(set(conversion_dates) | _dates_seeing(db, changed, lookback))
        days, converters = {}, {}
        if scored_days:
            days = _stored_days(db, shifted_day(scored_days[0], -lookback), scored_days[-1])
            converters = converters_transitions(db, scored_days[0], scored_days[-1], lookback)
        for day in scored_days:
            journeys = day_journeys(db, day)
            effects: dict[str, float] = {}
            if journeys:
                counts = model_transitions(days, day, lookback, converters.get(day, Counter()), journeys)
                effects = Chain.of(as_transitions(counts)).removal_effects()
                session_dates.extend(d for _, sessions in journeys for _, _, d in sessions)
            db.execute(DELETE_DAY_CREDITS, {"day": day})
            db.insert_many("attribution_markov", CREDIT_COLUMNS, conversion_credits(journeys, effects))
            conversions += len(journeys)
    return MarkovRefresh(
        tuple(changed),
        tuple(scored_days),
        conversions,
        min(session_dates, default=None),
        max(session_dates, default=None),
    )
