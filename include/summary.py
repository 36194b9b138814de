"""The run summary: what a run did, in numbers, for the log and for the demo's output."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import orjson

from include.runfiles import StoragePath, atomic_write_bytes, read_bytes

SUMMARY_FILE = "summary.json"
# The report's IHC revenue is by session date, over every attributed conversion.
EVERY_CONVERSION = "(all conversions' sessions on those dates)"


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
    # False when the run had no conversions: html_path is then an earlier run's report, left alone.
    html_replaced: bool = True

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
                *([f"  HTML report (latest)      {self.html_path}{self._latest_note}"] if self.html_path else []),
                *([f"  HTML of this run          {self.run_html_path}"] if self.run_html_path else []),
                *(f"  local engine parameters   {path}" for path in self.engine_parameters),
                *(["  rows skipped or adjusted:"] if issues else []),
                *issues,
            ]
        )

    @property
    def _latest_note(self) -> str:
        return "" if self.html_replaced else " (an earlier run's, left in place: no conversions in this range)"

    def save(self, run_dir: StoragePath) -> StoragePath:
        path = run_dir / SUMMARY_FILE
        atomic_write_bytes(path, orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2))
        return path

    @classmethod
    def load(cls, path: StoragePath) -> RunSummary:
        return cls(**orjson.loads(read_bytes(path)))
