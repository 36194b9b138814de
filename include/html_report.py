"""The analyst's report: one self-contained HTML file per run, charts drawn by Plotly.

Plotly's JavaScript is embedded once in the file, so the report opens offline: no CDN, no
request of any kind. The numbers charts show are also in plain tables, so they can be read,
copied and checked (the browser test reads them from the page).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from include.export import ratio
from include.model_comparison import MODELS, ModelCredit
from include.paths import PathSummary
from include.report import ReportRow
from include.run_config import RunConfig
from include.summary import RunSummary

REPORT_FILE = "report.html"
CHANNEL_CHART, TREND_CHART, MODEL_CHART = CHART_IDS = ("chart-channels", "chart-trend", "chart-models")

MODEL_LABELS = {
    "ihc": "IHC",
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "linear": "Linear",
    "position_based": "Position based 40/20/40",
}
COST_COLOUR, REVENUE_COLOUR = "#8da0cb", "#fc8d62"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass(frozen=True)
class ReportInputs:
    summary: RunSummary
    window: tuple[str, str]
    channel_rows: Sequence[ReportRow]
    credits: Sequence[ModelCredit]
    paths: PathSummary
    parameters: Sequence[tuple[str, str]]


@dataclass(frozen=True)
class ChannelTotals:
    channel_name: str
    cost: float
    ihc: float
    ihc_revenue: float

    @property
    def cpo(self) -> float | None:
        return ratio(self.cost, self.ihc)

    @property
    def roas(self) -> float | None:
        return ratio(self.ihc_revenue, self.cost)


def run_parameters(config: RunConfig, summary: RunSummary, window: tuple[str, str]) -> list[tuple[str, str]]:
    """What the run was asked to do and how it went, for the report's last section (no key)."""
    client = config.client
    parameters = [
        ("Warehouse", summary.warehouse),
        ("Conversion dates", f"{config.window.dates.start} .. {config.window.dates.end}"),
        ("Look-back", f"{config.window.lookback_days} days"),
        ("Session dates in this report", f"{window[0]} .. {window[1]}"),
        ("Chunk size", f"{config.chunk_size:,} journeys"),
        ("Chunks, API requests (attempts)", f"{summary.chunks:,}, {summary.requests:,} ({summary.attempts:,})"),
        (
            "Per request",
            f"up to {client.max_journeys_per_request:,} journeys, {client.max_sessions_per_request:,} sessions; "
            f"{client.concurrency} at a time",
        ),
        ("IHC API", f"{config.api.url}?conv_type_id={config.api.conv_type_id}"),
        *(("Local engine parameters", path) for path in summary.engine_parameters),
        ("CSV", summary.csv_path),
    ]
    return [(label, str(value)) for label, value in parameters]


