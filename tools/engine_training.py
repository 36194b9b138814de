"""Training the offline engine: the parameters of one conversion type, from its journeys alone.

The journeys come from the pipeline's own queries and journey step (same look-back, same rules
for bad rows and long journeys), over every conversion of the range: quantiles need the whole
set, never one request's worth. The rule (docs/ihc-model.md): the initializer bounds are the
55th and 90th percentiles of all gaps between consecutive sessions, the closer uses the
distribution of all times-to-conversion, and levels, weights and holder constants are fixed.

``python -m tools.engine_training --help``; ``make engine-train``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

from include import extract, schema, settings, warehouse
from include.journeys import Journey, JourneyStats, build_journeys
from include.settings import DateRange, SettingError
from include.warehouse import WarehouseError, WarehouseTarget
from tools import engine_parameters
from tools.engine_parameters import ParameterFile, ParameterFileError, TrainedOn
from tools.ihc_engine import SECONDS_PER_HOUR, EngineParameters
from tools.sample_data import SampleSpec, generate

GAP_PERCENTILES = (55.0, 90.0)
CLOSER_LEVELS = (0.08, 0.70)
WEIGHTS = (0.323, 0.374, 0.303)
HOLDER_POWER = 2.5
HOLDER_DIVISOR = 4.0
# The toc distribution is kept as quantiles at levels 0, 0.001, ..., 1: F is then known to
# 0.001, whatever the size of the training set.
QUANTILE_STEPS = 1000
DIGITS = 6


class TrainingError(ValueError):
    """The journeys of a range cannot train the engine; nothing was written."""


@dataclass
class Samples:
    """What training reads off the journeys, in hours."""

    journeys: int = 0
    multi_session_journeys: int = 0
    gaps: list[float] = field(default_factory=list)
    tocs: list[float] = field(default_factory=list)


def journey_samples(journeys: Iterable[Journey]) -> Samples:
    """Gaps between consecutive sessions and times from each session to the conversion session."""
    samples = Samples()
    for journey in journeys:
        samples.journeys += 1
        if len(journey.sessions) < 2:
            continue
        samples.multi_session_journeys += 1
        times = [datetime.fromisoformat(s.timestamp) for s in journey.sessions]
        hours = [(t - times[0]).total_seconds() / SECONDS_PER_HOUR for t in times]
        samples.gaps.extend(b - a for a, b in pairwise(hours))
        samples.tocs.extend(hours[-1] - h for h in hours[:-1])
    return samples


def percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of a sorted, non-empty list."""
    position = (len(ordered) - 1) * p / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def trained_parameters(samples: Samples) -> EngineParameters:
    gaps, tocs = sorted(samples.gaps), sorted(samples.tocs)
    start, end = (round(percentile(gaps, p), DIGITS) for p in GAP_PERCENTILES)
    return EngineParameters(
        initializer_start_hours=start,
        initializer_end_hours=end,
        toc_quantiles_hours=tuple(
            round(percentile(tocs, 100 * k / QUANTILE_STEPS), DIGITS) for k in range(QUANTILE_STEPS + 1)
        ),
        closer_levels=CLOSER_LEVELS,
        weights=WEIGHTS,
        holder_power=HOLDER_POWER,
        holder_divisor=HOLDER_DIVISOR,
    )


def warehouse_journeys(
    target: WarehouseTarget, window: DateRange, lookback_days: int, stats: JourneyStats
) -> Iterator[Journey]:
    """The journeys of every conversion dated within ``window``, streamed from one consistent read.

    The warehouse is prepared as the pipeline's first step does it (output tables, and the
    indexes without which the session query scans the whole table once per user).
    """
    with target.open() as db:
        schema.init_schema(db)
        with db.snapshot():
            conversions = list(extract.iter_conversions(db, window.start, window.end))
            sessions = extract.iter_sessions_of_converting_users(db, window.start, window.end, lookback_days)
            yield from build_journeys(
                conversions, sessions, lookback_days, int(settings.MAX_SESSIONS_PER_REQUEST.default), stats
            )


def train(target: WarehouseTarget, window: DateRange, conv_type_id: str, lookback_days: int) -> ParameterFile:
    """Parameters from the journeys of every conversion dated within ``window``."""
    stats = JourneyStats()
    samples = journey_samples(warehouse_journeys(target, window, lookback_days, stats))
    if not samples.gaps:
        raise TrainingError(
            f"conversions from {window.start} to {window.end} in {target.label} have no journey of more than one "
            f"session ({stats.conversions} conversions, {samples.journeys} journeys): there are no gaps or "
            "times-to-conversion to train on; nothing was written"
        )
    trained_on = TrainedOn(
        warehouse=target.label,
        start=window.start,
        end=window.end,
        lookback_days=lookback_days,
        conversions=stats.conversions,
        journeys=samples.journeys,
        multi_session_journeys=samples.multi_session_journeys,
        gaps=len(samples.gaps),
        toc_values=len(samples.tocs),
    )
    return ParameterFile(conv_type_id, trained_parameters(samples), trained_on)


