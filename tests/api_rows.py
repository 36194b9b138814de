"""API request rows for tests that talk to the IHC API or the local server."""

from __future__ import annotations

from datetime import datetime, timedelta

CHANNELS = ("FB & IG Ads", "Direct Traffic", "Paid Search Brand")


def journey(conversion_id: str, sessions: int, start: str = "2023-09-01 08:00:00", step_hours: int = 5) -> list[dict]:
    """API rows of one journey, like ``Journey.to_api_rows``; the last one is the conversion."""
    first = datetime.fromisoformat(start)
    return [
        {
            "conversion_id": conversion_id,
            "session_id": f"{conversion_id}-s{i + 1}",
            "timestamp": (first + timedelta(hours=step_hours * i)).strftime("%Y-%m-%d %H:%M:%S"),
            "channel_label": CHANNELS[i % 3],
            "holder_engagement": 1,
            "closer_engagement": i % 2,
            "conversion": int(i == sessions - 1),
            "impression_interaction": 0,
        }
        for i in range(sessions)
    ]
