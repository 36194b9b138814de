"""Channel roles: how much of the IHC model's initializer, holder and closer credit each channel
earns per day, from the API's phase shares in attribution_phases: channel_roles.

Each phase sums to 1 per conversion (holder to 0 when the journey has no holder mass), so a
channel's initializer credit counts the journeys it started, its closer credit the journeys it
closed. Like channel_reporting the table is recomputed from the tables for the session dates a
run can touch, so reruns give the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from include.report import channel_named
from include.warehouse import Warehouse

ROLES = ("initializer", "holder", "closer")
ROLE_COLUMNS = ("channel_name", "date", *ROLES, *(f"{role}_revenue" for role in ROLES))

DELETE_ROLES_WINDOW = "DELETE FROM channel_roles WHERE date BETWEEN :first AND :last"

# As the report's attributed sessions: the phases drive and look each session up by its key,
# summed in a fixed order so that a rerun gives the same sums, bit for bit.
ROLES_WINDOW_QUERY = f"""
    WITH phased AS MATERIALIZED (
        SELECT {channel_named("s.channel_name")} AS channel_name,
               s.event_date AS date, p.initializer, p.holder, p.closer,
               CAST(COALESCE(c.revenue, 0) AS {{float}}) AS revenue
        FROM attribution_phases p CROSS JOIN session_sources s
        JOIN conversions c ON c.conv_id = p.conv_id
        WHERE s.session_id = p.session_id AND s.event_date BETWEEN :first AND :last AND {{event_date_is_iso}}
        ORDER BY s.event_date, s.session_id, p.conv_id)
    SELECT channel_name, date, SUM(initializer), SUM(holder), SUM(closer),
           SUM(initializer * revenue), SUM(holder * revenue), SUM(closer * revenue)
    FROM phased
    GROUP BY channel_name, date"""

ROLE_ROWS = f"SELECT {', '.join(ROLE_COLUMNS)} FROM channel_roles ORDER BY date, channel_name"

WINDOW_ROLE_ROWS = f"""
    SELECT {", ".join(ROLE_COLUMNS)} FROM channel_roles
    WHERE date BETWEEN :first AND :last ORDER BY date, channel_name"""


@dataclass(frozen=True)
class RoleRow:
    """One channel's phase credit on one day, and the revenue each phase carries."""

    channel_name: str
    date: str
    initializer: float
    holder: float
    closer: float
    initializer_revenue: float
    holder_revenue: float
    closer_revenue: float


def rebuild_roles(db: Warehouse, first: str, last: str) -> int:
    """Recompute channel_roles for the session dates [first, last] in one transaction; its rows."""
    params = {"first": first, "last": last}
    with db.transaction():
        rows = db.execute(ROLES_WINDOW_QUERY, params).fetchall()
        db.execute(DELETE_ROLES_WINDOW, params)
        db.insert_many("channel_roles", ROLE_COLUMNS, rows)
    return len(rows)


def role_rows(db: Warehouse) -> Iterator[RoleRow]:
    for row in db.stream(ROLE_ROWS, {}):
        yield RoleRow(*row)


def role_rows_between(db: Warehouse, first: str, last: str) -> list[RoleRow]:
    """The rows of the session dates [first, last]: one run's window, for its HTML report."""
    return [RoleRow(*row) for row in db.execute(WINDOW_ROLE_ROWS, {"first": first, "last": last})]