def channel_totals(rows: Iterable[ReportRow]) -> list[ChannelTotals]:
    """Per channel over the window, the most expensive first."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for row in rows:
        total = sums[row.channel_name]
        total[0] += row.cost
        total[1] += row.ihc
        total[2] += row.ihc_revenue
    totals = [ChannelTotals(name, *values) for name, values in sums.items()]
    return sorted(totals, key=lambda t: (-t.cost, -t.ihc_revenue, t.channel_name))


def daily_totals(rows: Iterable[ReportRow]) -> list[tuple[str, float, float]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        sums[row.date][0] += row.cost
        sums[row.date][1] += row.ihc_revenue
    return [(day, cost, revenue) for day, (cost, revenue) in sorted(sums.items())]


def money(value: float) -> str:
    return f"{value:,.2f}"


def number(value: float | None, decimals: int) -> str:
    return "" if value is None else f"{value:,.{decimals}f}"


def _figure_html(figure: go.Figure, div_id: str, title: str) -> str:
    """The chart with its title above it in the page (a Plotly title would share the legend's row)."""
    figure.update_layout(
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    chart = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)
    return f"<h3>{html.escape(title)}</h3>{chart}"


def channel_chart(totals: Sequence[ChannelTotals]) -> str:
    names = [t.channel_name for t in totals]
    hover = [f"ROAS {number(t.roas, 2) or '–'} · CPO {number(t.cpo, 2) or '–'}" for t in totals]
    figure = go.Figure(
        [
            go.Bar(name="Cost", y=names, x=[t.cost for t in totals], orientation="h", marker_color=COST_COLOUR),
            go.Bar(
                name="IHC revenue",
                y=names,
                x=[t.ihc_revenue for t in totals],
                orientation="h",
                marker_color=REVENUE_COLOUR,
                hovertext=hover,
            ),
        ]
    )
    figure.update_layout(barmode="group", height=max(320, 42 * len(totals)), yaxis={"autorange": "reversed"})
    return _figure_html(figure, CHANNEL_CHART, "Cost and IHC-attributed revenue by channel (EUR)")


def trend_chart(days: Sequence[tuple[str, float, float]]) -> str:
    dates = [day for day, _, _ in days]
    figure = go.Figure(
        [
            go.Scatter(name="Cost", x=dates, y=[c for _, c, _ in days], mode="lines+markers", line_color=COST_COLOUR),
            go.Scatter(
                name="IHC revenue", x=dates, y=[r for _, _, r in days], mode="lines+markers", line_color=REVENUE_COLOUR
            ),
        ]
    )
    figure.update_layout(height=360)
    return _figure_html(figure, TREND_CHART, "Daily cost and IHC-attributed revenue (EUR, by session date)")


def comparison_chart(credits: Sequence[ModelCredit], channels: Sequence[str]) -> str:
    by_model = {(c.model, c.channel_name): c.credit for c in credits}
    figure = go.Figure(
        [
            go.Bar(name=MODEL_LABELS[model], x=list(channels), y=[by_model.get((model, ch), 0.0) for ch in channels])
            for model in MODELS
        ]
    )
    figure.update_layout(barmode="group", height=420)
    return _figure_html(figure, MODEL_CHART, "Conversions credited to each channel, by attribution model")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str, numeric_from: int = 1) -> str:
    head = "".join(
        f'<th class="{"num" if i >= numeric_from else "name"}">{html.escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if i >= numeric_from else "name"}">{html.escape(cell)}</td>'
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cards(summary: RunSummary, totals: Sequence[ChannelTotals]) -> str:
    cards = [
        ("Cost", money(sum(t.cost for t in totals)) + " EUR"),
        ("Revenue of conversions", money(summary.revenue) + " EUR"),
        ("IHC-attributed revenue", money(sum(t.ihc_revenue for t in totals)) + " EUR"),
        ("Conversions in range", f"{summary.conversions:,}"),
        ("Attributed", f"{summary.attributed:,}"),
        ("Without sessions", f"{summary.without_sessions:,}"),
    ]
    return "".join(
        f'<div class="card"><div class="label">{html.escape(label)}</div>'
        f'<div class="value" id="total-{html.escape(label.lower().replace(" ", "-"))}">{html.escape(value)}</div></div>'
        for label, value in cards
    )


def _or_empty(data: Sequence, content: Callable[[], str], message: str) -> str:
    return content() if data else f'<p class="empty">{html.escape(message)}</p>'


def render(inputs: ReportInputs) -> bytes:
    totals = channel_totals(inputs.channel_rows)
    channels = [t.channel_name for t in totals]
    summary, paths = inputs.summary, inputs.paths
    attributed = max(summary.attributed, 1)
    channel_table = _table(
        ("Channel", "Cost (EUR)", "Conversions (IHC)", "IHC revenue (EUR)", "CPO (EUR)", "ROAS"),
        (
            (t.channel_name, money(t.cost), number(t.ihc, 4), money(t.ihc_revenue), number(t.cpo, 2), number(t.roas, 4))
            for t in totals
        ),
        "channel-table",
    )
    credit = {(c.model, c.channel_name): c.credit for c in inputs.credits}
    channels += sorted({c.channel_name for c in inputs.credits} - set(channels))
    model_table = _table(
        ("Channel", *(MODEL_LABELS[m] for m in MODELS)),
        ((ch, *(number(credit.get((m, ch), 0.0), 2) for m in MODELS)) for ch in channels),
        "model-table",
    )
    path_rows = [
        (p.label, f"{p.conversions:,}", f"{p.conversions / attributed:.1%}", money(p.revenue)) for p in paths.top
    ]
    if paths.other_paths:
        path_rows.append(
            (
                f"{paths.other_paths:,} other paths",
                f"{paths.other_conversions:,}",
                f"{paths.other_conversions / attributed:.1%}",
                money(paths.other_revenue),
            )
        )
    path_table = _table(("Path (channels in time order)", "Conversions", "Share", "Revenue (EUR)"), path_rows, "paths")
    parameter_table = _table(("Parameter", "Value"), inputs.parameters, "parameters", numeric_from=2)
    first, last = inputs.window
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"IHC attribution report {summary.start} .. {summary.end}"
    no_rows = f"No channel_reporting rows for the session dates {first} .. {last}."
    no_conversions = f"No attributed conversion dated {summary.start} .. {summary.end}."
    sections = [
        f'<section><h2>Totals</h2><div class="cards">{_cards(summary, totals)}</div>'
        f'<p class="note">Cost and attributed revenue: sessions dated {first} .. {last} (the range with its '
        f"look-back); conversions and their revenue: conversions dated {summary.start} .. {summary.end}. The "
        "attributed revenue counts every conversion with sessions on those dates, also those outside the range "
        "that other runs attributed, so it can exceed the range's revenue.</p></section>",
        "<section><h2>Channels</h2>"
        + _or_empty(totals, lambda: channel_chart(totals) + channel_table, no_rows)
        + '<p class="note">Sessions dated '
        f"{first} .. {last}. CPO = cost / IHC conversions, ROAS = IHC revenue / cost; empty where the "
        "denominator is 0.</p></section>",
        "<section><h2>Daily trend</h2>"
        + _or_empty(totals, lambda: trend_chart(daily_totals(inputs.channel_rows)), no_rows)
        + "</section>",
        "<section><h2>Model comparison</h2>"
        + _or_empty(inputs.credits, lambda: comparison_chart(inputs.credits, channels) + model_table, no_conversions)
        + f'<p class="note">The conversions dated {summary.start} .. {summary.end}, whatever their sessions\' '
        "dates: each model gives every attributed conversion a credit of 1 in total, split over its journey's "
        "sessions, so each column adds up to the attributed conversions.</p></section>",
        "<section><h2>Top paths to conversion</h2>"
        + _or_empty(paths.top, lambda: path_table, no_conversions)
        + "</section>",
        f"<section><h2>Run</h2>{parameter_table}</section>",
    ]
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head><body><header><h1>{html.escape(title)}</h1><p>generated {generated}</p></header>
<main>{"".join(sections)}</main></body></html>"""
    return page.encode("utf-8")


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #1f2a44; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 4px 0 0; opacity: .7; font-size: 13px; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 40px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin: 16px 0; box-shadow: 0 1px 2px #0001; }
h2 { font-size: 17px; margin: 0 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.card { background: #f6f7f9; border-radius: 6px; padding: 10px 12px; }
.card .label { font-size: 12px; color: #666; } .card .value { font-size: 18px; font-weight: 600; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 8px; }
th, td { padding: 5px 8px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #fafafa; font-weight: 600; } .num { text-align: right; font-variant-numeric: tabular-nums; }
h3 { font-size: 14px; font-weight: 600; margin: 8px 0 0; color: #333; }
.empty { color: #666; font-style: italic; }
.note { font-size: 12px; color: #666; }
"""
