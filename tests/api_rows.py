"""API request rows for tests that talk to the IHC API or the local server, built by the client's
own wire format."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

from include.ihc_client import (
    ApiJourney,
    ApiTarget,
    Attribution,
    ClientSettings,
    RequestLimits,
    attribute_journeys,
    iter_requests,
    journey_rows,
)
from include.journeys import Journey
from include.records import Session

CHANNELS = ("FB & IG Ads", "Direct Traffic", "Paid Search Brand")


def pack_requests(journeys: Iterable[ApiJourney], max_journeys: int, max_sessions: int) -> list[list[ApiJourney]]:
    """All the requests of ``journeys`` at once, as the client packs them (iter_requests)."""
    return list(iter_requests(journeys, RequestLimits(max_journeys, max_sessions)))


def journey(conversion_id: str, sessions: int, start: str = "2023-09-01 08:00:00", step_hours: int = 5) -> ApiJourney:
    """Sessions ``step_hours`` apart, channels in turn, every other one closer-engaged."""
    first = datetime.fromisoformat(start)
    return journey_rows(
        Journey(
            conversion_id,
            tuple(
                Session(
                    session_id=f"{conversion_id}-s{i + 1}",
                    user_id="u",
                    timestamp=(first + timedelta(hours=step_hours * i)).strftime("%Y-%m-%d %H:%M:%S"),
                    channel_name=CHANNELS[i % 3],
                    holder_engagement=1,
                    closer_engagement=i % 2,
                    impression_interaction=0,
                )
                for i in range(sessions)
            ),
        )
    )


class Attributed(NamedTuple):
    """A chunk's outcome with the rows the client handed over."""

    attributions: list[Attribution]
    requests: int
    attempts: int


def attribute_collecting(journeys: Iterable[ApiJourney], target: ApiTarget, settings: ClientSettings) -> Attributed:
    rows: list[Attribution] = []
    outcome = attribute_journeys(journeys, target, settings, rows.extend)
    return Attributed(rows, outcome.requests, outcome.attempts)
