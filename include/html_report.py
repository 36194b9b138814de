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
from datetime import UTC, date, datetime, timedelta

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from include.export import ratio
from include.model_comparison import MODELS, ModelCredit
from include.paths import PathSummary
from include.report import ReportRow
from include.roles import ROLES, RoleRow
from include.run_config import RunConfig
from include.settings import DateRange
from include.summary import RunSummary
from include.warehouse import Warehouse

REPORT_FILE = "report.html"
CHANNEL_CHART, TREND_CHART, ROLES_CHART, MODEL_CHART = CHART_IDS = (
    "chart-channels",
    "chart-trend",
    "chart-roles",
    "chart-models",
)
UNDEFINED = "—"
NO_CONVERSIONS = "No conversions in the range"

MODEL_LABELS = {
    "ihc": "IHC",
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "linear": "Linear",
    "position_based": "Position based 40/20/40",
    "time_decay": "Time decay",
    "markov": "Markov removal effect (data-driven)",
}
COST_COLOUR, REVENUE_COLOUR, LOOKBACK_COLOUR = "#8da0cb", "#fc8d62", "#b3b3b3"
ROLE_LABELS = {"initializer": "Initializer (starts)", "holder": "Holder (keeps going)", "closer": "Closer (closes)"}
ROLE_COLOURS = {"initializer": "#66c2a5", "holder": "#ffd92f", "closer": "#e78ac3"}
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}

# Whether a conversion is attributed is read from its rows (the primary key's first column).
RANGE_TOTALS = """
    SELECT COUNT(*), COALESCE(SUM({revenue}), 0),
           COUNT(CASE WHEN EXISTS (SELECT 1 FROM attribution_customer_journey a
                                   WHERE a.conv_id = conversions.conv_id) THEN 1 END)
    FROM conversions WHERE conv_date BETWEEN :start AND :end"""


@dataclass(frozen=True)
class RangeTotals:
    """The range's cards, read from the warehouse: the same range shows the same cards whatever
    ran before and however this run went (its own counts are in the run summary)."""

    conversions: int
    revenue: float
    attributed: int

    @property
    def not_attributed(self) -> int:
        return self.conversions - self.attributed


def range_totals(db: Warehouse, dates: DateRange) -> RangeTotals:
    """The conversions dated in the range, their revenue, and how many have attribution rows."""
    conversions, revenue, attributed = db.execute(RANGE_TOTALS, {"start": dates.start, "end": dates.end}).fetchone()
    return RangeTotals(conversions, float(revenue), attributed)


@dataclass(frozen=True)
class ReportInputs:
    summary: RunSummary
    window: tuple[str, str]
    channel_rows: Sequence[ReportRow]
    credits: Sequence[ModelCredit]
    paths: PathSummary
    parameters: Sequence[tuple[str, str]]
    totals: RangeTotals
    roles: Sequence[RoleRow] = ()
    # Every model's revenue per channel over the session window, for ROAS beside the window's cost.
    window_credits: Sequence[ModelCredit] = ()


@dataclass(frozen=True)
class Windows:
    """The two windows a number can belong to, as the page labels them."""

    range: str
    sessions: str

    @classmethod
    def of(cls, inputs: ReportInputs) -> Windows:
        first, last = inputs.window
        summary = inputs.summary
        return cls(
            range=f"conversions dated {summary.start} .. {summary.end}",
            sessions=f"sessions dated {first} .. {last} (the range with its look-back)",
        )


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


@dataclass(frozen=True)
class ChannelRoles:
    """One channel's credit in each IHC phase over the window, and the revenue it carries."""

    channel_name: str
    credit: dict[str, float]
    revenue: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.credit.values())

    def share(self, role: str) -> float:
        return self.credit[role] / self.total if self.total > 0 else 0.0

    @property
    def main_role(self) -> str:
        return max(ROLES, key=self.share)


