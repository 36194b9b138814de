"""Synthetic challenge-shaped warehouse: deterministic for a seed, scalable by a factor.

Shaped after the published facts of the original challenge database:
16 channels over 10 days, conversions on the last 7, ~3 % of conversions without a session
before them, mostly short journeys with a long tail, a few users converting twice, sessions
exactly at a conversion's timestamp, paid channels carrying the cost, some NULL costs.

``python -m tools.sample_data --out data/challenge.db`` writes it; ``--scale`` multiplies
everything, ``--background-factor`` only the non-converting traffic.
"""

from __future__ import annotations

import argparse
import math
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlite_utils

FIRST_DAY = datetime(2023, 8, 29)
DAYS = 10
CONVERSION_DAYS = 7
BASE_SESSIONS = 450_616
BASE_CONVERSIONS = 2_000
BATCH = 50_000

# channel: (share of sessions, mean cost per session in EUR)
CHANNELS: dict[str, tuple[float, float]] = {
    "Performance Max": (0.10, 2.07),
    "FB & IG Ads": (0.15, 1.72),
    "Paid Search Non Brand": (0.08, 1.03),
    "Paid Search Brand": (0.08, 0.4),
    "Microsoft Ads": (0.02, 0.69),
    "Pinterest Ads": (0.02, 0.46),
    "TikTok Ads": (0.03, 0.57),
    "YouTube Ads": (0.02, 0.69),
    "Affiliate & Partnerships": (0.03, 0.91),
    "Lead Generation": (0.01, 1.14),
    "Newsletter & Email": (0.05, 0.01),
    "Organic Traffic": (0.18, 0.0),
    "Direct Traffic": (0.15, 0.0),
    "Referral": (0.03, 0.0),
    "Social Organic": (0.03, 0.0),
    "Untracked Conversions": (0.02, 0.0),
}
JOURNEY_LENGTHS = {1: 0.58, 2: 0.21, 3: 0.10, 4: 0.04}
NO_SESSION_SHARE = 0.03
TWICE_SHARE = 0.005
AT_CONVERSION_SHARE = 0.01
NULL_COST_SHARE = 0.03
MAX_JOURNEY = 37

SCHEMA = {
    "session_sources": (
        {
            "session_id": str,
            "user_id": str,
            "event_date": str,
            "event_time": str,
            "channel_name": str,
            "holder_engagement": int,
            "closer_engagement": int,
            "impression_interaction": int,
        },
        "session_id",
    ),
    "conversions": (
        {"conv_id": str, "user_id": str, "conv_date": str, "conv_time": str, "revenue": float},
        "conv_id",
    ),
    "session_costs": ({"session_id": str, "cost": float}, "session_id"),
}


@dataclass(frozen=True)
class SampleSpec:
    seed: int = 42
    scale: float = 1.0
    background_factor: float = 1.0

    @property
    def conversions(self) -> int:
        return max(1, round(BASE_CONVERSIONS * self.scale))


