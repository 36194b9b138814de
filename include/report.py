"""The report: channel_reporting recomputed from the tables for the session dates a run can touch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from include.settings import RunWindow
from include.warehouse import Warehouse

DELETE_REPORT_WINDOW = "DELETE FROM channel_reporting WHERE date BETWEEN :first AND :last"


NO_CHANNEL = "(no channel)"


def channel_named(column: str) -> str:
    """A session's channel as every table and chart names it: trimmed, "(no channel)" if blank."""
    return f"COALESCE(NULLIF(TRIM({column}), ''), '{NO_CHANNEL}')"


# The attributions (a few rows per conversion) drive and look each session up by its key, the
# date filtered after: the window's sessions, non-converting traffic included, are read once, by
# the costs. SQLite keeps the left table of a CROSS JOIN outer (without it, it walks the date
# index); PostgreSQL plans it as an inner join, by its statistics, which choose the same.
ATTRIBUTED_SESSIONS = "attribution_customer_journey a CROSS JOIN session_sources s"


# Cost and attribution are aggregated separately and joined per (channel, day): joining costs
# to attributions row by row would count a session's cost once per journey it is part of.
# Sessions without a channel keep their cost, under "(no channel)"; malformed dates have no day.
# The window's sessions are summed by their raw channel and date first, so the trimming and the
# date check run once per group, not once per session (tens of millions with background
# traffic); MATERIALIZED keeps both databases from pushing the date check back down to the rows.
# The attributed rows are summed in a fixed order: every run rewrites the attributions, so their
# physical order and the plan over them may change, and a rerun must give the same sums, bit for bit.
# A plain SELECT, its rows written after: PostgreSQL runs INSERT ... SELECT without parallel
# workers, and reading the window's sessions is nearly all of the step's work.
REPORT_WINDOW_QUERY = f"""
    WITH session_days AS MATERIALIZED (
        SELECT s.channel_name, s.event_date, {{cost_sum}} AS cost
        FROM session_sources s
        LEFT JOIN session_costs k ON k.session_id = s.session_id
        WHERE s.event_date BETWEEN :first AND :last
        GROUP BY s.channel_name, s.event_date),
    costs AS (
        SELECT {channel_named("s.channel_name")} AS channel_name,
               s.event_date AS date, SUM(s.cost) AS cost
        FROM session_days s
        WHERE {{event_date_is_iso}}
        GROUP BY 1, 2),
    attributed_sessions AS MATERIALIZED (
        SELECT {channel_named("s.channel_name")} AS channel_name,
               s.event_date AS date, a.ihc, a.ihc * COALESCE(c.revenue, 0) AS ihc_revenue
        FROM {ATTRIBUTED_SESSIONS}
        JOIN conversions c ON c.conv_id = a.conv_id
        WHERE s.session_id = a.session_id AND s.event_date BETWEEN :first AND :last AND {{event_date_is_iso}}
        ORDER BY s.event_date, s.session_id, a.conv_id),
    attributed AS (
        SELECT channel_name, date, SUM(ihc) AS ihc, SUM(ihc_revenue) AS ihc_revenue
        FROM attributed_sessions
        GROUP BY 1, 2)
    SELECT costs.channel_name, costs.date, costs.cost,
           COALESCE(attributed.ihc, 0), COALESCE(attributed.ihc_revenue, 0)
    FROM costs
    LEFT JOIN attributed ON attributed.channel_name = costs.channel_name
                        AND attributed.date = costs.date"""


REPORT_COLUMNS = ("channel_name", "date", "cost", "ihc", "ihc_revenue")

REPORT_WINDOW_TOTALS = """
    SELECT COUNT(*), COALESCE(SUM(cost), 0), COALESCE(SUM(ihc), 0), COALESCE(SUM(ihc_revenue), 0)
    FROM channel_reporting WHERE date BETWEEN :first AND :last"""


ALL_REPORT_ROWS = """
    SELECT channel_name, date, cost, ihc, ihc_revenue
    FROM channel_reporting ORDER BY date, channel_name"""

WINDOW_REPORT_ROWS = """
    SELECT channel_name, date, cost, ihc, ihc_revenue
    FROM channel_reporting WHERE date BETWEEN :first AND :last ORDER BY date, channel_name"""


@dataclass(frozen=True)
class ReportRow:
    channel_name: str
    date: str
    cost: float
    ihc: float
    ihc_revenue: float


@dataclass(frozen=True)
class ReportTotals:
    rows: int
    cost: float
    ihc: float
    ihc_revenue: float


def report_window(
    window: RunWindow, first_changed: str | None = None, last_changed: str | None = None
) -> tuple[str, str]:
    """Session dates whose report rows a run over the window can change.

    ``first_changed`` and ``last_changed`` are the earliest and latest session dates of the
    attributions the run replaced: further back when an earlier run used a longer look-back,
    further on when it attributed again a conversion dated after its range.
    """
    first, last = window.first_session_date, window.dates.end
    return min(first, first_changed or first), max(last, last_changed or last)


def rebuild_report(db: Warehouse, first: str, last: str) -> ReportTotals:
    """Recompute channel_reporting for the window from the tables, in one transaction."""
    params = {"first": first, "last": last}
    with db.transaction():
        rows = db.execute(REPORT_WINDOW_QUERY, params).fetchall()
        db.execute(DELETE_REPORT_WINDOW, params)
        db.insert_many("channel_reporting", REPORT_COLUMNS, rows)
        return ReportTotals(*db.execute(REPORT_WINDOW_TOTALS, params).fetchone())


def report_rows(db: Warehouse) -> Iterator[ReportRow]:
    for row in db.stream(ALL_REPORT_ROWS, {}):
        yield ReportRow(*row)


def report_rows_between(db: Warehouse, first: str, last: str) -> list[ReportRow]:
    """The rows of the session dates [first, last]: one run's window, for its HTML report."""
    return [ReportRow(*row) for row in db.execute(WINDOW_REPORT_ROWS, {"first": first, "last": last})]
