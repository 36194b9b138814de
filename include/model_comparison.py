"""Rule-based attribution models next to IHC, from the same journeys: channel_model_comparison.

Every attributed conversion's journey is its rows in attribution_customer_journey (the sessions
sent to the API, in time order as the journey step ordered them). Each model splits one
conversion over them:

- ``first_touch``: all credit to the first session;
- ``last_touch``: all credit to the last (the conversion session);
- ``linear``: 1 / n to each of n sessions;
- ``position_based`` (40/20/40): 0.4 to the first and the last, 0.2 shared by the sessions
  between; a journey of one session gives it 1, of two sessions 0.5 each;
- ``ihc``: the API's shares.

So Σ credit = 1 per conversion for every model. Like channel_reporting the table is recomputed
from the tables for the session dates a run can touch, so reruns give the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.report import ATTRIBUTED_SESSIONS, NO_CHANNEL
from include.settings import DateRange
from include.warehouse import Warehouse

MODELS = ("ihc", "first_touch", "last_touch", "linear", "position_based")

DELETE_COMPARISON_WINDOW = "DELETE FROM channel_model_comparison WHERE date BETWEEN :first AND :last"

_CREDIT = {
    "ihc": "ihc",
    "first_touch": "CASE WHEN position = 1 THEN 1.0 ELSE 0.0 END",
    "last_touch": "CASE WHEN position = touches THEN 1.0 ELSE 0.0 END",
    "linear": "1.0 / touches",
    "position_based": """CASE WHEN touches = 1 THEN 1.0 WHEN touches = 2 THEN 0.5
                              WHEN position = 1 OR position = touches THEN 0.4
                              ELSE 0.2 / (touches - 2) END""",
}


def _credited(conversions: str) -> str:
    """CTEs giving every model's credit for each session of the chosen conversions' journeys.

    The whole journey of each chosen conversion is ranked, so a journey that starts before a
    date window still has its first touch where it is."""
    union = " UNION ALL ".join(
        f"SELECT '{model}' AS model, channel_name, date, revenue, {credit} AS credit FROM positioned"
        for model, credit in _CREDIT.items()
    )
    return f"""
    WITH chosen AS ({conversions}),
    positioned AS (
        SELECT COALESCE(NULLIF(TRIM(s.channel_name), ''), '{NO_CHANNEL}') AS channel_name,
               s.event_date AS date, a.ihc, CAST(COALESCE(c.revenue, 0) AS {{float}}) AS revenue,
               ROW_NUMBER() OVER (PARTITION BY a.conv_id
                                  ORDER BY s.event_date{{bytewise}}, s.event_time{{bytewise}},
                                           s.session_id{{bytewise}}) AS position,
               CAST(COUNT(*) OVER (PARTITION BY a.conv_id) AS {{float}}) AS touches
        FROM chosen t
        JOIN attribution_customer_journey a ON a.conv_id = t.conv_id
        JOIN session_sources s ON s.session_id = a.session_id
        JOIN conversions c ON c.conv_id = a.conv_id),
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
    GROUP BY model, channel_name
    ORDER BY channel_name, model"""


@dataclass(frozen=True)
class ModelCredit:
    """What one model gives a channel: conversions (Σ credit) and the revenue they carry."""

    model: str
    channel_name: str
    credit: float
    revenue: float


def rebuild_model_comparison(db: Warehouse, first: str, last: str) -> None:
    """Recompute channel_model_comparison for the session dates [first, last], in one transaction."""
    params = {"first": first, "last": last}
    with db.transaction():
        db.execute(DELETE_COMPARISON_WINDOW, params)
        db.execute(INSERT_COMPARISON_WINDOW, params)


def credits_by_channel(db: Warehouse, dates: DateRange) -> list[ModelCredit]:
    """Every model's credit per channel for the conversions dated in ``dates``."""
    return [ModelCredit(*row) for row in db.execute(RANGE_CREDITS, {"start": dates.start, "end": dates.end})]