class Generator:
    def __init__(self, spec: SampleSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.channels = list(CHANNELS)
        self.channel_weights = [share for share, _ in CHANNELS.values()]
        self.sessions = 0

    def _channel(self) -> str:
        return self.rng.choices(self.channels, self.channel_weights)[0]

    def _journey_length(self) -> int:
        roll = self.rng.random()
        for length, share in JOURNEY_LENGTHS.items():
            if roll < share:
                return length
            roll -= share
        if self.rng.random() < 0.05:
            return self.rng.randint(10, MAX_JOURNEY)
        return min(MAX_JOURNEY, 5 + int(self.rng.expovariate(1 / 1.4)))

    def _session(self, user: str, at: datetime, converting: bool) -> tuple:
        self.sessions += 1
        holder, closer, impression = (0.92, 0.78, 0.0) if converting else (0.5, 0.3, 0.05)
        return (
            f"S{self.spec.seed:03d}{self.sessions:010d}",
            user,
            at.strftime("%Y-%m-%d"),
            at.strftime("%H:%M:%S"),
            self._channel(),
            int(self.rng.random() < holder),
            int(self.rng.random() < closer),
            int(self.rng.random() < impression),
        )

    def cost_row(self, session: tuple) -> tuple:
        mean = CHANNELS[session[4]][1]
        if self.rng.random() < NULL_COST_SHARE:
            return (session[0], None)
        return (session[0], round(mean * self.rng.uniform(0.5, 1.5), 4) if mean else 0.0)

    def _random_time(self, first_day: int, days: int) -> datetime:
        return FIRST_DAY + timedelta(seconds=self.rng.randrange((first_day * 86_400), (first_day + days) * 86_400))

    def _journey_times(self, conversion: datetime, length: int) -> list[datetime]:
        """Session times before ``conversion``, newest last; most journeys span under a day."""
        long_gaps = length > 1 and self.rng.random() < 0.1
        times: list[datetime] = []
        at = conversion - timedelta(seconds=1 + int(self.rng.lognormvariate(math.log(600), 1.0)))
        for _ in range(length):
            times.append(max(at, FIRST_DAY))
            gap_hours = self.rng.expovariate(1 / (30 if long_gaps else 1.5))
            at -= timedelta(seconds=1 + int(gap_hours * 3600))
        return sorted(times)

    def conversions_and_sessions(self) -> Iterator[tuple[str, tuple]]:
        """Converting users: ('conversion', row) and ('session', row) items."""
        total = self.spec.conversions
        user_no = 0
        made = 0
        while made < total:
            user_no += 1
            user = f"U{self.spec.seed:03d}{user_no:08d}"
            twice = made + 1 < total and self.rng.random() < TWICE_SHARE
            conv_times = sorted(
                self._random_time(DAYS - CONVERSION_DAYS, CONVERSION_DAYS) for _ in range(2 if twice else 1)
            )
            for conv_time in conv_times:
                made += 1
                revenue = round(self.rng.lognormvariate(math.log(58) - 0.18, 0.6), 2)
                yield (
                    "conversion",
                    (
                        f"C{self.spec.seed:03d}{made:08d}",
                        user,
                        conv_time.strftime("%Y-%m-%d"),
                        conv_time.strftime("%H:%M:%S"),
                        revenue,
                    ),
                )
                if self.rng.random() >= NO_SESSION_SHARE:
                    for at in self._journey_times(conv_time, self._journey_length()):
                        yield "session", self._session(user, at, converting=True)
                if self.rng.random() < AT_CONVERSION_SHARE:
                    yield "session", self._session(user, conv_time, converting=True)
            if self.rng.random() < 0.2:
                after = conv_times[-1] + timedelta(minutes=self.rng.randint(1, 600))
                if after < FIRST_DAY + timedelta(days=DAYS):
                    yield "session", self._session(user, after, converting=False)

    def background_sessions(self, count: int) -> Iterator[tuple]:
        """Sessions of users who never convert, 1-5 each over the whole period."""
        user_no = 0
        made = 0
        while made < count:
            user_no += 1
            user = f"B{self.spec.seed:03d}{user_no:09d}"
            for _ in range(min(count - made, self.rng.randint(1, 5))):
                made += 1
                yield self._session(user, self._random_time(0, DAYS), converting=False)


def _create_tables(db: sqlite_utils.Database) -> None:
    for table, (columns, pk) in SCHEMA.items():
        db[table].create(columns, pk=pk, not_null={pk})


def _insert(conn: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def generate(path: Path, spec: SampleSpec) -> dict[str, int]:
    """Write a new database at ``path`` (replacing it atomically); returns the row counts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    gen = Generator(spec)
    db = sqlite_utils.Database(tmp)
    _create_tables(db)
    conn = db.conn
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    counts = {"conversions": 0, "session_sources": 0}
    with conn:
        conversions, sessions = [], []
        for kind, row in gen.conversions_and_sessions():
            (conversions if kind == "conversion" else sessions).append(row)
        _insert(conn, "conversions", conversions)
        _insert(conn, "session_sources", sessions)
        _insert(conn, "session_costs", [gen.cost_row(s) for s in sessions])
        counts["conversions"] = len(conversions)
        background = max(0, round((BASE_SESSIONS * spec.scale - len(sessions)) * spec.background_factor))
        batch: list[tuple] = []
        for row in gen.background_sessions(background):
            batch.append(row)
            if len(batch) == BATCH:
                _insert(conn, "session_sources", batch)
                _insert(conn, "session_costs", [gen.cost_row(s) for s in batch])
                batch = []
        _insert(conn, "session_sources", batch)
        _insert(conn, "session_costs", [gen.cost_row(s) for s in batch])
        counts["session_sources"] = len(sessions) + background
    db.close()
    tmp.replace(path)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.sample_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="SQLite file to write (replaced)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies conversions and sessions")
    parser.add_argument("--background-factor", type=float, default=1.0, help="multiplies non-converting sessions")
    args = parser.parse_args(argv)
    counts = generate(args.out, SampleSpec(args.seed, args.scale, args.background_factor))
    print(f"wrote {args.out}: {counts['session_sources']:,} sessions, {counts['conversions']:,} conversions")


if __name__ == "__main__":
    main()
