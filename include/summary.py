"""The run summary: what a run did, in numbers, for the log and for the demo's output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import orjson

from include.runfiles import StoragePath, read_bytes

SUMMARY_FILE = "summary.json"
# The report's IHC revenue is by session date, over every attributed conversion.
EVERY_CONVERSION = "(all conversions' sessions on those dates)"
LEFT_IN_PLACE = "an earlier run's, left in place as one set: no conversions in this range"


@dataclass
class RunSummary:
    start: str
    end: str
    conversions: int
    attributed: int
    without_sessions: int
    chunks: int
    requests: int
    attempts: int
    sessions_sent: int
    trimmed_journeys: int
    max_sum_error: float
    revenue: float
    report_rows: int
    report_cost: float
    report_ihc_revenue: float
    csv_path: str
    without_sessions_ids: list[str] = field(default_factory=list)
    row_issues: dict[str, dict] = field(default_factory=dict)
    # Parameter files of the local server's offline engine, when it was the API.
    engine_parameters: list[str] = field(default_factory=list)
    run_csv_path: str = ""
    html_path: str = ""
    run_html_path: str = ""
    # The session dates the report recomputed (the range with its look-back): the report's cost
    # and IHC revenue cover every conversion with sessions on them, not only the range's.
    report_first: str = ""
    report_last: str = ""
    # The warehouse read: "sample database ..." when no warehouse connection is set.
    warehouse: str = ""
    roles_csv_path: str = ""
    # False when the run had no conversions: the latest files (csv_path, roles_csv_path, html_path
    # and the output folder's summary) are then an earlier run's, left alone as one set.
    html_replaced: bool = True
    # Conversions dated outside the range whose journey changed since stored, attributed again
    # by this run, by reason; stored conversions it removed (deleted, moved out of its reach).
    reattributed: dict[str, int] = field(default_factory=dict)
    removed: int = 0

    def text(self) -> str:
        examples = f" (e.g. {', '.join(self.without_sessions_ids[:5])})" if self.without_sessions_ids else ""
        nothing = ["  no conversions in range: nothing to attribute"] if self.conversions == 0 else []
        issues = [
            f"  {reason:<58} {issue['count']:>6,} (e.g. {', '.join(issue['ids'][:5])})"
            for reason, issue in self.row_issues.items()
        ]
        return "\n".join(
            [
                f"IHC attribution run {self.start} .. {self.end}",
                *([f"  warehouse                 {self.warehouse}"] if self.warehouse else []),
                *nothing,
                f"  conversions in range      {self.conversions:>12,}",
                f"  attributed                {self.attributed:>12,}",
                f"  without sessions          {self.without_sessions:>12,}{examples}",
                *(f"  attributed again: {reason:<40} {n:>6,}" for reason, n in sorted(self.reattributed.items())),
                *([f"  stored conversions removed (deleted or moved) {self.removed:>6,}"] if self.removed else []),
                f"  journeys trimmed          {self.trimmed_journeys:>12,}",
                f"  sessions sent             {self.sessions_sent:>12,}",
                f"  chunks                    {self.chunks:>12,}",
                f"  API requests (attempts)   {self.requests:>12,} ({self.attempts:,})",
                f"  max |sum ihc - 1|         {self.max_sum_error:>12.6f}",
                f"  revenue of conversions    {self.revenue:>12,.2f} EUR",
                *(
                    [f"  report, session dates     {self.report_first} .. {self.report_last}"]
                    if self.report_first
                    else []
                ),
                f"  report rows recomputed    {self.report_rows:>12,}",
                f"  report cost               {self.report_cost:>12,.2f} EUR",
                f"  report IHC revenue        {self.report_ihc_revenue:>12,.2f} EUR {EVERY_CONVERSION}",
                f"  CSV                       {self.csv_path}",
                *([f"  CSV of this run           {self.run_csv_path}"] if self.run_csv_path else []),
                *([f"  roles CSV                 {self.roles_csv_path}"] if self.roles_csv_path else []),
                *([f"  HTML report (latest)      {self.html_path}"] if self.html_path else []),
                *([] if self.html_replaced else [f"  latest files              {LEFT_IN_PLACE}"]),
                *([f"  HTML of this run          {self.run_html_path}"] if self.run_html_path else []),
                *(f"  local engine parameters   {path}" for path in self.engine_parameters),
                *(["  rows skipped or adjusted:"] if issues else []),
                *issues,
            ]
        )

    def to_json(self) -> bytes:
        """What summary.json holds: the export writes it to the run folder and the output folder."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def load(cls, path: StoragePath) -> RunSummary:
        return cls(**orjson.loads(read_bytes(path)))
