"""Export a warehouse's journeys as the file that trains a new conversion type in the IHC web app.

The journeys are read as engine training reads them (the pipeline's queries, look-back and
bad-row rules, over every conversion of the range); the file is include.training_export's. Upload
it in the web app under a new conversion type, then name that type as ``conv_type_id`` in the
extra of the ``ihc_api`` connection.

``python -m tools.export_journeys --help``; ``make export-journeys``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from include import settings
from include.journeys import JourneyStats
from include.settings import DateRange, SettingError
from include.training_export import TRAINING_CSV_FILE, EmptyExportError, TrainingExport, write_training_csv
from include.warehouse import WarehouseError, WarehouseTarget
from tools.engine_training import sample_warehouse, warehouse_journeys, warehouse_target


def checked_lookback_days(days: int) -> int:
    """The look-back within the bounds of the pipeline's Variable, named as the flag."""
    variable = settings.LOOKBACK_DAYS
    if not variable.minimum <= days <= variable.maximum:
        raise SettingError(f"--lookback-days={days} is outside the allowed range: {variable.bounds}")
    return days


def describe(exported: TrainingExport, target: WarehouseTarget, window: DateRange, stats: JourneyStats) -> str:
    return "\n".join(
        [
            f"training export of {target.label}, conversions {window.start} .. {window.end}",
            f"  conversions               {stats.conversions:,} ({stats.without_sessions:,} without sessions)",
            f"  journeys                  {exported.journeys:,}",
            f"  sessions                  {exported.sessions:,}",
            f"  file                      {exported.path}",
            "upload it in the IHC web app as a new conversion type, then set that type as conv_type_id "
            "in the extra of the ihc_api connection",
        ]
    )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.export_journeys", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--warehouse",
        help="SQLite file or postgresql:// URL (default: the sample database, generated if missing)",
    )
    parser.add_argument("--start", default=settings.SAMPLE_START_DATE, help="first conversion date")
    parser.add_argument("--end", default=settings.SAMPLE_END_DATE, help="last conversion date, inclusive")
    parser.add_argument("--lookback-days", type=int, default=int(settings.LOOKBACK_DAYS.default))
    parser.add_argument(
        "--out",
        type=Path,
        help=f"the CSV file (default: {TRAINING_CSV_FILE} in the output folder, env {settings.OUTPUT_DIR_ENV})",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    out = args.out or settings.output_dir() / TRAINING_CSV_FILE
    stats = JourneyStats()
    try:
        window = settings.resolve_date_range(args.start, args.end, ("--start", "--end"))
        lookback_days = checked_lookback_days(args.lookback_days)
        target = warehouse_target(args.warehouse or str(sample_warehouse()))
        exported = write_training_csv(warehouse_journeys(target, window, lookback_days, stats), out)
    except EmptyExportError:
        print(
            f"journey export failed: the {stats.conversions:,} conversions from {window.start} to {window.end} "
            f"in {target.label} have no journey; nothing was written to --out {out}",
            file=sys.stderr,
        )
        return 1
    except (WarehouseError, SettingError) as exc:
        print(f"journey export failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"journey export failed: cannot write --out {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(describe(exported, target, window, stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