def run_parameters(config: RunConfig, summary: RunSummary, window: tuple[str, str]) -> list[tuple[str, str]]:
    """What the run was asked to do and how it went, for the report's last section (no key)."""
    client = config.client
    parameters = [
        ("Warehouse", summary.warehouse),
        ("Conversion dates", f"{config.window.dates.start} .. {config.window.dates.end}"),
        ("Look-back", f"{config.window.lookback_days} days"),
        ("Session dates in this report", f"{window[0]} .. {window[1]}"),
        ("Time-decay half-life", f"{config.decay_half_life_days:g} days"),
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
        *((("Roles CSV", summary.roles_csv_path),) if summary.roles_csv_path else ()),
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


def channel_roles(rows: Iterable[RoleRow]) -> list[ChannelRoles]:
    """Per channel over the window, starters first and closers last: sorted by how much more of
    its phase credit is initializer than closer."""
    credit: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(ROLES, 0.0))
    revenue: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(ROLES, 0.0))
    for row in rows:
        for role in ROLES:
            credit[row.channel_name][role] += getattr(row, role)
            revenue[row.channel_name][role] += getattr(row, f"{role}_revenue")
    profiles = [ChannelRoles(name, credit[name], revenue[name]) for name in credit]
    return sorted(profiles, key=lambda p: (p.share("closer") - p.share("initializer"), p.channel_name))


def daily_totals(rows: Iterable[ReportRow]) -> list[tuple[str, float, float]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in rows:
        sums[row.date][0] += row.cost
        sums[row.date][1] += row.ihc_revenue
    return [(day, cost, revenue) for day, (cost, revenue) in sorted(sums.items())]


def money(value: float) -> str:
    return f"{value:,.2f}"


def number(value: float | None, decimals: int) -> str:
    """Undefined (a ratio over 0) is a dash, never 0."""
    return UNDEFINED if value is None else f"{value:,.{decimals}f}"


def _figure_html(figure: go.Figure, div_id: str, title: str, window: str) -> str:
    """The chart with its title and window above it (a Plotly title would share the legend's row)."""
    figure.update_layout(
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        separators=".,",
    )
    chart = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)
    return f'<h3>{html.escape(title)}</h3><p class="window" data-for="{div_id}">{html.escape(window)}</p>{chart}'


def _eur(label: str, axis: str) -> str:
    return f"%{{{'y' if axis == 'x' else 'x'}}}<br>{label}: %{{{axis}:,.2f}} EUR<extra></extra>"


def channel_chart(totals: Sequence[ChannelTotals], window: str) -> str:
    names = [t.channel_name for t in totals]
    ratios = [f"ROAS {number(t.roas, 2)} · CPO {number(t.cpo, 2)} EUR" for t in totals]
    figure = go.Figure(
        [
            go.Bar(
                name="Cost",
                y=names,
                x=[t.cost for t in totals],
                orientation="h",
                marker_color=COST_COLOUR,
                hovertemplate=_eur("Cost", "x"),
            ),
            go.Bar(
                name="IHC revenue",
                y=names,
                x=[t.ihc_revenue for t in totals],
                orientation="h",
                marker_color=REVENUE_COLOUR,
                customdata=ratios,
                hovertemplate="%{y}<br>IHC revenue: %{x:,.2f} EUR<br>%{customdata}<extra></extra>",
            ),
        ]
    )
    figure.update_layout(
        barmode="group",
        height=max(320, 42 * len(totals)),
        yaxis={"autorange": "reversed"},
        xaxis={"tickformat": ",.0f", "ticksuffix": " EUR"},
    )
    return _figure_html(figure, CHANNEL_CHART, "Cost and IHC-attributed revenue by channel", window)


