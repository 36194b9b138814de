"""The journey ledger: what each stored conversion's journey was when a run sent it.

Every conversion a run builds a journey for (none before it included) gets a row in
conversion_journeys: its timestamp, session count and a fingerprint of the journey as sent. A
later run builds again the journeys of the stored conversions whose look-back overlaps the
session dates it reads, and attributes again those whose fingerprint changed: a session that
arrived late or was corrected, removed, or a conversion moved in time. So a run reaches every
conversion its dates can change, not only those dated in its range.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from include.journeys import Journey, JourneyStats
from include.records import StoredJourney
from include.runfiles import StoragePath, atomic_writer, read_lines

LEDGER_FILE = "journeys/ledger.jsonl"

JOURNEY_CHANGED = "journey changed (sessions late, corrected or removed)"
REDATED = "conversion re-dated"
REPROCESSED = "reprocess param"

LEDGER_COLUMNS = ("conv_id", "conv_timestamp", "conv_date", "sessions", "fingerprint")


@dataclass(frozen=True, slots=True)
class LedgerRow:
    conv_id: str
    conv_timestamp: str
    conv_date: str
    sessions: int
    fingerprint: str


def fingerprint(journey: Journey) -> str:
    """A digest of everything a request carries of the journey: its conversion's time and each
    session's id, time, channel and flags."""
    payload = orjson.dumps([journey.timestamp, [dataclasses.astuple(s) for s in journey.sessions]])
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class Selection:
    """build_journeys' ``select``: keeps every conversion of the range and those stored near it
    whose journey changed (all of them with ``reprocess``), counts why, and writes a ledger row
    for each kept one."""

    def __init__(self, stored: dict[str, StoredJourney], reprocess: bool, stats: JourneyStats, sink: BinaryIO):
        self.stored, self.reprocess, self.stats, self.sink = stored, reprocess, stats, sink

    def __call__(self, journey: Journey) -> bool:
        digest = fingerprint(journey)
        before = self.stored.get(journey.conversion_id)
        if before is not None:
            reason = self._reason(before, journey, digest)
            if reason is None:
                return False
            self.stats.reattributed[reason] = self.stats.reattributed.get(reason, 0) + 1
        row = LedgerRow(journey.conversion_id, journey.timestamp, journey.timestamp[:10], len(journey.sessions), digest)
        self.sink.write(orjson.dumps(dataclasses.astuple(row), option=orjson.OPT_APPEND_NEWLINE))
        return True

    def _reason(self, before: StoredJourney, journey: Journey, digest: str) -> str | None:
        if before.conv_timestamp != journey.timestamp:
            return REDATED
        if before.fingerprint != digest:
            return JOURNEY_CHANGED
        return REPROCESSED if self.reprocess else None


@contextmanager
def selection(
    run_dir: StoragePath, stored: dict[str, StoredJourney], reprocess: bool, stats: JourneyStats
) -> Iterator[Selection]:
    """A Selection writing the run's LEDGER_FILE, which exists once the block ends cleanly."""
    with atomic_writer(run_dir / LEDGER_FILE) as sink:
        yield Selection(stored, reprocess, stats, sink)


def read_ledger(run_dir: StoragePath) -> Iterator[LedgerRow]:
    for line in read_lines(run_dir / LEDGER_FILE):
        yield LedgerRow(*orjson.loads(line))
