"""Attribution models next to IHC, from the same journeys: channel_model_comparison.

Every attributed conversion's journey is its rows in attribution_customer_journey (the sessions
sent to the API, in time order as the journey step ordered them). Each rule-based model splits
one conversion over them, in SQL:

- ``first_touch``: all credit to the first session;
- ``last_touch``: all credit to the last (the conversion session);
- ``linear``: 1 / n to each of n sessions;
- ``position_based`` (40/20/40): 0.4 to the first and the last, 0.2 shared by the sessions
  between; a journey of one session gives it 1, of two sessions 0.5 each;
- ``time_decay``: weights 2^(-h / (24 × half-life days)), h the hours from the session to its
  conversion, normalised over the journey (the Variable ihc_decay_half_life_days);
- ``ihc``: the API's shares.

So Σ credit = 1 per conversion for every model. ``markov`` is data-driven instead
(:mod:`include.markov`): it splits the range's N attributed conversions and their revenue over
the channels by removal effect, so it exists for a run's range as a whole, not per conversion.
Its rows per session date split each channel's credit over the dates of that channel's sessions
in the range's converting journeys, in proportion to their number; a channel that earns credit
without such a session (its non-converting paths lead to channels that convert) has no date to
carry it, so its credit is in the range's totals only.

Like channel_reporting the table is recomputed from the tables for the session dates a run can
touch, so reruns give the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from include import markov
from include.report import ATTRIBUTED_SESSIONS, channel_named
from include.settings import RunWindow
from include.warehouse import Warehouse

MODELS = ("ihc", "first_touch", "last_touch", "linear", "position_based", "time_decay", "markov")

COMPARISON_COLUMNS = ("model", "channel_name", "date", "credit", "revenue")

DELETE_COMPARISON_WINDOW = "DELETE FROM channel_model_comparison WHERE date BETWEEN :first AND :last"

_CREDIT = {
    "ihc": "ihc",
    "first_touch": "CASE WHEN position = 1 THEN 1.0 ELSE 0.0 END",
    "last_touch": "CASE WHEN position = touches THEN 1.0 ELSE 0.0 END",
    "linear": "1.0 / touches",
    "position_based": """CASE WHEN touches = 1 THEN 1.0 WHEN touches = 2 THEN 0.5
                              WHEN position = 1 OR position = touches THEN 0.4
                              ELSE 0.2 / (touches - 2) END""",
    "time_decay": "decay / SUM(decay) OVER (PARTITION BY conv_id)",
}


def _credited(conversions: str) -> str:
    """CTEs giving every rule-based model's credit for each session of the chosen conversions'
    journeys.

    The whole journey of each chosen conversion is ranked, so a journey that starts before a
    date window still has its first touch where it is. The decay weights count the half-lives
    back from the journey's latest session, which keeps weight 1, so a long look-back with a
    short half-life never leaves a journey without weight; a weight under 2^-1000 is 0 (where
    PostgreSQL's POWER would fail on the underflow)."""
    union = " UNION ALL ".join(
        f"SELECT '{model}' AS model, channel_name, date, revenue, {credit} AS credit FROM decayed"
        for model, credit in _CREDIT.items()
    )
    return f"""
    WITH chosen AS ({conversions}),
    timed AS (
        SELECT a.conv_id, {channel_named("s.channel_name")} AS channel_name,
               s.event_date AS date, a.ihc, CAST(COALESCE(c.revenue, 0) AS {{float}}) AS revenue,
               ROW_NUMBER() OVER (PARTITION BY a.conv_id
                                  ORDER BY s.event_date{{bytewise}}, s.event_time{{bytewise}},
                                           s.session_id{{bytewise}}) AS position,
               CAST(COUNT(*) OVER (PARTITION BY a.conv_id) AS {{float}}) AS touches,
               {{hours_before_conversion}} AS hours
        FROM chosen t
        JOIN attribution_customer_journey a ON a.conv_id = t.conv_id
        JOIN session_sources s ON s.session_id = a.session_id
        JOIN conversions c ON c.conv_id = a.conv_id),
    positioned AS (
        SELECT conv_id, channel_name, date, ihc, revenue, position, touches,
               (hours - MIN(hours) OVER (PARTITION BY conv_id)) / (24.0 * :half_life_days) AS half_lives
        FROM timed),
    decayed AS (
        SELECT conv_id, channel_name, date, ihc, revenue, position, touches,
               CASE WHEN half_lives > 1000 THEN 0.0 ELSE POWER(CAST(2 AS {{float}}), -half_lives) END AS decay
        FROM positioned),
    credited AS ({union})"""


WITH_A_SESSION_IN_WINDOW = f"""
    SELECT DISTINCT a.conv_id
    FROM {ATTRIBUTED_SESSIONS}
    WHERE s.session_id = a.session_id AND s.event_date BETWEEN :first AND :last"""

DATED_IN_RANGE = "SELECT conv_id FROM conversions WHERE conv_date BETWEEN :start AND :end"

INSERT_COMPARISON_WINDOW = f"""
    INSERT INTO channel_model_comparison (model, channel_name, date, credit, revenue)
    {_credited(WITH_A_SESSION_IN_WINDOW)}
    SELECT model, channel_name, date, SUM(credit), SUM(credit * revenue)
    FROM credited
    WHERE date BETWEEN :first AND :last
    GROUP BY model, channel_name, date"""

# One run's conversions, whatever their sessions' dates: each model's credits sum to the
# number of the range's attributed conversions.
RANGE_CREDITS = f"""
    {_credited(DATED_IN_RANGE)}
    SELECT model, channel_name, SUM(credit), SUM(credit * revenue)
    FROM credited
    GROUP BY model, channel_name"""

# Each model's credit per channel over the session dates [first, last], as the table holds it.
WINDOW_CREDITS = """
    SELECT model, channel_name, SUM(credit), SUM(revenue)
    FROM channel_model_comparison
    WHERE date BETWEEN :first AND :last
    GROUP BY model, channel_name
    ORDER BY channel_name, model"""

# What the Markov model splits: the range's attributed conversions and their revenue.
RANGE_ATTRIBUTED = """
    SELECT COUNT(*), SUM(CAST(COALESCE(c.revenue, 0) AS {float}))
    FROM conversions c
    WHERE c.conv_date BETWEEN :start AND :end
      AND EXISTS (SELECT 1 FROM attribution_customer_journey a WHERE a.conv_id = c.conv_id)"""

# The sessions of the range's converting journeys per channel (named as the Markov states) and
# date: where each channel's Markov credit is put.
RANGE_JOURNEY_DAYS = f"""
    SELECT {channel_named("s.channel_name")}, s.event_date, COUNT(*)
    FROM conversions c
    JOIN attribution_customer_journey a ON a.conv_id = c.conv_id
    JOIN session_sources s ON s.session_id = a.session_id
    WHERE c.conv_date BETWEEN :start AND :end
    GROUP BY 1, 2"""


@dataclass(frozen=True)
class ModelCredit:
    """What one model gives a channel: conversions (Σ credit) and the revenue they carry."""

    model: str
    channel_name: str
    credit: float
    revenue: float


def _range(window: RunWindow) -> dict[str, str]:
    return {"start": window.dates.start, "end": window.dates.end}


def markov_credits(db: Warehouse, window: RunWindow) -> list[ModelCredit]:
    """The range's attributed conversions and their revenue, split over the channels by removal
    effect; none when nothing in the range is attributed (the paths are then not read at all)."""
    conversions, revenue = db.execute(RANGE_ATTRIBUTED, _range(window)).fetchone()
    if not conversions:
        return []
    counts = markov.transitions(db, window.dates.start, window.dates.end, window.first_session_date)
    shares = markov.shares(markov.Chain.of(counts).removal_effects())
    return [
        ModelCredit("markov", channel, conversions * share, revenue * share)
        for channel, share in sorted(shares.items())
        if share > 0
    ]


def _markov_rows(
    db: Warehouse, window: RunWindow, credits: Sequence[ModelCredit], first: str, last: str
) -> list[tuple[str, str, str, float, float]]:
    """The range's Markov credits split over the session dates [first, last] of each channel's
    sessions in the range's converting journeys, in proportion to their number."""
    by_channel = {c.channel_name: c for c in credits}
    days = [row for row in db.execute(RANGE_JOURNEY_DAYS, _range(window)) if row[0] in by_channel]
    sessions = Counter()
    for channel, _, n in days:
        sessions[channel] += n
    rows = []
    for channel, day, n in days:
        if first <= day <= last:
            part, credit = n / sessions[channel], by_channel[channel]
            rows.append(("markov", channel, day, credit.credit * part, credit.revenue * part))
    return rows


def rebuild_model_comparison(
    db: Warehouse, first: str, last: str, window: RunWindow, half_life_days: float
) -> list[ModelCredit]:
    """Recompute channel_model_comparison for the session dates [first, last], in one transaction:
    the rule-based models from the journeys with a session on those dates, the Markov model from
    the paths of ``window`` (the run's range and look-back). Returns the range's Markov credits,
    which the table holds only per date: the export needs them whole and need not walk the paths
    again."""
    params = {"first": first, "last": last, "half_life_days": half_life_days}
    # Before the write lock: the paths are the step's longest read, in parts that read the
    # committed tables on connections of their own anyway.
    credits = markov_credits(db, window)
    with db.transaction():
        db.execute(DELETE_COMPARISON_WINDOW, params)
        db.execute(INSERT_COMPARISON_WINDOW, params)
        db.insert_many("channel_model_comparison", COMPARISON_COLUMNS, _markov_rows(db, window, credits, first, last))
    return credits


def credits_by_channel(
    db: Warehouse, window: RunWindow, half_life_days: float, markov: Sequence[ModelCredit]
) -> list[ModelCredit]:
    """Every model's credit per channel for the conversions dated in the window's range; the
    Markov credits as the report step computed them."""
    params = {**_range(window), "half_life_days": half_life_days}
    rule_based = [ModelCredit(*row) for row in db.execute(RANGE_CREDITS, params)]
    return sorted([*rule_based, *markov], key=lambda c: (c.channel_name, c.model))


def credits_between(db: Warehouse, first: str, last: str) -> list[ModelCredit]:
    """Every model's credit per channel to the sessions dated [first, last], whichever
    conversions they lead to: set beside the channels' cost on the same dates."""
    return [ModelCredit(*row) for row in db.execute(WINDOW_CREDITS, {"first": first, "last": last})]