def trend_chart(days: Sequence[tuple[str, float, float]], range_start: str, window: str) -> str:
    """Cost every day; the attributed revenue of the look-back days drawn apart and shaded: only
    journeys that reach back put revenue there, so it is low by construction, not a collapse."""
    dates = [day for day, _, _ in days]
    in_range = [r if day >= range_start else None for day, _, r in days]
    looking_back = [r if day < range_start else None for day, _, r in days]
    traces = [
        go.Scatter(
            name="Cost",
            x=dates,
            y=[c for _, c, _ in days],
            mode="lines+markers",
            line_color=COST_COLOUR,
            hovertemplate=_eur("Cost", "y"),
        ),
        go.Scatter(
            name="IHC revenue",
            x=dates,
            y=in_range,
            mode="lines+markers",
            line_color=REVENUE_COLOUR,
            hovertemplate=_eur("IHC revenue", "y"),
        ),
    ]
    if any(value is not None for value in looking_back):
        traces.append(
            go.Scatter(
                name="IHC revenue, look-back days (journeys reaching back only)",
                x=dates,
                y=looking_back,
                mode="lines+markers",
                line={"color": LOOKBACK_COLOUR, "dash": "dot"},
                hovertemplate=_eur("IHC revenue (look-back day)", "y"),
            )
        )
    figure = go.Figure(traces)
    if dates and dates[0] < range_start:
        edge = (date.fromisoformat(range_start) - timedelta(hours=12)).isoformat()
        figure.add_vrect(
            x0=dates[0],
            x1=edge,
            fillcolor=LOOKBACK_COLOUR,
            opacity=0.15,
            line_width=0,
            annotation_text="look-back",
            annotation_position="top left",
        )
    figure.update_layout(height=360, yaxis={"tickformat": ",.0f", "ticksuffix": " EUR"})
    return _figure_html(figure, TREND_CHART, "Daily cost and IHC-attributed revenue, by session date", window)


def roles_chart(profiles: Sequence[ChannelRoles], window: str) -> str:
    names = [p.channel_name for p in profiles]
    figure = go.Figure(
        [
            go.Bar(
                name=ROLE_LABELS[role],
                y=names,
                x=[100 * p.share(role) for p in profiles],
                orientation="h",
                marker_color=ROLE_COLOURS[role],
                customdata=[(p.credit[role], p.revenue[role]) for p in profiles],
                hovertemplate=(
                    f"%{{y}}<br>{ROLE_LABELS[role]}: %{{x:.1f}} % of its phase credit<br>"
                    "%{customdata[0]:,.2f} conversions · %{customdata[1]:,.2f} EUR<extra></extra>"
                ),
            )
            for role in ROLES
        ]
    )
    figure.update_layout(
        barmode="stack",
        height=max(320, 32 * len(profiles)),
        yaxis={"autorange": "reversed"},
        xaxis={"range": [0, 100], "ticksuffix": " %"},
    )
    return _figure_html(figure, ROLES_CHART, "Each channel's role in the journeys: initializer, holder, closer", window)


def comparison_chart(credits: Sequence[ModelCredit], channels: Sequence[str], window: str) -> str:
    by_model = {(c.model, c.channel_name): c for c in credits}
    empty = ModelCredit("", "", 0.0, 0.0)
    figure = go.Figure(
        [
            go.Bar(
                name=MODEL_LABELS[model],
                x=list(channels),
                y=[by_model.get((model, ch), empty).credit for ch in channels],
                customdata=[by_model.get((model, ch), empty).revenue for ch in channels],
                hovertemplate=(
                    f"%{{x}}<br>{MODEL_LABELS[model]}: %{{y:,.2f}} conversions · "
                    "%{customdata:,.2f} EUR<extra></extra>"
                ),
            )
            for model in MODELS
        ]
    )
    figure.update_layout(barmode="group", height=420)
    return _figure_html(figure, MODEL_CHART, "Conversions credited to each channel, by attribution model", window)


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    table_id: str,
    numeric_from: int = 1,
    footer: Sequence[str] = (),
) -> str:
    def cells(row: Sequence[str], tag: str) -> str:
        return "".join(
            f'<{tag} class="{"num" if i >= numeric_from else "name"}">{html.escape(cell)}</{tag}>'
            for i, cell in enumerate(row)
        )

    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    foot = f"<tfoot><tr>{cells(footer, 'td')}</tr></tfoot>" if footer else ""
    return f'<table id="{table_id}"><thead><tr>{cells(headers, "th")}</tr></thead><tbody>{body}</tbody>{foot}</table>'


def _card(label: str, value: str, window: str) -> str:
    card_id = "total-" + label.lower().replace(" ", "-")
    return (
        f'<div class="card"><div class="label">{html.escape(label)}</div>'
        f'<div class="value" id="{html.escape(card_id)}">{html.escape(value)}</div>'
        f'<div class="window">{html.escape(window)}</div></div>'
    )