def warehouse_target(spec: str) -> WarehouseTarget:
    """A SQLite path (or ``sqlite:///path``) or a PostgreSQL URL, as in the ihc_warehouse
    connection's URI form; the label keeps no password."""
    if spec.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(spec)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return warehouse.postgres_target(spec, f"{parts.scheme}://{user}{parts.hostname}{port}{parts.path}")
    # SQLAlchemy's form: sqlite:///relative/path, sqlite:////absolute/path
    return warehouse.sqlite_target(Path(spec.removeprefix("sqlite:///")))


def describe(trained: ParameterFile) -> str:
    p, on = trained.parameters, trained.trained_on
    toc = {level: p.toc_quantiles_hours[round(level * QUANTILE_STEPS)] for level in (0.1, 0.25, 0.5, 0.75, 0.9)}
    low, high = p.closer_levels
    return "\n".join(
        [
            f"engine parameters of conversion type {trained.conv_type_id!r}",
            f"  trained on                {on.warehouse}, conversions {on.start} .. {on.end} "
            f"(look-back {on.lookback_days} days)",
            f"  journeys                  {on.journeys:,} of {on.conversions:,} conversions "
            f"({on.multi_session_journeys:,} with more than one session)",
            f"  gaps / toc values         {on.gaps:,} / {on.toc_values:,}",
            f"  initializer bounds        {p.initializer_start_hours:.2f} h .. {p.initializer_end_hours:.2f} h "
            f"({GAP_PERCENTILES[0]:g}th / {GAP_PERCENTILES[1]:g}th percentile of the gaps)",
            "  time to conversion        " + ", ".join(f"{level:.0%} ≤ {hours:.2f} h" for level, hours in toc.items()),
            f"  closer levels             F = {low:g} .. {high:g} of that distribution",
            f"  weights I / H / C         {' / '.join(f'{w:g}' for w in p.weights)}",
            f"  holder constants          p = {p.holder_power:g}, d = {p.holder_divisor:g}",
            *([f"  file                      {trained.path}"] if trained.path else []),
        ]
    )


def sample_warehouse() -> Path:
    """The sample database at its default place, generated first if missing."""
    db = settings.default_warehouse_path()
    if not db.exists():
        print(f"generating the sample database {db} ...", flush=True)
        generate(db, SampleSpec())
    return db


def ensure_default(folder: Path | None = None) -> ParameterFile:
    """The default conversion type's parameters for the offline stacks.

    Trains on the sample warehouse (generated if missing) over the sample range, unless the
    folder already holds a default file that is newer than the warehouse, or that was trained on
    something else (a user's own training is never replaced).
    """
    folder = folder or engine_parameters.engine_dir()
    db = sample_warehouse()
    target = warehouse.sqlite_target(db)
    window = DateRange(settings.SAMPLE_START_DATE, settings.SAMPLE_END_DATE)
    lookback_days = int(settings.LOOKBACK_DAYS.default)
    path = engine_parameters.file_for(folder, settings.DEFAULT_CONV_TYPE_ID)
    if path.exists():
        existing = engine_parameters.read(path)
        on = existing.trained_on
        if (on.warehouse, on.start, on.end, on.lookback_days) != (
            target.label,
            window.start,
            window.end,
            lookback_days,
        ):
            return existing
        # Recent writes may sit in the write-ahead log, not in the database file yet.
        changed = max(p.stat().st_mtime for p in (db, db.with_name(db.name + "-wal")) if p.exists())
        if path.stat().st_mtime >= changed:
            return existing
    print(f"training the local IHC engine on {db} ...", flush=True)
    return train_and_write(target, window, settings.DEFAULT_CONV_TYPE_ID, lookback_days, folder)


def train_and_write(
    target: WarehouseTarget, window: DateRange, conv_type_id: str, lookback_days: int, folder: Path
) -> ParameterFile:
    trained = train(target, window, conv_type_id, lookback_days)
    return replace(trained, path=str(engine_parameters.write(folder, trained)))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.engine_training", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--warehouse",
        help="SQLite file or postgresql:// URL (default: the sample database, generated if missing)",
    )
    parser.add_argument("--conv-type", default=settings.DEFAULT_CONV_TYPE_ID, help="conversion type (file name)")
    parser.add_argument("--start", default=settings.SAMPLE_START_DATE, help="first conversion date")
    parser.add_argument("--end", default=settings.SAMPLE_END_DATE, help="last conversion date, inclusive")
    parser.add_argument("--lookback-days", type=int, default=int(settings.LOOKBACK_DAYS.default))
    parser.add_argument(
        "--out-dir", type=Path, help=f"folder of the parameter files (env {engine_parameters.ENGINE_DIR_ENV})"
    )
    parser.add_argument(
        "--ensure-default",
        action="store_true",
        help="train the default conversion type on the sample database unless its file is newer than it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    folder = args.out_dir or engine_parameters.engine_dir()
    try:
        if args.ensure_default:
            trained = ensure_default(folder)
        else:
            target = warehouse_target(args.warehouse or str(sample_warehouse()))
            window = settings.resolve_date_range(args.start, args.end, ("--start", "--end"))
            trained = train_and_write(target, window, args.conv_type, args.lookback_days, folder)
    except (TrainingError, WarehouseError, ParameterFileError, SettingError) as exc:
        print(f"engine training failed: {exc}", file=sys.stderr)
        return 1
    print(describe(trained), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
