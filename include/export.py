"""CSV exports: channel_reporting with the two derived metrics, CPO and ROAS, and channel_roles.

CPO = cost / ihc (cost per attributed order), ROAS = ihc_revenue / cost (revenue per euro).
A zero denominator leaves the cell empty: never inf, NaN or a made-up 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from include.report import ReportRow
from include.roles import ROLE_COLUMNS, RoleRow
from include.runfiles import StoragePath, atomic_write_bytes

CSV_FILE = "channel_reporting.csv"
HEADER = ("channel_name", "date", "cost", "ihc", "ihc_revenue", "CPO", "ROAS")
ROLES_CSV_FILE = "channel_roles.csv"

# Each database adds a sum's floats in its own order, so their last digits differ: a cell is
# rounded from the value cut this many digits past its own, and a sum that is exactly a half cent
# (401.8050 as 401.80499999999915 on SQLite, 401.805 on PostgreSQL) gives the same cell on both.
NOISE_DIGITS = 6


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def fmt(value: float | None, decimals: int) -> str:
    """Half away from zero, as both databases' ROUND: a tie is decided by the data, not by float noise."""
    if value is None:
        return ""
    digits = Decimal(f"{value:.{decimals + NOISE_DIGITS}f}")
    text = f"{digits.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP):f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def csv_row(row: ReportRow) -> tuple[str, ...]:
    return (
        row.channel_name,
        row.date,
        fmt(row.cost, 2),
        fmt(row.ihc, 4),
        fmt(row.ihc_revenue, 2),
        fmt(ratio(row.cost, row.ihc), 2),
        fmt(ratio(row.ihc_revenue, row.cost), 4),
    )


def roles_csv_row(row: RoleRow) -> tuple[str, ...]:
    return (
        row.channel_name,
        row.date,
        *(fmt(share, 4) for share in (row.initializer, row.holder, row.closer)),
        *(fmt(revenue, 2) for revenue in (row.initializer_revenue, row.holder_revenue, row.closer_revenue)),
    )


@dataclass(frozen=True)
class CsvFile:
    """A CSV's bytes, built once for every place it goes to, and its number of data rows."""

    data: bytes
    rows: int


def report_csv(rows: Iterable[ReportRow]) -> CsvFile:
    return _csv(HEADER, map(csv_row, rows))


def roles_csv(rows: Iterable[RoleRow]) -> CsvFile:
    return _csv(ROLE_COLUMNS, map(roles_csv_row, rows))


def write_csv(rows: Iterable[ReportRow], *paths: StoragePath) -> int:
    """Write the report atomically to each path (the same bytes); returns the number of data rows."""
    return _write(report_csv(rows), paths)


def write_roles_csv(rows: Iterable[RoleRow], *paths: StoragePath) -> int:
    """Write channel_roles atomically to each path; returns the number of data rows."""
    return _write(roles_csv(rows), paths)


def _csv(header: Iterable[str], cells: Iterable[tuple[str, ...]]) -> CsvFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in cells:
        writer.writerow(row)
        count += 1
    return CsvFile(buffer.getvalue().encode("utf-8"), count)


def _write(file: CsvFile, paths: Iterable[StoragePath]) -> int:
    for path in paths:
        atomic_write_bytes(path, file.data)
    return file.rows