def _cards(dated: RangeTotals, totals: Sequence[ChannelTotals], windows: Windows) -> str:
    """Two rows of cards, one per window: a ratio only ever relates numbers of the same window."""
    cost = sum(t.cost for t in totals)
    revenue = sum(t.ihc_revenue for t in totals)
    in_range = [
        ("Conversions in range", f"{dated.conversions:,}"),
        ("Attributed", f"{dated.attributed:,}"),
        ("Not attributed", f"{dated.not_attributed:,}"),
        ("Revenue of conversions", money(dated.revenue) + " EUR"),
    ]
    by_session = [
        ("Cost", money(cost) + " EUR"),
        ("IHC-attributed revenue", money(revenue) + " EUR"),
        ("ROAS", number(ratio(revenue, cost), 4)),
        ("IHC conversions", number(sum(t.ihc for t in totals), 2)),
    ]
    return "".join(
        f'<div class="cards">{"".join(_card(label, value, window) for label, value in cards)}</div>'
        for cards, window in ((in_range, windows.range), (by_session, windows.sessions))
    )


def _or_empty(data: Sequence, content: Callable[[], str], message: str) -> str:
    return content() if data else f'<p class="empty">{html.escape(message)}</p>'


def _model_sections(inputs: ReportInputs, totals: Sequence[ChannelTotals], windows: Windows) -> str:
    channels = [t.channel_name for t in totals]
    channels += sorted({c.channel_name for c in inputs.credits} - set(channels))
    credit = {(c.model, c.channel_name): c.credit for c in inputs.credits}
    model_table = _table(
        ("Channel", *(MODEL_LABELS[m] for m in MODELS)),
        ((ch, *(number(credit.get((m, ch), 0.0), 2) for m in MODELS)) for ch in channels),
        "model-table",
        footer=("Total", *(number(sum(c.credit for c in inputs.credits if c.model == m), 2) for m in MODELS)),
    )
    revenue = {(c.model, c.channel_name): c.revenue for c in inputs.window_credits}
    roas_table = _table(
        ("Channel", "Cost (EUR)", *(f"ROAS {MODEL_LABELS[m]}" for m in MODELS)),
        (
            (
                t.channel_name,
                money(t.cost),
                *(number(ratio(revenue.get((m, t.channel_name), 0.0), t.cost), 4) for m in MODELS),
            )
            for t in totals
        ),
        "roas-table",
    )
    no_conversions = f"No attributed conversion dated {inputs.summary.start} .. {inputs.summary.end}."
    credits = _or_empty(
        inputs.credits,
        lambda: comparison_chart(inputs.credits, channels, windows.range) + model_table,
        no_conversions,
    )
    return (
        f"<section><h2>Model comparison</h2>{credits}"
        '<p class="note">How to read it: each rule-based model and IHC give every attributed conversion a credit '
        "of 1 in total, split over its journey's sessions; the Markov model splits each conversion's 1 over its "
        "journey's channels by their removal effects in the model of its conversion date (the converting and "
        "browsing paths of that date's look-back). So each column adds up to the attributed conversions.</p>"
        f'<h3>ROAS by channel under each model</h3><p class="window">{html.escape(windows.sessions)}</p>'
        + _or_empty(inputs.window_credits, lambda: roas_table, "No model credits on these session dates.")
        + '<p class="note">Revenue each model credits to the channel\'s sessions on these dates, over the '
        f"channel's cost on the same dates; {UNDEFINED} where the channel has no cost.</p></section>"
    )


def _roles_section(inputs: ReportInputs, windows: Windows) -> str:
    profiles = channel_roles(inputs.roles)
    table = _table(
        (
            "Channel",
            "Main role",
            *(f"{role.capitalize()} (conversions)" for role in ROLES),
            *(f"{role.capitalize()} revenue (EUR)" for role in ROLES),
        ),
        (
            (
                p.channel_name,
                p.main_role,
                *(number(p.credit[role], 4) for role in ROLES),
                *(money(p.revenue[role]) for role in ROLES),
            )
            for p in profiles
        ),
        "roles-table",
        numeric_from=2,
    )
    content = _or_empty(
        profiles, lambda: roles_chart(profiles, windows.sessions) + table, "No IHC phase shares on these dates."
    )
    return (
        f"<section><h2>Channel roles (IHC phases)</h2>{content}"
        '<p class="note">How to read it: the IHC model splits each conversion three ways, to the sessions that '
        "started the journey (initializer), kept it going (holder) and closed it (closer). Each bar shows how a "
        "channel's credit divides over those roles: channels at the top mostly start journeys, those at the bottom "
        "mostly close them, a wide middle marks a channel that keeps them going. Hover for the credits and their "
        "revenue in EUR.</p></section>"
    )


