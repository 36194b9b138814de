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
- ``ihc``: the API's shares;
- ``markov``: the removal-effect model's shares, stored per session in attribution_markov
  (:mod:`include.markov`: a model per conversion date, fitted on the data of its look-back).

So Σ credit = 1 per conversion for every model.

Like channel_reporting the table is recomputed from the tables for the session dates a run can
touch, so reruns give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    # Summed in the journey's order: the same bits whatever order the rows come in.
    "time_decay": """decay / SUM(decay) OVER (PARTITION BY conv_id ORDER BY position
                                              ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)""",
    "markov": "markov",
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
        f"SELECT '{model}' AS model, channel_name, date, revenue, {credit} AS credit, conv_id, position FROM decayed"
        for model, credit in _CREDIT.items()
    )
    return f"""
    WITH chosen AS ({conversions}),
    timed AS (
        SELECT a.conv_id, {channel_named("s.channel_name")} AS channel_name,
               s.event_date AS date, a.ihc, COALESCE(m.credit, 0) AS markov,
               CAST(COALESCE(c.revenue, 0) AS {{float}}) AS revenue,
               ROW_NUMBER() OVER (PARTITION BY a.conv_id
                                  ORDER BY s.event_date{{bytewise}}, s.event_time{{bytewise}},
                                           s.session_id{{bytewise}}) AS position,
               CAST(COUNT(*) OVER (PARTITION BY a.conv_id) AS {{float}}) AS touches,
               {{hours_before_conversion}} AS hours
        FROM chosen t
        JOIN attribution_customer_journey a ON a.conv_id = t.conv_id
        JOIN session_sources s ON s.session_id = a.session_id
        JOIN conversions c ON c.conv_id = a.conv_id
        LEFT JOIN attribution_markov m ON m.conv_id = a.conv_id AND m.session_id = a.session_id),
    positioned AS (
        SELECT conv_id, channel_name, date, ihc, markov, revenue, position, touches,
               (hours - MIN(hours) OVER (PARTITION BY conv_id)) / (24.0 * :half_life_days) AS half_lives
        FROM timed),
    decayed AS (
        SELECT conv_id, channel_name, date, ihc, markov, revenue, position, touches,
               CASE WHEN half_lives > 1000 THEN 0.0 ELSE POWER(CAST(2 AS {{float}}), -half_lives) END AS decay
        FROM positioned),
    credited AS ({union})"""


WITH_A_SESSION_IN_WINDOW = f"""
    SELECT DISTINCT a.conv_id
    FROM {ATTRIBUTED_SESSIONS}
    WHERE s.session_id = a.session_id AND s.event_date BETWEEN :first AND :last"""

DATED_IN_RANGE = "SELECT conv_id FROM conversions WHERE conv_date BETWEEN :start AND :end"

# The credits are summed in a fixed order (as channel_reporting's are): every run rewrites the
# attributions, so their physical order may change, and a rerun, a backfill or one run over the
# same days must give the same sums, bit for bit.
COMPARISON_WINDOW = f"""
    {_credited(WITH_A_SESSION_IN_WINDOW)},
    ordered AS MATERIALIZED (
        SELECT model, channel_name, date, credit, credit * revenue AS revenue
        FROM credited
        WHERE date BETWEEN :first AND :last
        ORDER BY model, channel_name, date, conv_id, position)
    SELECT model, channel_name, date, SUM(credit), SUM(revenue)
    FROM ordered
    GROUP BY model, channel_name, date"""

# One run's conversions, whatever their sessions' dates: each model's credits sum to the
# number of the range's attributed conversions.
RANGE_CREDITS = f"""
    {_credited(DATED_IN_RANGE)},
    ordered AS MATERIALIZED (
        SELECT model, channel_name, credit, credit * revenue AS revenue
        FROM credited
        ORDER BY model, channel_name, conv_id, position)
    SELECT model, channel_name, SUM(credit), SUM(revenue)
    FROM ordered
    GROUP BY model, channel_name"""

# Each model's credit per channel over the session dates [first, last], as the table holds it.
WINDOW_CREDITS = """
    SELECT model, channel_name, SUM(credit), SUM(revenue)
    FROM channel_model_comparison
    WHERE date BETWEEN :first AND :last
    GROUP BY model, channel_name
    ORDER BY channel_name, model"""


@dataclass(frozen=True)
class ModelCredit:
    """What one model gives a channel: conversions (Σ credit) and the revenue they carry."""

    model: str
    channel_name: str
    credit: float
    revenue: float


def rebuild_model_comparison(db: Warehouse, first: str, last: str, half_life_days: float) -> None:
    """Recompute channel_model_comparison for the session dates [first, last] from the stored
    journeys and their Markov credits, in one transaction: read under the write lock, so a run
    going at the same time never has its credits replaced by rows read before them."""
    params = {"first": first, "last": last, "half_life_days": half_life_days}
    with db.transaction():
        rows = db.execute(COMPARISON_WINDOW, params).fetchall()
        db.execute(DELETE_COMPARISON_WINDOW, params)
        db.insert_many("channel_model_comparison", COMPARISON_COLUMNS, rows)


def credits_by_channel(db: Warehouse, window: RunWindow, half_life_days: float) -> list[ModelCredit]:
    """Every model's credit per channel for the conversions dated in the window's range."""
    params = {"start": window.dates.start, "end": window.dates.end, "half_life_days": half_life_days}
    rows = [ModelCredit(*row) for row in db.execute(RANGE_CREDITS, params)]
    return sorted(rows, key=lambda c: (c.channel_name, c.model))


def credits_between(db: Warehouse, first: str, last: str) -> list[ModelCredit]:
    """Every model's credit per channel to the sessions dated [first, last], whichever
    conversions they lead to: set beside the channels' cost on the same dates."""
    return [ModelCredit(*row) for row in db.execute(WINDOW_CREDITS, {"first": first, "last": last})]
