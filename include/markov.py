"""The Markov model: first-order removal-effect attribution over one run's paths (Anderl et al.
2016; what ChannelAttribution's ``markov_model`` estimates with order 1).

A path is a sequence of channel states from (start) to an end:

- converting: each attributed conversion dated in the range, the sessions of its journey (its rows
  of attribution_customer_journey) in time order, then (conversion);
- non-converting: each user with no conversion dated in the range, their sessions dated in the
  run's session window [start - look-back, end] in time order, then (null): cut by the same
  look-back as the journeys, and made of the same sessions, those with a channel (a journey
  never holds a session without one, so such a state could only ever lose).

The warehouse counts the transitions between consecutive states (LAG over each path's sessions,
then GROUP BY), so Python sees at most (channels + 2)² counts however many sessions there are,
and never a path. As ChannelAttribution does, a channel repeated in a row is one state: dropping
the self-transitions leaves every absorption probability as it is.

P(conversion) is the probability that the chain from (start) ends in (conversion). Removing
channel c sends every transition into c to (null); its removal effect is
RE_c = 1 - P(conversion | c removed) / P(conversion), and c's share of the range's conversions is
RE_c / Σ RE.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from include.report import channel_named
from include.warehouse import Warehouse

log = logging.getLogger(__name__)

START, CONVERSION, NULL = "(start)", "(conversion)", "(null)"


# Each path's steps as (previous channel, channel) pairs, counted by the end their path reaches.
# A path's last step has no successor, so a state's transitions to its path's end are its steps
# minus the steps it precedes: one LAG per session and one GROUP BY, over the raw channel names
# (named as the report names them afterwards, on the few groups). The window's sessions are tens
# of millions with background traffic: they are read in path order from the covering index
# idx_session_sources_path (SQLite is told to, it would take the date index and sort), so neither
# database sorts or stores them. LAG steps within one user, so the non-converting users' pairs
# are everyone's minus those of the range's converting users (a few thousand, sought by user in
# the same index): no per-session test of who converted. A NULL user_id is no user, left out.
# {users} and {conversion_users} keep one part's users (UserRange.query), nothing for all.
_SESSION_PAIRS = f"""
        SELECT LAG(channel_name, 1, '{START}') OVER (
                   PARTITION BY user_id ORDER BY event_date, event_time, session_id{{bytewise}}) AS previous,
               channel_name
        FROM session_sources{{sessions_by_user}}
        WHERE event_date BETWEEN :first AND :end AND user_id IS NOT NULL AND TRIM(channel_name) <> ''{{users}}"""
_TRANSITIONS = f"""
    WITH converting AS (
        SELECT LAG(s.channel_name, 1, '{START}') OVER (
                   PARTITION BY a.conv_id ORDER BY s.event_date, s.event_time, s.session_id{{bytewise}}) AS previous,
               s.channel_name
        FROM conversions c
        JOIN attribution_customer_journey a ON a.conv_id = c.conv_id
        JOIN session_sources s ON s.session_id = a.session_id
        WHERE c.conv_date BETWEEN :start AND :end{{conversion_users}}),
    everyone AS NOT MATERIALIZED ({_SESSION_PAIRS}),
    converters AS NOT MATERIALIZED ({_SESSION_PAIRS}
          AND user_id IN (SELECT user_id FROM conversions WHERE conv_date BETWEEN :start AND :end)),
    pairs AS (
        SELECT '{CONVERSION}' AS end_state, previous, channel_name, COUNT(*) AS n
        FROM converting
        GROUP BY previous, channel_name
        UNION ALL
        SELECT '{NULL}', previous, channel_name, COUNT(*)
        FROM everyone
        GROUP BY previous, channel_name
        UNION ALL
        SELECT '{NULL}', previous, channel_name, -COUNT(*)
        FROM converters
        GROUP BY previous, channel_name),
    named AS (
        SELECT end_state, {channel_named("previous")} AS previous, {channel_named("channel_name")} AS channel, n
        FROM pairs),
    moves AS (
        SELECT previous AS from_state, channel AS to_state, n FROM named
        UNION ALL
        SELECT channel, end_state, n FROM named
        UNION ALL
        SELECT previous, end_state, -n FROM named WHERE previous <> '{START}')
    SELECT from_state, to_state, SUM(n)
    FROM moves
    WHERE from_state <> to_state
    GROUP BY from_state, to_state
    HAVING SUM(n) <> 0"""

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

    def query(self) -> str:
        return _TRANSITIONS.replace("{users}", self.condition("user_id")).replace(
            "{conversion_users}", self.condition("c.user_id")
        )

    def params(self) -> dict[str, Any]:
        return {"users_from": self.low, "users_to": self.high}


TRANSITIONS_QUERY = UserRange().query()


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
class Transition:
    """How often the paths step from one state to the next."""

    from_state: str
    to_state: str
    count: int


def transitions(
    db: Warehouse,
    start: str,
    end: str,
    first_session_date: str,
    *,
    parts: int | None = None,
    min_sessions_per_part: int = MIN_SESSIONS_PER_PART,
) -> list[Transition]:
    """The transition counts of the paths of the conversions dated [start, end] and of the users
    without one, their sessions from ``first_session_date``: counted in ``parts`` ranges of users at
    once (the machine's cores by default), then added up."""
    params = {"start": start, "end": end, "first": first_session_date}
    ranges = user_ranges(db, parts or os.cpu_count() or 1, min_sessions_per_part)
    if len(ranges) > 1:
        log.info("counting the Markov transitions in %d ranges of users at once", len(ranges))
    counts: Counter[tuple[str, str]] = Counter()
    for rows in db.read_each([(r.query(), {**params, **r.params()}) for r in ranges]):
        for from_state, to_state, n in rows:
            counts[from_state, to_state] += int(n)
    return [Transition(a, b, n) for (a, b), n in sorted(counts.items()) if n]


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