def _page(title: str, sections: Sequence[str]) -> bytes:
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head><body><header><h1>{html.escape(title)}</h1><p>generated {generated}</p></header>
<main>{"".join(sections)}</main></body></html>"""
    return page.encode("utf-8")


def render(inputs: ReportInputs) -> bytes:
    summary, paths = inputs.summary, inputs.paths
    title = f"IHC attribution report {summary.start} .. {summary.end}"
    parameters = f"<section><h2>Run</h2>{_table(('Parameter', 'Value'), inputs.parameters, 'parameters', 2)}</section>"
    if summary.conversions == 0:
        nothing = (
            f'<section><h2>{NO_CONVERSIONS}</h2><p class="empty">{NO_CONVERSIONS} {summary.start} .. '
            f"{summary.end}: nothing was attributed, and the latest files were left as they were.</p></section>"
        )
        return _page(title, [nothing, parameters])
    windows = Windows.of(inputs)
    totals = channel_totals(inputs.channel_rows)
    attributed = max(inputs.totals.attributed, 1)
    channel_table = _table(
        ("Channel", "Cost (EUR)", "Conversions (IHC)", "IHC revenue (EUR)", "CPO (EUR)", "ROAS"),
        (
            (t.channel_name, money(t.cost), number(t.ihc, 4), money(t.ihc_revenue), number(t.cpo, 2), number(t.roas, 4))
            for t in totals
        ),
        "channel-table",
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
    first, last = inputs.window
    no_rows = f"No channel_reporting rows for the session dates {first} .. {last}."
    no_conversions = f"No attributed conversion dated {summary.start} .. {summary.end}."
    sections = [
        f"<section><h2>Totals</h2>{_cards(inputs.totals, totals, windows)}"
        '<p class="note">Each row of cards covers one window, read from the warehouse tables. The conversions of '
        "the range, how many have attribution rows (the others had no session in their look-back, or an unusable "
        "row), and their revenue; the cost and the attributed revenue of the sessions on the range's dates and its "
        "look-back, which counts every conversion with sessions on those dates, also those outside the range that "
        "other runs attributed, so it can exceed the range's revenue. ROAS relates the two numbers of its own row. "
        "What this run did (chunks, requests) is under Run.</p></section>",
        "<section><h2>Channels</h2>"
        + _or_empty(totals, lambda: channel_chart(totals, windows.sessions) + channel_table, no_rows)
        + f'<p class="note">CPO = cost / IHC conversions, ROAS = IHC revenue / cost; {UNDEFINED} where the '
        "denominator is 0.</p></section>",
        "<section><h2>Daily trend</h2>"
        + _or_empty(
            totals, lambda: trend_chart(daily_totals(inputs.channel_rows), summary.start, windows.sessions), no_rows
        )
        + '<p class="note">How to read it: the shaded days are the look-back, before the range: their cost is '
        "counted in full, but only journeys that reach back from the range's conversions put revenue there, "
        "drawn dotted.</p></section>",
        _roles_section(inputs, windows),
        _model_sections(inputs, totals, windows),
        "<section><h2>Top paths to conversion</h2>"
        + f'<p class="window">{html.escape(windows.range)}</p>'
        + _or_empty(paths.top, lambda: path_table, no_conversions)
        + "</section>",
        parameters,
    ]
    return _page(title, sections)


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
.window, .card .window { font-size: 12px; color: #1f6f8b; margin: 2px 0 4px; }
.cards + .cards { margin-top: 12px; }
tfoot td { font-weight: 600; border-top: 2px solid #ddd; }
"""
