"""Input records as read from the warehouse; timestamps are UTC `YYYY-MM-DD HH:MM:SS` text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    user_id: str
    timestamp: str
    channel_name: str
    holder_engagement: int
    closer_engagement: int
    impression_interaction: int


@dataclass(frozen=True, slots=True)
class Conversion:
    conv_id: str
    user_id: str
    timestamp: str
    revenue: float


@dataclass(frozen=True, slots=True)
class StoredJourney:
    """A conversion's journey as a run last sent it (conversion_journeys)."""

    conv_id: str
    conv_timestamp: str
    fingerprint: str
